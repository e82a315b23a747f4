"""The anchor's concept check by activation mass beside the count (issue 34, item 4): a synthetic case with
the answer worked out by hand, and the contrast run keeping the coarse activations it reads (fresh and
cached alike, and equal to the session's own codes)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from spectrascope.core.analysis import contrast
from spectrascope.core.stats import concept_words as cw

# 12 tokens: 10 in concept prompts (6 concept words, 2 function words, 2 punctuation), 2 in neutral ones.
KIND = np.array([cw.CONCEPT] * 6 + [cw.FUNCTION] * 2 + [cw.PUNCTUATION] * 2 + [cw.OTHER] * 2, np.int8)
IN_CONCEPT = np.array([True] * 10 + [False] * 2)
WORDS = cw.ConceptWords(KIND, IN_CONCEPT, ((" Paris", 6, 0, 3.0),))


def check(acts: list[float]) -> cw.AnchorCheck:
    """The check of feature 1 (feature 0 stays silent) with these activations on the 12 tokens."""
    values = sp.csc_matrix(np.c_[np.zeros(12), np.asarray(acts, np.float32)])
    return cw.anchor_check(WORDS, values > 0, 1, values=values)


def test_count_passes_while_the_mass_is_on_punctuation():
    # Fires weakly (1.0) on 4 of the 6 concept words, strongly (5.0) on both full stops, and on a
    # neutral token with 100.0 (outside the concept prompts: in neither share).
    c = check([1, 1, 1, 1, 0, 0, 0, 0, 5, 5, 100, 0])
    # By count: 6 firing tokens, 4 concept words and 2 punctuation; it covers 4 of the 6 concept words.
    assert c.n_tokens == 6 and c.shares == pytest.approx((4 / 6, 0, 2 / 6, 0))
    assert c.coverage == pytest.approx(4 / 6) and c.status == "concept" and c.passed and not c.failed
    # By mass: 4 x 1 = 4 on concept words, 2 x 5 = 10 on punctuation, of 14.
    assert c.mass == pytest.approx((4 / 14, 0, 10 / 14, 0))
    assert c.mass_function_share == pytest.approx(10 / 14) and c.mass_status == "function words"
    assert c.disagrees and c.short == "67% ✓ ⚑"
    assert "by activation mass 29% on concept words, 71% on function words or punctuation" in c.text
    assert "⚑ count and activation mass disagree: by mass it is mostly on function words and punctuation" in c.text
    d = c.to_dict()
    assert d["status"] == "concept" and d["passed"] is True  # the decision stays the count's
    assert d["mass_shares"] == {"concept word": 0.2857, "function word": 0.0, "punctuation": 0.7143, "other": 0.0}
    assert d["mass_status"] == "function words" and d["count_mass_disagree"] is True


def test_count_and_mass_agree_on_a_concept_anchor_and_on_a_function_word_one():
    on_concept = check([3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0])  # 10 on concept words, 1 on "the"
    assert on_concept.status == on_concept.mass_status == "concept" and not on_concept.disagrees
    assert on_concept.mass == pytest.approx((10 / 11, 1 / 11, 0, 0)) and "⚑" not in on_concept.text
    on_stops = check([1, 0, 0, 0, 0, 0, 2, 2, 3, 3, 0, 0])  # 1 on a concept word, 10 on function words and stops
    assert on_stops.status == on_stops.mass_status == "function words" and on_stops.failed
    assert on_stops.mass == pytest.approx((1 / 11, 4 / 11, 6 / 11, 0))


def test_without_activations_the_check_is_the_count_alone():
    values = sp.csc_matrix(np.c_[np.zeros(12), np.asarray([1, 1, 1, 1, 0, 0, 0, 0, 5, 5, 0, 0], np.float32)])
    c = cw.anchor_check(WORDS, values > 0, 1)
    assert c.mass is None and c.mass_status is None and not c.disagrees
    assert c.to_dict()["mass_shares"] is None and "activation mass" not in c.text


def test_the_run_keeps_the_coarse_activations_and_the_cache_gives_them_back(tiny_sae_session, tmp_path,
                                                                             monkeypatch):
    from spectrascope.core.engine.session import Request

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept, neutral = ["Paris is lovely in spring.", "France"], ["The cat sleeps on the mat.", "One two three."]
    first = contrast.run_contrast(tiny_sae_session, concept, neutral, contrast.ContrastSettings(batch_size=3))
    t = first.tokens
    assert set(t.values) == set(contrast.VALUE_ROLES) == {"coarse"}
    for i, prompt in enumerate(concept + neutral):
        rows = np.flatnonzero(t.prompt == i)
        codes = tiny_sae_session.run(Request(prompt, logits=False)).spectra["coarse"].codes[1:].numpy()
        want = codes.astype(np.float16).astype(np.float32)  # as the cache keeps them
        np.testing.assert_array_equal(t.values["coarse"][rows].toarray(), want)
    hit = contrast.run_contrast(tiny_sae_session, concept, neutral)
    assert hit.cached and (hit.tokens.values["coarse"] != t.values["coarse"]).nnz == 0


def test_a_cache_file_without_the_activations_is_a_miss(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    first = contrast.run_contrast(tiny_sae_session, ["France"], ["The cat."])
    t = first.tokens
    first.tokens = contrast.TokenFiring(t.prompt, t.position, t.token_id, t.firing)  # as an older run wrote it
    contrast.save_cached(first)
    assert contrast.load_cached(first.key, contrast.ContrastSettings()) is None
    again = contrast.run_contrast(tiny_sae_session, ["France"], ["The cat."])
    assert not again.cached and contrast.load_cached(first.key, contrast.ContrastSettings()).tokens.values
