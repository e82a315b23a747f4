"""Format confounds between prompt sets, against hand counts and a numpy Cohen's d."""

from __future__ import annotations

import numpy as np
import pytest

from spectrascope.core.analysis.concept_sets import CONCEPT_SETS
from spectrascope.core.stats.confounds import format_checks, is_punctuation, warnings
from spectrascope.core.analysis.contrast import load_prompts


def test_a_set_that_ends_differently_is_flagged_and_a_matched_one_is_not():
    concept = ["Paris is in France.", "The capital of France is", "Lyon is a city.", "Is Nice warm?"]
    neutral = ["Rome is in Italy.", "The capital of Italy is", "Turin is a city.", "Is Milan cold?"]
    assert not [c for c in format_checks(concept, neutral) if c.flagged]
    open_ended = ["The capital of Spain is", "The river of Rome is", "The king of Spain was", "A city in Peru is"]
    checks = {c.name: c for c in format_checks(concept, open_ended)}
    assert checks["ends with . ! or ?"].concept == 0.75 and checks["ends with . ! or ?"].neutral == 0.0
    assert checks["ends with . ! or ?"].flagged and checks["ends open (a word, no punctuation)"].flagged
    assert any("ends with . ! or ?" in w for w in warnings(list(checks.values())))


def test_length_effect_size_matches_numpy():
    concept = ["a b c d e f", "a b c d e f g h", "a b c", "a b c d e f g h i j"]
    neutral = ["a b", "a b c", "a", "a b c d"]
    lc = np.array([6, 8, 3, 10.0])
    ln = np.array([2, 3, 1, 4.0])
    pooled = np.sqrt((3 * lc.var(ddof=1) + 3 * ln.var(ddof=1)) / 6)
    check = [c for c in format_checks(concept, neutral) if c.name == "mean length"][0]
    assert (check.concept, check.neutral) == (lc.mean(), ln.mean())
    assert abs(lc.mean() - ln.mean()) / pooled >= 0.5 and check.flagged


@pytest.mark.parametrize("name", ["code", "cooking", "music", "japan"])
def test_the_shipped_matched_sets_raise_no_format_flag(name):
    cset = CONCEPT_SETS[name]
    flagged = [c.text for c in format_checks(load_prompts(cset.concept), load_prompts(cset.neutral)) if c.flagged]
    assert flagged == []


def test_punctuation_tokens_and_feature_warnings():
    assert is_punctuation(" .") and is_punctuation("?\n") and is_punctuation('"')
    assert not is_punctuation(" France") and not is_punctuation("1")
    assert warnings([], [("fine", 7)]) == ["fine #7 fires mostly on punctuation: it may track how the prompts end, "
                                            "not the concept"]


def test_the_pairing_report_carries_the_confounds(tiny_sae_session, tmp_path, monkeypatch):
    from spectrascope.core.analysis import pairing

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    concept = ["Paris is in France.", "Lyon is a French city.", "The Seine flows through Paris."]
    neutral = ["The capital of Italy is", "A river in Spain is", "The largest city of Peru is"]
    res = pairing.analyse(tiny_sae_session, concept, neutral)
    assert any("ends with . ! or ?: 100% vs 0%" in w for w in res.confounds)
    assert res.confounds == pairing.repair(tiny_sae_session, res, res.settings).confounds
    assert pairing.reclassify(res, res.settings).confounds == res.confounds
    assert "Confounds: format differs" in pairing.to_markdown(res)
    assert pairing.to_dict(res)["confounds"] == res.confounds
