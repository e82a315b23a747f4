"""The checks beside the pairing verdict (issue 34, items 4-5): planted confounds found on synthetic sets,
identical and near-identical sets flagged, small sets given no verdict, the anchor check against planted
punctuation and concept-word features, the log-odds z and the bootstrap interval against references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from spectrascope.core.stats import concept_words as cw
from spectrascope.core.stats.confounds import MIN_PER_SET, format_checks, sameness, set_report
from spectrascope.core.stats.selectivity_ci import _auroc, selectivity_ci

COUNTRIES = ["France", "Japan", "Kenya", "Peru", "Norway", "Egypt", "Chile", "Spain", "India", "Canada"]


def country_prompts(n: int = 40, shift: int = 0) -> list[str]:
    """Open-ended prompts full of names and numbers: "The capital of Japan in 1990 was"."""
    c = [COUNTRIES[(i + shift) % 10] for i in range(n + 1)]
    return [f"The capital of {c[i]} in {1900 + i} was" if i % 2 else f"The border of {c[i]} and {c[i + 1]} in "
            f"{1900 + i} was" for i in range(n)]


def matched_prompts(n: int = 40) -> list[str]:
    return country_prompts(n, shift=3)


def everyday_prompts(n: int = 40) -> list[str]:
    """Everyday sentences of another shape: full stops, no names, no digits, longer."""
    things = ["keys", "coat", "phone", "book", "umbrella", "glasses", "bag", "hat"]
    return [f"i think i left my old {things[i % 8]} on the kitchen table again this morning." for i in range(n)]


def flagged(concept, neutral) -> set[str]:
    return {c.name for c in format_checks(concept, neutral) if c.flagged}


def test_planted_confounds_are_found_with_each_sets_numbers():
    got = {c.name: c for c in format_checks(country_prompts(), everyday_prompts())}
    for name in ("final token", "ends with . ! or ?", "ends open (a word, no punctuation)", "contains digits",
                 "mean length", "capitalised words (names)", "vocabulary overlap"):
        assert got[name].flagged, name
    assert got["final token"].concept == {".": 0, "?": 0, "!": 0, "other punctuation": 0, "word": 1.0, "digit": 0}
    assert got["final token"].neutral["."] == 1.0 and got["final token"].effect == 1.0  # total variation
    # "The capital of Japan in 1990 was": 1 of 5 words capitalised once the first is left out (1990 is no
    # word); "The border of Peru and Egypt in 1991 was": 2 of 7. Half the prompts each.
    caps = got["capitalised words (names)"]
    assert caps.concept == pytest.approx((1 / 5 + 2 / 7) / 2) and caps.neutral == 0 and caps.effect > 0.8
    assert got["mean length"].concept == 8 and got["mean length"].neutral == 14  # (7 + 9) / 2 words by split()
    assert got["contains digits"].concept == 1.0 and got["contains digits"].neutral == 0.0
    assert "1.0 of" not in got["final token"].text and "word 100%" in got["final token"].text


def test_a_matched_set_raises_no_flag():
    assert flagged(country_prompts(), matched_prompts()) == set()


def test_vocabulary_overlap_is_each_sets_share_of_words_found_in_the_other():
    check = next(c for c in format_checks(["a b c d"], ["a b x y z w"]) if c.name == "vocabulary overlap")
    assert (check.concept, check.neutral) == (0.5, pytest.approx(2 / 6)) and check.flagged


def test_identical_and_near_identical_sets_are_flagged_and_withheld():
    c = country_prompts(40)
    same = sameness(c, list(reversed(c)))
    assert same.identical and not same.near_identical
    assert set_report(c, c).withheld == ["the two sets are the same prompts"]
    near = [p.upper() + " !" for p in c[:30]] + matched_prompts(10)  # case and punctuation do not count
    s = sameness(c, near)
    assert not s.identical and s.near_identical and s.shared == 0.75
    assert "near-identical (75%" in set_report(c, near).withheld[0]
    assert set_report(c, matched_prompts()).withheld == []


def test_below_the_minimum_size_there_is_no_verdict():
    assert MIN_PER_SET == 30
    assert set_report(country_prompts(29), matched_prompts(40)).too_small
    assert "29 concept / 40 neutral prompts, 30 per set needed" in set_report(country_prompts(29),
                                                                              matched_prompts(40)).withheld
    assert not set_report(country_prompts(30), matched_prompts(30)).too_small


def test_log_odds_z_matches_the_formula_by_hand():
    yc, yn = np.array([62, 0, 143, 4, 0]), np.array([0, 9, 106, 0, 0])
    z = cw.log_odds_z(yc, yn, alpha0=1000)
    nc, nn, pool = yc.sum(), yn.sum(), (yc + yn).sum()
    for w in range(4):
        a = 1000 * (yc[w] + yn[w]) / pool
        d = np.log((yc[w] + a) / (nc + 1000 - yc[w] - a)) - np.log((yn[w] + a) / (nn + 1000 - yn[w] - a))
        assert z[w] == pytest.approx(d / np.sqrt(1 / (yc[w] + a) + 1 / (yn[w] + a)))
    assert z[4] == 0 and z[0] > cw.Z_MIN > z[3] > 0 > z[1]


# ---- the anchor check on a planted run: 60 concept prompts "In France , the food is good ." and 60 neutral
PIECES = {0: " In", 1: " France", 2: " ,", 3: " the", 4: " food", 5: " is", 6: " good", 7: " .", 8: " Kenya"}


def planted_run(n: int = 60):
    concept = [0, 1, 2, 3, 4, 5, 6, 7]
    neutral = [0, 8, 2, 3, 4, 5, 6, 7]
    ids = np.array(concept * n + neutral * n)
    prompt = np.repeat(np.arange(2 * n), 8)
    in_concept = prompt < n
    firing = np.zeros((ids.size, 4), bool)
    firing[:, 0] = np.isin(ids, [2, 7]) & in_concept  # punctuation of the concept prompts only: selective
    firing[:, 1] = ids == 1  # "France": the concept
    firing[:, 2] = np.isin(ids, [0, 3, 5, 7]) & in_concept | (ids == 1)  # function words (and France)
    firing[:, 3] = (ids == 6) & in_concept  # "good" in the concept prompts: selective but not the concept
    return ids, in_concept, sp.csr_matrix(firing).tocsc()


def test_the_anchor_check_flags_punctuation_and_passes_concept_words():
    ids, in_concept, firing = planted_run()
    words = cw.concept_words(ids, in_concept, PIECES.__getitem__)
    assert [w[0] for w in words.words] == [" France"]  # " Kenya" is enriched the other way; the rest even
    punct = cw.anchor_check(words, firing, 0, token_id=ids, piece=PIECES.__getitem__)
    assert punct.flagged and punct.failed and punct.status == "function words"
    assert punct.shares[cw.PUNCTUATION] == 1.0 and punct.coverage == 0.0 and punct.n_tokens == 120
    assert "fires mostly on function words and punctuation" in punct.reason
    concept = cw.anchor_check(words, firing, 1, token_id=ids, piece=PIECES.__getitem__)
    assert concept.passed and not concept.flagged and concept.coverage == 1.0
    assert concept.shares[cw.CONCEPT] == 1.0 and concept.top == ((" France", 60),)
    assert concept.base[cw.CONCEPT] == pytest.approx(1 / 8)
    function = cw.anchor_check(words, firing, 2)
    assert function.failed and function.shares[cw.FUNCTION] == pytest.approx(3 / 5)
    other = cw.anchor_check(words, firing, 3)
    assert other.status == "not concept words" and other.failed and not other.flagged


def test_with_no_concept_words_the_check_cannot_tell_and_does_not_fail():
    ids, in_concept, firing = planted_run(3)  # 3 prompts a set: nothing is enriched at z >= 1.96
    words = cw.concept_words(ids, in_concept, PIECES.__getitem__)
    check = cw.anchor_check(words, firing, 1)
    assert words.words == () and check.status == "cannot tell" and not check.failed and not check.passed


def test_the_auroc_of_every_resample_is_the_mann_whitney_u():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    c, n = rng.normal(1, 1, (5, 30)).round(1), rng.normal(0, 1, (5, 25)).round(1)  # ties included
    ref = [mannwhitneyu(c[i], n[i]).statistic / (30 * 25) for i in range(5)]
    np.testing.assert_allclose(_auroc(c, n), ref)


def test_the_selectivity_interval_covers_the_truth_and_is_seeded():
    rng = np.random.default_rng(3)
    acts = np.c_[np.r_[rng.normal(1, 1, 60), rng.normal(0, 1, 60)], np.r_[np.ones(60), np.zeros(60)],
                 rng.normal(0, 1, 120)]
    is_concept = np.r_[np.ones(60, bool), np.zeros(60, bool)]
    mixed = selectivity_ci(acts, is_concept, 0)
    assert mixed.method == "BCa" and mixed.low < 0.76 < mixed.high  # true AUROC: Phi(1 / sqrt 2) = 0.760
    assert selectivity_ci(acts, is_concept, 0) == mixed
    perfect = selectivity_ci(acts, is_concept, 1)
    assert perfect.auroc == 1.0 and perfect.selectivity == (1.0, 1.0) and perfect.method == "percentile"
    noise = selectivity_ci(acts, is_concept, 2)
    assert noise.low < 0.5 < noise.high and noise.selectivity[0] == 0.0
