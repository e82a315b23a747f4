"""Exact (Clopper-Pearson) intervals of proportions: firing rates, shares of runs.

For k successes of n the 95% interval is

    low  = Beta(alpha/2; k, n - k + 1)      (0 when k = 0)
    high = Beta(1 - alpha/2; k + 1, n - k)  (1 when k = n)

the quantiles of the beta distribution (Clopper & Pearson 1934), what scipy's
`binomtest(k, n).proportion_ci(method="exact")` gives, computed here for whole arrays at once. It never
collapses to a point: 0 of 200 prompts is [0, 1.8%], not [0, 0].
"""

from __future__ import annotations

from typing import Any

import numpy as np

LEVEL = 0.95
DEFINITION = "exact binomial 95% interval (Clopper-Pearson)"


def exact_ci(k: Any, n: Any, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of k of n, elementwise (arrays or numbers); NaN where n is 0."""
    from scipy.stats import beta

    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64) + np.zeros_like(k)
    alpha = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k <= 0, 0.0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1))
        high = np.where(k >= n, 1.0, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)))
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def rate_ci(rate: Any, n: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The interval of a rate that is a count over `n` (count / n, as the contrast run keeps it)."""
    return exact_ci(np.rint(np.asarray(rate, np.float64) * n), n, level)


def pair(low: Any, high: Any, digits: int = 4) -> list[float] | None:
    """[low, high] rounded for a report (None for an empty set)."""
    low, high = float(low), float(high)
    return None if not (np.isfinite(low) and np.isfinite(high)) else [round(low, digits), round(high, digits)]
