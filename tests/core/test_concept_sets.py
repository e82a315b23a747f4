"""The shipped concept sets and the concept report's logic (on a tiny model)."""

from __future__ import annotations

import numpy as np
import pytest

from spectrascope.core.analysis.concept_sets import CONCEPT_SETS, ConceptSet
from spectrascope.core.analysis.contrast import load_prompts
from spectrascope.core.train.concepts import best_features, found


@pytest.mark.parametrize("name", sorted(CONCEPT_SETS))
def test_each_set_has_a_format_matched_neutral_set(name):
    cset = CONCEPT_SETS[name]
    concept, neutral = load_prompts(cset.concept), load_prompts(cset.neutral)
    assert len(concept) >= 100 and len(neutral) >= 100
    if name != "france":  # the four sets written for issue 15 mirror their concept sets line by line
        assert len(concept) == len(neutral)
        ends_c = sorted(p.rstrip()[-1] for p in concept)
        ends_n = sorted(p.rstrip()[-1] for p in neutral)
        # Same sentence endings (".", "?", a quote, an open-ended word...), to within a few lines.
        mismatched = sum(abs(ends_c.count(c) - ends_n.count(c)) for c in set(ends_c) | set(ends_n))
        assert mismatched <= 0.1 * len(concept), mismatched
        len_c = np.mean([len(p.split()) for p in concept])
        len_n = np.mean([len(p.split()) for p in neutral])
        assert abs(len_c - len_n) <= 0.15 * len_c, (len_c, len_n)


def test_names_concept_matches_words_and_stems_only():
    cset = ConceptSet("t", CONCEPT_SETS["code"].concept, CONCEPT_SETS["code"].neutral, ("cook*", "fry"))
    assert cset.names_concept([" Cooking"]) and cset.names_concept(["fry "])
    assert not cset.names_concept(["fryer", " the", ""])  # "fry" is a whole word, "cook*" a stem


def test_found_takes_the_first_selective_feature_whose_label_names_the_concept():
    best = {"coarse": [{"feature": 1, "selectivity": 0.95, "names_concept": False},
                       {"feature": 2, "selectivity": 0.7, "names_concept": True}],
            "fine": [{"feature": 9, "selectivity": 0.85, "names_concept": True}]}
    assert found(best) == {"role": "fine", "feature": 9, "selectivity": 0.85, "names_concept": True}
    assert found(best, min_selectivity=0.9) is None


def test_best_features_ranks_by_the_contrast_selectivity(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    (tmp_path / "c.txt").write_text("Paris is in France.\nThe French flag\nA croissant in Paris\n")
    (tmp_path / "n.txt").write_text("Rome is in Italy.\nThe Italian flag\nA pizza in Rome\n")
    cset = ConceptSet("t", tmp_path / "c.txt", tmp_path / "n.txt", ("paris",))
    report = best_features(tiny_sae_session, cset, top=3)
    assert report["n_concept"] == report["n_neutral"] == 3
    # 3 prompts a set: no verdict (issue 34: at least 30 per set), the rule's answer shown beside it
    assert report["verdict"]["text"].startswith("NO VERDICT: 3 concept / 3 neutral prompts, 30 per set needed")
    assert report["verdict"]["status"] == "WITHHELD" and isinstance(report["confounds"], list)
    from spectrascope.core.analysis.contrast import run_contrast

    contrast = run_contrast(tiny_sae_session, load_prompts(cset.concept), load_prompts(cset.neutral))
    for role in ("coarse", "fine"):
        rows = report["best"][role]
        assert [r["feature"] for r in rows] == contrast.stats[role].ranked(3)
        assert [r["selectivity"] for r in rows] == sorted((r["selectivity"] for r in rows), reverse=True)
