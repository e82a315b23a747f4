"""Shared timing for the benchmarks: ours and a baseline, interleaved in the same run."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int,
                        sync: Callable[[], object] = lambda: None, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn so load spikes hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}
