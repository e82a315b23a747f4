"""How sure is a feature's selectivity? A bootstrap interval over the prompts of each set.

Selectivity = max(0, 2 AUROC - 1) of the per-prompt activation (core/analysis/contrast.py). Its
interval resamples the concept and the neutral prompts separately (each set keeps its size), recomputes
AUROC as the Mann-Whitney U from ranks for every resample at once, and takes the BCa interval
(scipy.stats.bootstrap), or the percentile one where BCa is undefined (every resample gives the same
AUROC, as when the sets are separated perfectly). The interval is mapped through 2 A - 1, floored at
0, which is monotone, so it is the selectivity's interval too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

N_RESAMPLES = 2000
LEVEL = 0.95


def _auroc(c: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(c > n) + P(c = n) / 2 along `axis`, for any leading batch shape."""
    from scipy.stats import rankdata

    c, n = np.moveaxis(np.asarray(c, float), axis, -1), np.moveaxis(np.asarray(n, float), axis, -1)
    nc, nn = c.shape[-1], n.shape[-1]
    ranks = rankdata(np.concatenate([c, n], axis=-1), axis=-1)
    u = ranks[..., :nc].sum(-1) - nc * (nc + 1) / 2
    return u / (nc * nn)


@dataclass(frozen=True)
class SelectivityCI:
    feature: int
    auroc: float
    low: float  # AUROC interval
    high: float
    method: str  # "BCa" or "percentile"

    @property
    def selectivity(self) -> tuple[float, float]:
        """The interval of max(0, 2 AUROC - 1)."""
        return max(0.0, 2 * self.low - 1), max(0.0, 2 * self.high - 1)

    @property
    def text(self) -> str:
        lo, hi = self.selectivity
        return f"[{lo:.2f}, {hi:.2f}]"

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.selectivity
        return {"feature": self.feature, "auroc": round(self.auroc, 5), "auroc_ci95": [round(self.low, 5),
                round(self.high, 5)], "selectivity_ci95": [round(lo, 5), round(hi, 5)], "method": self.method}


def selectivity_ci(acts: np.ndarray, is_concept: np.ndarray, feature: int, n_resamples: int = N_RESAMPLES,
                   seed: int = 0, level: float = LEVEL) -> SelectivityCI:
    """The interval of one feature from (N, F) per-prompt activations and the (N,) concept mask."""
    from scipy.stats import bootstrap

    x = np.asarray(acts)[:, int(feature)].astype(np.float64)
    mask = np.asarray(is_concept, bool)
    c, n = x[mask], x[~mask]
    point = float(_auroc(c, n))
    res = None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate BCa is caught below, not printed
            res = bootstrap((c, n), _auroc, n_resamples=n_resamples, confidence_level=level, method=method,
                            vectorized=True, random_state=np.random.default_rng(seed), batch=200)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return SelectivityCI(int(feature), point, lo, hi, method)
    return SelectivityCI(int(feature), point, point, point, "none")
