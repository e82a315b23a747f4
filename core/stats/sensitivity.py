"""Does the verdict survive other thresholds? The GO/NO-GO over a grid of cosine x correlation x N.

A verdict decided by a correlation of 0.508 against a 0.5 threshold is a coin flip on the threshold,
not a finding. So the same anchors are classified again at every point of a small grid around the
defaults (no model call: their cosines, correlations and nesting are kept), and the report gives the
best anchor's sub-feature count at each (cosine, correlation) and the share of all grid points
(x each N) that say GO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

COS_GRID = (0.25, 0.30, 0.35, 0.40)
CORR_GRID = (0.40, 0.45, 0.50, 0.55, 0.60)
NEEDED_GRID = (2, 3, 4)


@dataclass(frozen=True)
class ThresholdGrid:
    cos: tuple[float, ...]
    corr: tuple[float, ...]
    needed: tuple[int, ...]
    best: tuple[tuple[int, ...], ...]  # [i][j]: the best anchor's sub-feature count at cos[i], corr[j]

    def go(self) -> np.ndarray:
        """(cos, corr, needed) bool: the verdict at each grid point."""
        return np.asarray(self.best)[:, :, None] >= np.asarray(self.needed)[None, None, :]

    @property
    def go_share(self) -> float:
        g = self.go()
        return float(g.mean()) if g.size else float("nan")

    @property
    def text(self) -> str:
        g = self.go()
        return (f"{g.sum()} of {g.size} threshold settings say GO ({self.go_share:.0%}; cosine "
                f"{self.cos[0]:.2f}-{self.cos[-1]:.2f} x correlation {self.corr[0]:.2f}-{self.corr[-1]:.2f} x "
                f"N {self.needed[0]}-{self.needed[-1]})")

    @property
    def short(self) -> str:
        return f"GO at {self.go().sum()} of {self.go().size} threshold settings"

    def markdown(self, current: tuple[float, float] | None = None) -> list[str]:
        """The grid as a Markdown table of best counts (the cell at `current` (cos, corr) in bold)."""
        lines = ["| cosine \\ correlation | " + " | ".join(f"{r:.2f}" for r in self.corr) + " |",
                 "|---:|" + "---:|" * len(self.corr)]
        for i, c in enumerate(self.cos):
            cells = [f"**{n}**" if current is not None and np.isclose(current, (c, r)).all() else str(n)
                     for r, n in zip(self.corr, self.best[i])]
            lines.append(f"| {c:.2f} | " + " | ".join(cells) + " |")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"cos": list(self.cos), "corr": list(self.corr), "needed": list(self.needed),
                "best_count": [list(r) for r in self.best], "go": self.go().tolist(), "go_share": self.go_share,
                "text": self.text}


def threshold_grid(best_count: Callable[[float, float], int], cos: Sequence[float] = COS_GRID,
                   corr: Sequence[float] = CORR_GRID, needed: Sequence[int] = NEEDED_GRID) -> ThresholdGrid:
    """best_count(cos_threshold, corr_threshold) -> the most sub-features any anchor has there."""
    best = tuple(tuple(int(best_count(c, r)) for r in corr) for c in cos)
    return ThresholdGrid(tuple(cos), tuple(corr), tuple(int(n) for n in needed), best)
