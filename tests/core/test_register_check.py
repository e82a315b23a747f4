"""The function-word (register) format check, and format tokens never counted as concept words: synthetic
sets with the answer worked out by hand, the shipped matched pairs left alone and the two pairs confounded
on purpose flagged, from the text alone (no model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from spectrascope.core.analysis.contrast import load_prompts
from spectrascope.core.stats import concept_words as cw
from spectrascope.core.stats.confounds import (REGISTER_EFFECT, chi_square, cramers_v_corrected, format_checks,
                                               profile_counts, register_check)

PROMPTS = Path(__file__).resolve().parents[2] / "assets" / "prompts"


def test_two_registers_by_hand():
    # 30 x "he was here" vs 30 x "they are here". Columns he, was, they, are, other words:
    # concept [30, 30, 0, 0, 30], neutral [0, 0, 30, 30, 30]; n = 180, each row 90, expected = column / 2
    # (15, 15, 15, 15, 30): each function-word cell adds 15^2 / 15 = 15, 8 of them: chi-square = 120.
    check = register_check(["he was here"] * 30, ["they are here"] * 30)
    phi2 = 120 / 180 - 4 / 179  # Bergsma: phi^2 - (k - 1)(r - 1) / (n - 1), k = 5, r = 2
    v = np.sqrt(phi2 / min(5 - 16 / 179 - 1, 2 - 1 / 179 - 1))
    assert check.effect == pytest.approx(round(v, 4)) and v == pytest.approx(0.805, abs=1e-3)
    # Every prompt is alike within its set, so only the split itself (or none) reaches chi-square 120.
    assert check.p_value == pytest.approx(1 / 1000) and check.flagged
    assert check.concept == pytest.approx({"function words": 2 / 3, "he": 1 / 3, "was": 1 / 3, "they": 0, "are": 0})
    assert check.neutral == pytest.approx({"function words": 2 / 3, "he": 0, "was": 0, "they": 1 / 3, "are": 1 / 3})
    # the four terms tie (30 each): shown in PROFILE_WORDS' order
    assert check.text == ("function words (register): function words 66.7%, he 33.3%, they 0.0%, was 33.3%, are 0.0% "
                          "vs function words 66.7%, he 0.0%, they 33.3%, was 0.0%, are 33.3% of words "
                          "(Cramér's V = 0.80, permutation p = 0.001)")
    d = check.to_dict()
    assert d["unit"] == "profile" and d["p_value"] == 0.001 and "999 shuffles" in d["method"]


def test_the_same_profile_is_not_flagged_and_the_counts_are_per_prompt():
    assert profile_counts(["I was in it, I think."]).tolist()[0][:2] == [2, 0]  # "I" lower-cased: column "i"
    counts = profile_counts(["She had the keys.", "We are in."])
    assert counts[0, -1] == 1 and counts[1, -1] == 0 and counts.sum() == 7  # "keys" is the one other word
    check = register_check(["she had a cat here"] * 20, ["she had a dog there"] * 20)
    assert check.effect == 0 and check.p_value == 1.0 and not check.flagged


def test_chi_square_and_the_corrected_v_match_references():
    from scipy.stats import chi2_contingency

    table = np.array([[12.0, 5, 30, 7], [3.0, 11, 25, 20]])
    ref = chi2_contingency(table, correction=False)[0]
    assert float(chi_square(table[0], table[1])) == pytest.approx(ref)
    batch = chi_square(np.stack([table[0], table[1]]), np.stack([table[1], table[0]]))
    assert batch == pytest.approx([ref, ref])
    assert cramers_v_corrected(0.0, 100, 4) == 0.0  # the correction floors at no effect
    n, k = table.sum(), 4
    assert cramers_v_corrected(ref, n, k) < np.sqrt(ref / n)  # bias-corrected: below the raw V


def test_a_small_difference_in_a_large_sample_is_significant_but_not_flagged():
    # 300 prompts a set; "the" in 40% vs 60% of them: a real but small shift in the profile.
    concept = ["the house of a man"] * 120 + ["a house of a man"] * 180
    neutral = ["the house of a man"] * 180 + ["a house of a man"] * 120
    check = register_check(concept, neutral)
    assert check.p_value < 0.05 and 0 < check.effect < REGISTER_EFFECT and not check.flagged


@pytest.mark.parametrize("concept,neutral", [("france.txt", "neutral.txt"), ("code.txt", "code-neutral.txt"),
                                             ("own/sea.txt", "own/sea-neutral.txt"),
                                             ("own/disease.txt", "own/disease-neutral.txt")])
def test_matched_pairs_pass(concept, neutral):
    check = register_check(load_prompts(PROMPTS / concept), load_prompts(PROMPTS / neutral))
    assert not check.flagged and check.effect < 0.1


@pytest.mark.parametrize("name", ["animals-wiki-vs-austen", "economy-factbook-vs-sotu"])
def test_the_pairs_confounded_on_purpose_are_flagged(name):
    concept = load_prompts(PROMPTS / "own" / f"{name}.txt")
    neutral = load_prompts(PROMPTS / "own" / f"{name}-neutral.txt")
    check = next(c for c in format_checks(concept, neutral) if c.name == "function words (register)")
    assert check.flagged and check.effect >= 0.3 and check.p_value < 0.01
    if name.startswith("animals"):  # Austen: "her", "was", "had"; Wikipedia: "are"
        assert check.neutral["her"] > 10 * check.concept["her"]


def test_the_format_checks_need_no_model():
    code = ("import sys; from spectrascope.core.stats.confounds import set_report; "
            "r = set_report(['She was here.'] * 3, ['It is there.'] * 3); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- format tokens enriched against a neutral set in another format are never concept words
PIECES = {0: " economy", 1: ";", 2: " and", 3: " debt", 4: " 2020", 5: " The", 6: " nation", 7: "."}


def test_enriched_punctuation_function_words_and_numbers_are_not_concept_words():
    # 60 concept prompts "economy ; and debt ; and 2020" against 60 "The nation ." prompts: ";", " and" and
    # " 2020" are as enriched in the concept set as " economy" and " debt", but keep their closed class.
    concept, neutral = [0, 1, 2, 3, 1, 2, 4], [5, 6, 7]
    ids = np.array(concept * 60 + neutral * 60)
    in_concept = np.r_[np.ones(7 * 60, bool), np.zeros(3 * 60, bool)]
    words = cw.concept_words(ids, in_concept, PIECES.__getitem__)
    z = dict(zip([PIECES[i] for i in range(8)], cw.log_odds_z(np.bincount(ids[in_concept], minlength=8),
                                                              np.bincount(ids[~in_concept], minlength=8))))
    assert min(z[";"], z[" and"], z[" 2020"]) >= cw.Z_MIN  # enriched all the same
    assert sorted(w[0] for w in words.words) == [" debt", " economy"]
    kind = dict(zip(ids[:7].tolist(), words.kind[:7].tolist()))
    assert (kind[1], kind[2], kind[0]) == (cw.PUNCTUATION, cw.FUNCTION, cw.CONCEPT) and kind[4] == cw.OTHER
    firing = sp.csc_matrix(np.isin(ids, [1, 2])[:, None] & in_concept[:, None])  # on ";" and " and" only
    check = cw.anchor_check(words, firing, 0)
    assert check.status == "function words" and check.failed and check.coverage == 0.0
