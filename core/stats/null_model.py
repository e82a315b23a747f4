"""How surprising is a GO? The base rate of "splits into N+ sub-features" over all coarse features.

The verdict asks whether the chosen coarse anchor has at least `needed` fine
sub-features (cosine >= θ and correlation >= ρ, and nested in it token by token where the
run has token firing: core/stats/hierarchy.py; see core/analysis/pairing.py). Whether
that means anything depends on how many coarse features would pass the same
test anyway: with many fine features, a loose θ or a small prompt set, most do.
So every coarse feature that fires on at least one prompt is paired with every
fine feature in the same way, and the verdict reports

    base rate  = share of those features with >= `needed` sub-features
    p (anchor) = share with at least as many sub-features as the anchor

an empirical null over the SAE's own features, not a parametric test. For SAEs
wider than `max_features` a seeded random sample of features stands in (said so).
It answers "is this anchor's split unusual among features?", not "would these prompt sets give
a GO anyway?": that is the label-permutation test's question (core/stats/permutation.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from spectrascope.core.stats.hierarchy import Nesting


@dataclass(frozen=True)
class NullModel:
    needed: int
    anchor: int | None
    anchor_count: int
    n_features: int  # live coarse features examined (fire on >= 1 prompt)
    n_passing: int  # of those, with >= `needed` sub-features
    n_at_least_anchor: int  # of those, with >= anchor_count sub-features
    sampled: bool  # True when a random sample of the live features was examined

    @property
    def base_rate(self) -> float:
        return self.n_passing / self.n_features if self.n_features else float("nan")

    @property
    def p_value(self) -> float:
        return self.n_at_least_anchor / self.n_features if self.n_features else float("nan")

    @property
    def text(self) -> str:
        if not self.n_features:
            return "no live coarse feature to compare against"
        some = "sampled " if self.sampled else ""
        head = (f"base rate: {self.n_passing:,} of {self.n_features:,} {some}live coarse features "
                f"({100 * self.base_rate:.1f}%) also have >= {self.needed} sub-features; ")
        if self.anchor_count == 0:  # p counts features with >= 1 (see null_model): say so, not ">= 0"
            return head + (f"the anchor has none, and {self.n_at_least_anchor:,} ({100 * self.p_value:.1f}%) "
                           f"have at least one")
        return head + (f"{self.n_at_least_anchor:,} ({100 * self.p_value:.1f}%) have >= {self.anchor_count} "
                       f"like the anchor (empirical p = {self.p_value:.3f})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base_rate": self.base_rate, "p_value": self.p_value, "text": self.text}


def _standardized(a: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (float64); constant columns become 0, so their
    correlation with anything is 0, as in pairing.pearson."""
    a = np.asarray(a, np.float64)
    a = a - a.mean(0)
    norm = np.sqrt((a * a).sum(0))
    ok = norm > 1e-12 * max(1.0, float(np.abs(a).max(initial=0.0)))
    return np.divide(a, norm, out=np.zeros_like(a), where=ok)


def subfeature_counts(
    acts_coarse: np.ndarray, acts_fine: np.ndarray, coarse_W_dec: Any, fine_W_dec: Any, features: np.ndarray,
    cos_threshold: float, corr_threshold: float, chunk: int = 256, fine_chunk: int = 32768,
    nesting: Nesting | None = None, tick: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Sub-feature count of each coarse feature in `features`, as pairing.pair classifies. # (k,)

    acts_*: (N, F) per-prompt activations; *_W_dec: (F, d) decoder rows; `nesting`: the token-level
    hierarchy test (core/stats/hierarchy.py) the pairs passing both thresholds must also pass (None:
    cosine and correlation alone). The fine decoder is taken `fine_chunk` rows at a time into float32:
    a whole fp32 copy of Gemma Scope 262K's (normalised, so two) was 4.5 GB of transient memory, the
    peak of a real-size contrast run. `tick(fraction done)` is called after every block (a caller's
    progress line, and its way to stop: an exception it raises ends the count)."""
    import torch

    from spectrascope.core.stats.hierarchy import NESTED

    zf = torch.from_numpy(_standardized(acts_fine))  # (N, Ff)
    wf_all = torch.as_tensor(fine_W_dec).detach().cpu()  # its own dtype (bf16 at real size)
    wc_all = torch.as_tensor(coarse_W_dec).detach().float().cpu()
    out = np.zeros(len(features), np.int64)
    blocks = max(1, -(-wf_all.shape[0] // fine_chunk) * -(-len(features) // chunk))
    done = 0
    with torch.inference_mode():
        for f0 in range(0, wf_all.shape[0], fine_chunk):
            wf = wf_all[f0:f0 + fine_chunk].float()
            wf = wf / wf.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (fc, d)
            for s in range(0, len(features), chunk):
                ids = features[s:s + chunk]
                zc = torch.from_numpy(_standardized(acts_coarse[:, ids]))  # (N, c)
                corr = zc.T @ zf[:, f0:f0 + fine_chunk]  # (c, fc)
                wc = wc_all[ids]
                cos = (wc / wc.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ wf.T  # (c, fc)
                passing = (corr >= corr_threshold) & (cos >= cos_threshold)
                if nesting is None:
                    out[s:s + chunk] += passing.sum(1).numpy()
                else:
                    rows, cols = (np.array(t.numpy()) for t in passing.nonzero(as_tuple=True))  # ~0.1% of pairs
                    both = nesting.cofiring(ids, slice(f0, f0 + wf.shape[0]))[rows, cols] if len(rows) else []
                    cls = nesting.pair_classes(both, np.asarray(ids)[rows], cols + f0, cos[rows, cols].numpy())
                    out[s:s + chunk] += np.bincount(rows[cls == NESTED], minlength=len(ids))
                done += 1
                if tick is not None:
                    tick(done / blocks)
    return out


def live_features(acts_coarse: np.ndarray, max_features: int = 4096, seed: int = 0) -> tuple[np.ndarray, bool]:
    """The coarse features that fire on at least one prompt (a seeded sample of `max_features` of them
    when there are more), and whether it is a sample."""
    live = np.flatnonzero((np.asarray(acts_coarse) > 0).any(0))
    sampled = len(live) > max_features
    if sampled:
        live = np.sort(np.random.default_rng(seed).choice(live, max_features, replace=False))
    return live, sampled


def null_from_counts(counts: np.ndarray, needed: int, anchor: int | None, anchor_count: int,
                     sampled: bool) -> NullModel:
    """The null model from the sub-feature counts of the live coarse features."""
    return NullModel(needed, anchor, anchor_count, len(counts), int((counts >= needed).sum()),
                     int((counts >= max(anchor_count, 1)).sum()) if anchor is not None else 0, sampled)


def null_model(
    acts_coarse: np.ndarray, acts_fine: np.ndarray, coarse_W_dec: Any, fine_W_dec: Any,
    cos_threshold: float, corr_threshold: float, needed: int, anchor: int | None, anchor_count: int,
    max_features: int = 4096, seed: int = 0, nesting: Nesting | None = None,
) -> NullModel:
    """The base rate of the verdict over the live coarse features (see module doc)."""
    live, sampled = live_features(acts_coarse, max_features, seed)
    counts = subfeature_counts(acts_coarse, acts_fine, coarse_W_dec, fine_W_dec, live, cos_threshold,
                               corr_threshold, nesting=nesting)
    return null_from_counts(counts, needed, anchor, anchor_count, sampled)
