"""Would these prompt sets give a GO anyway? A label-permutation test of the whole decision.

The decision is: rank coarse features by selectivity (2 AUROC - 1 of the per-prompt activation,
ties by r_c - r_n, then id), take the top K as anchors, and say GO when one of them has at least N
sub-features. Picking the best of K anchors, each with many fine candidates, says GO on random
labels fairly often; the null model over single features (null_model.py) does not see that.

Test statistic: T = the largest sub-feature count among the top-K anchors (the verdict's count).
The concept/neutral labels are shuffled at the prompt level (set sizes kept) and the whole decision
is rerun on the cached per-prompt activations: no forward. Each shuffle chooses its own anchors by
its own selectivity; their sub-feature counts are looked up, not recomputed, because everything
after the anchor choice (decoder cosine, correlation over all prompts, token nesting over all tokens)
ignores the labels. Then

    permutation p = (1 + #{shuffles with T >= T observed}) / (1 + n)     (a shuffle counts as extreme
                                                                          as the data: p is never 0)
    GO share      = #{shuffles with T >= N} / n                         (how often random labels say GO)

Vectorised: per-feature ranks of the activations do not depend on the labels, so the Mann-Whitney
U of every shuffle and feature is one (n, N) x (N, F) product; firing rates likewise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

N_PERMUTATIONS = 200  # p resolves to 1/201 ~ 0.005; the review's GO rate (~20%) to about +-3 points
STATISTIC = ("T = the largest number of sub-features among the top-K anchors by selectivity; labels shuffled "
             "between the concept and neutral prompts, anchors chosen again each time; "
             "p = (1 + #shuffles with T >= observed) / (1 + shuffles)")


@dataclass(frozen=True)
class PermutationTest:
    n_permutations: int
    observed: int  # T on the real labels: the verdict's sub-feature count
    needed: int  # N: the count GO needs
    n_at_least: int  # shuffles with T >= observed
    n_go: int  # shuffles with T >= needed
    seconds: float
    seed: int = 0

    @property
    def p_value(self) -> float:
        return (1 + self.n_at_least) / (1 + self.n_permutations)

    @property
    def go_share(self) -> float:
        return self.n_go / self.n_permutations if self.n_permutations else float("nan")

    @property
    def text(self) -> str:
        return (f"permutation p = {self.p_value:.3f} ({self.n_at_least} of {self.n_permutations} label shuffles "
                f"reach {self.observed} sub-features; {self.go_share:.0%} of them say GO)")

    @property
    def short(self) -> str:
        return f"permutation p = {self.p_value:.3f} ({self.go_share:.0%} of {self.n_permutations} label shuffles say GO)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p_value": self.p_value, "go_share": self.go_share, "statistic": STATISTIC,
                "text": self.text}


def shuffled_labels(is_concept: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, N) bool: `n` shuffles of the labels, each keeping the set sizes."""
    rng = np.random.default_rng(seed)
    base = np.asarray(is_concept, bool)
    return np.stack([rng.permutation(base) for _ in range(n)]) if n else np.zeros((0, base.size), bool)


def top_anchors(acts: np.ndarray, labels: np.ndarray, k: int, ranks: np.ndarray | None = None,
                chunk: int = 256) -> np.ndarray:
    """The top-`k` coarse features for each row of `labels` (n, N), ranked as FeatureStats.ranked (the
    always-on ones last). # (n, k)

    Selectivity is rounded to float32 as FeatureStats keeps it, so ties break the same way; the
    U statistics are exact (sums of half-integer ranks in float64). Only the features tied with or
    above each row's k-th selectivity are sorted (np.partition first): a full sort of every row
    was 60% of the time."""
    from spectrascope.core.analysis.contrast import average_ranks

    acts = np.asarray(acts)
    labels = np.atleast_2d(np.asarray(labels, bool))
    ranks = average_ranks(acts) if ranks is None else ranks  # (N, F), label-free
    fires = (acts > 0).astype(np.float64)
    total = fires.sum(0)
    from spectrascope.core.engine.labels import ALWAYS_ON_PROMPTS

    always_on = total / max(1, acts.shape[0]) >= ALWAYS_ON_PROMPTS  # label-free: out of every shuffle's ranking
    n_c = int(labels[0].sum())
    n_n = labels.shape[1] - n_c
    k = min(k, acts.shape[1])
    out = np.empty((labels.shape[0], k), np.int64)
    for s in range(0, labels.shape[0], chunk):  # (chunk, F) blocks keep memory flat at 16K+ features
        m = labels[s:s + chunk].astype(np.float64)
        auc = (m @ ranks - n_c * (n_c + 1) / 2) / (n_c * n_n)
        sel = np.maximum(0.0, 2 * auc - 1).astype(np.float32)
        sel[:, always_on] = -1.0  # below every other feature's floor of 0, as FeatureStats.ranked leaves them out
        in_c = m @ fires
        gap = in_c / n_c - (total - in_c) / n_n  # r_c - r_n, as FeatureStats computes it
        kth = -np.partition(-sel, k - 1, axis=1)[:, k - 1:k]  # each row's k-th largest selectivity
        rows, cols = np.nonzero(sel >= kth)  # usually k a row; more only on ties
        order = np.lexsort((cols, -gap[rows, cols], -sel[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        first = np.searchsorted(rows, np.arange(m.shape[0]))  # each row's first candidate, best first
        out[s:s + chunk] = cols[first[:, None] + np.arange(k)[None, :]]
    return out


def permutation_test(acts: np.ndarray, is_concept: np.ndarray, counts_of: Callable[[np.ndarray], np.ndarray],
                     k: int, needed: int, observed: int, n: int = N_PERMUTATIONS, seed: int = 0,
                     ranks: np.ndarray | None = None) -> PermutationTest:
    """The test of the module doc. acts: (N, Fc) per-prompt coarse activations; counts_of(ids) -> the
    sub-feature count of each coarse feature in `ids` at the verdict's thresholds; k: anchors per
    decision; observed: T on the real labels."""
    import time

    t0 = time.perf_counter()
    anchors = top_anchors(acts, shuffled_labels(is_concept, n, seed), k, ranks)
    unique, where = np.unique(anchors, return_inverse=True)
    counts = np.asarray(counts_of(unique), np.int64)[where.reshape(anchors.shape)]
    t = counts.max(1) if counts.size else np.zeros(n, np.int64)
    return PermutationTest(n, int(observed), int(needed), int((t >= observed).sum()), int((t >= needed).sum()),
                           round(time.perf_counter() - t0, 4), seed)
