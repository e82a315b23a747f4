"""The verdict's label-permutation test: it reruns the decision as made, its p is uniform on null data
(KS test) and small on a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from spectrascope.core.analysis.contrast import feature_stats
from spectrascope.core.analysis.pairing import PairingSettings, pair, reclassify
from spectrascope.core.stats.permutation import PermutationTest, permutation_test, shuffled_labels, top_anchors
from tests.core.synthetic_sae import world


def test_top_anchors_rank_as_the_feature_statistics_do():
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, size=(40, 60)).astype(np.float32) * (rng.random((40, 60)) < 0.4)  # many ties
    acts[:, 5] = acts[:, 7]  # identical columns: the id breaks the tie
    acts[:, 9] = 0  # never fires
    labels = shuffled_labels(np.r_[np.ones(17, bool), np.zeros(23, bool)], 30, seed=1)
    got = top_anchors(acts, labels, 60, chunk=7)
    for row, lab in zip(got, labels):
        assert row.tolist() == feature_stats(acts, lab).ranked(60)


def test_shuffles_keep_the_set_sizes_and_are_seeded():
    base = np.r_[np.ones(5, bool), np.zeros(9, bool)]
    a = shuffled_labels(base, 50, seed=3)
    assert a.shape == (50, 14) and (a.sum(1) == 5).all() and len({r.tobytes() for r in a}) > 40
    np.testing.assert_array_equal(a, shuffled_labels(base, 50, seed=3))


def test_p_counts_the_observed_labels_as_one_shuffle():
    t = PermutationTest(200, 3, 3, 0, 10, 0.0)
    assert t.p_value == pytest.approx(1 / 201) and t.go_share == pytest.approx(0.05)
    assert PermutationTest(200, 0, 3, 200, 0, 0.0).p_value == 1.0
    assert "permutation p = 0.005" in t.text


def _null_p(seed: int, n_coarse: int = 60, k: int = 3, n_perm: int = 200) -> float:
    """One synthetic null run: both sets drawn alike; each coarse feature has its own (distinct) count."""
    rng = np.random.default_rng(seed)
    acts = rng.gamma(1.0, size=(40, n_coarse)) * (rng.random((40, n_coarse)) < 0.5)
    is_concept = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    counts = rng.permutation(n_coarse)  # the label-free sub-feature count of each coarse feature
    observed = counts[feature_stats(acts, is_concept).ranked(k)].max()
    test = permutation_test(acts, is_concept, lambda ids: counts[ids], k, 3, observed, n_perm, seed=seed + 1)
    return test.p_value


def test_p_is_uniform_on_null_data():
    ps = np.array([_null_p(seed) for seed in range(300)])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert np.mean(ps <= 0.05) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / len(ps))  # valid at 5%


def test_a_broken_test_would_fail_the_ks_check():
    """The check above can fail: the same runs without the +1 (or scored against the best anchor only
    on the real labels' choice) are far from uniform."""
    rng = np.random.default_rng(0)
    ps = []
    for seed in range(100):
        acts = rng.gamma(1.0, size=(40, 60)) * (rng.random((40, 60)) < 0.5)
        is_concept = np.r_[np.ones(20, bool), np.zeros(20, bool)]
        counts = rng.permutation(60)
        observed = counts[feature_stats(acts, is_concept).ranked(3)].max()
        # Broken: compares with single random features instead of the best of three.
        single = counts[rng.integers(0, 60, 200)]
        ps.append((1 + (single >= observed).sum()) / 201)
    assert stats.kstest(ps, "uniform").pvalue < 1e-6


def _distinct_world(seed: int, concept_topic: int | None):
    children = list(np.random.default_rng(seed).permutation(12))  # 0..11 sub-features, one count each
    return world(children, n_concept=24, n_neutral=24, tokens=6, concept_topic=concept_topic, seed=seed), children


def test_whole_pipeline_p_is_uniform_on_null_data():
    """pair() end to end (anchor by selectivity, cosine, correlation, token nesting, best of K) on
    synthetic runs whose two sets are drawn alike."""
    ps = []
    for seed in range(60):
        (r, wc, wf, _), _ = _distinct_world(seed, None)
        res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=1, n_permutations=200))
        ps.append(res.verdict.permutation.p_value)
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_planted_signal_gets_a_small_p():
    for seed in range(3):
        # 200 coarse features, each in half of the prompts (as dense as the concept's, so a shuffle
        # is no likelier to pick it); the concept's topic splits into 6, the others into 0-2.
        children = list(np.random.default_rng(seed).integers(0, 3, 200))
        children[7] = 6
        r, wc, wf, _ = world(children, n_concept=50, n_neutral=50, concept_topic=7, topic_rate=0.5, seed=seed)
        res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=3))
        v = res.verdict
        assert res.anchors[0] == 7 and v.go and v.count == 6
        assert v.permutation.p_value <= 0.05 and v.permutation.go_share < 0.1
        assert v.to_dict()["permutation_p"] == v.permutation.p_value
    # The same world on a dozen features: the best of 3 random anchors is often the most-split one.
    (r, wc, wf, _), children = _distinct_world(0, int(np.argmax(_distinct_world(0, None)[1])))
    res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=3))
    assert res.verdict.go and res.verdict.permutation.p_value > 0.1


def test_the_observed_decision_is_the_shuffles_decision_on_the_real_labels():
    (r, wc, wf, _), _ = _distinct_world(5, 3)
    res = pair(r, torch.tensor(wc), torch.tensor(wf))
    got = top_anchors(r.per_prompt("coarse"), r.is_concept[None, :], 3)
    assert got[0].tolist() == res.anchors
    counts = [len(res.pairings[a].sub_features()) for a in res.anchors]
    assert res.verdict.permutation.observed == max(counts) == res.verdict.count


def test_hand_picked_anchors_get_no_permutation_p():
    (r, wc, wf, _), _ = _distinct_world(2, 3)
    top = pair(r, torch.tensor(wc), torch.tensor(wf))
    picked = pair(r, torch.tensor(wc), torch.tensor(wf), anchors=[top.anchors[2], top.anchors[0]])
    assert picked.verdict.permutation is None and "picked by hand" in picked.verdict.permutation_note
    assert picked.verdict.to_dict()["permutation_p"] is None
    same = pair(r, torch.tensor(wc), torch.tensor(wf), anchors=top.anchors)  # a restored session's anchors
    assert same.verdict.permutation.p_value == top.verdict.permutation.p_value
    off = reclassify(top, PairingSettings(n_permutations=0))
    assert off.verdict.permutation is None and off.verdict.permutation_note
