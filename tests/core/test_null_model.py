"""The verdict's null model on synthetic data where the answer is known, and against pairing's own maths."""

import numpy as np
import pytest

from spectrascope.core.stats.null_model import null_model, subfeature_counts
from spectrascope.core.analysis.pairing import SUB_FEATURE, classify, decoder_cosine, pearson


def synthetic(n_prompts=120, n_coarse=40, n_fine=200, d=16, splits=(0, 1), seed=0):
    """Random coarse/fine SAEs; coarse features in `splits` get 4 fine children each (similar
    direction, correlated activations): the only features that truly split."""
    rng = np.random.default_rng(seed)
    wc = rng.normal(size=(n_coarse, d))
    wf = rng.normal(size=(n_fine, d))
    ac = np.maximum(0, rng.normal(size=(n_prompts, n_coarse)))
    af = np.maximum(0, rng.normal(size=(n_prompts, n_fine)))
    for j, c in enumerate(splits):
        for k in range(4):
            f = 4 * j + k
            wf[f] = wc[c] + 0.3 * rng.normal(size=d)
            af[:, f] = ac[:, c] * (1 + 0.1 * rng.random(n_prompts))
    ac[:, -1] = 0  # a dead coarse feature is not part of the null
    return ac, af, wc.astype(np.float32), wf.astype(np.float32)


def test_counts_equal_pairing_classes():
    ac, af, wc, wf = synthetic()
    feats = np.arange(ac.shape[1])
    got = subfeature_counts(ac, af, wc, wf, feats, 0.3, 0.5, chunk=7)
    cos = decoder_cosine(wc, wf)
    want = [int((classify(cos[c], pearson(ac[:, c], af), 0.3, 0.5) == SUB_FEATURE).sum()) for c in feats]
    np.testing.assert_array_equal(got, want)
    # The fine decoder a chunk at a time (an uneven last chunk): the same counts.
    np.testing.assert_array_equal(subfeature_counts(ac, af, wc, wf, feats, 0.3, 0.5, chunk=7, fine_chunk=13), want)


def test_known_answer_base_rate_and_p():
    ac, af, wc, wf = synthetic()
    nm = null_model(ac, af, wc, wf, 0.3, 0.5, needed=3, anchor=0, anchor_count=4)
    assert nm.n_features == ac.shape[1] - 1  # the dead feature is left out
    assert nm.n_passing == 2 and nm.n_at_least_anchor == 2  # only the two planted splits
    assert nm.base_rate == pytest.approx(2 / 39) and nm.p_value == pytest.approx(2 / 39)
    assert "2 of 39" in nm.text
    # Loose thresholds: everything "splits", and the null says so.
    loose = null_model(ac, af, wc, wf, -1.0, -1.0, needed=3, anchor=0, anchor_count=4)
    assert loose.base_rate == 1.0 and loose.p_value == 1.0


def test_sampling_is_seeded_and_said():
    ac, af, wc, wf = synthetic()
    a = null_model(ac, af, wc, wf, 0.3, 0.5, 3, 0, 4, max_features=10, seed=3)
    b = null_model(ac, af, wc, wf, 0.3, 0.5, 3, 0, 4, max_features=10, seed=3)
    assert a == b and a.sampled and a.n_features == 10 and "sampled" in a.text


def test_a_no_go_with_no_sub_feature_says_so_instead_of_at_least_zero():
    from spectrascope.core.stats.null_model import NullModel

    text = NullModel(3, 7, 0, 100, 6, 27, False).text
    assert "the anchor has none, and 27 (27.0%) have at least one" in text and ">= 0" not in text
