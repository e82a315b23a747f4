"""The residual stream's reference statistics at an SAE's hook: the centre per-token fidelity is
measured from, and which dimensions are "massive".

Gemma's residual has a few dimensions that hold almost all of |x|² (three at layer 9 of Gemma 3
270M, ~97%), so 1 - |x - x̂|² / |x|² reads 0.99 for nearly any fit; a constant mean vector
already scores 0.92. Per-token fidelity is therefore

    fidelity_t = 1 - |x_t - x̂_t|² / E|x - μ|²

with μ and E|x - μ|² from the SAE's training distribution. Its mean over tokens drawn from that
distribution *is* the held-out explained variance (centered, as SAELens reports it), the mean
predictor x̂ = μ scores 0 on average, and a token can go negative when its error exceeds the
typical spread (BOS always does).

The centred spread is still ~65% the massive dimensions' (their variance is large too, and every
SAE reconstructs them at >= 0.998), so this reads ~0.95 on any text. The headline is therefore the
same fidelity over the other dimensions only (r = not massive):

    fidelity_rest_t = 1 - |(x_t - x̂_t)_r|² / E|(x - μ)_r|²

The embedded SAEs ship `residual_stats.json` (from the training cache) and, beside it,
`fidelity_reference.json` (core/engine/fidelity.py: E|(x - μ)_r|² and the poor-fit threshold, a
low percentile of fidelity_rest on reference text). Any other SAE gets all of these estimated on a
calibration text at attach time, which says so (`source`, `poor_source`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

FILE = "residual_stats.json"
REFERENCE_FILE = "fidelity_reference.json"  # written by core/engine/fidelity.py
MASSIVE_DIMS = 3


@dataclass(frozen=True)
class ResidualStats:
    mean: torch.Tensor  # (d,) float32: μ
    centered_sq_norm: float  # E|x - μ|²
    massive_dims: tuple[int, ...]  # largest mean x² first
    tokens: int  # how many residuals the estimate rests on
    source: str  # "training cache" or "calibration text", for the UI
    rest_centered_sq_norm: float | None = None  # E|(x - μ)_r|² over the non-massive dims r (None: not known)
    poor_below: float | None = None  # fidelity_rest below this is a poor fit (None: below 0, the mean predictor)
    poor_source: str = ""  # where `poor_below` (and the rest spread) come from, for the UI

    @classmethod
    def estimate(cls, resid: torch.Tensor, source: str) -> "ResidualStats":
        """From residuals (N, d), BOS already left out."""
        x = resid.double()
        mean = x.mean(0)
        spread = float((x - mean).pow(2).sum(-1).mean())
        massive = tuple(int(i) for i in torch.topk(x.pow(2).mean(0), min(MASSIVE_DIMS, x.shape[1])).indices.tolist())
        made = cls(mean.float(), spread, massive, int(x.shape[0]), source)
        return replace(made, rest_centered_sq_norm=made.rest_spread(resid))

    @cached_property
    def rest_dims(self) -> list[int]:
        """The dimensions that are not massive, in order."""
        massive = set(self.massive_dims)
        return [i for i in range(self.mean.shape[0]) if i not in massive]

    def rest_spread(self, resid: torch.Tensor) -> float:
        """E|(x - μ)_r|² of residuals (N, d) around this μ (the training mean where shipped)."""
        r = self.rest_dims
        return float((resid.double()[:, r] - self.mean.double()[r]).pow(2).sum(-1).mean())

    def to_json(self) -> str:
        return json.dumps({"mean": [round(v, 5) for v in self.mean.tolist()], "centered_sq_norm": self.centered_sq_norm,
                           "massive_dims": list(self.massive_dims), "tokens": self.tokens, "source": self.source})

    @classmethod
    def load(cls, folder: str | Path | None) -> "ResidualStats | None":
        path = Path(folder) / FILE if folder is not None else None
        if path is None or not path.is_file():
            return None
        d: dict[str, Any] = json.loads(path.read_text())
        ref: dict[str, Any] = {}
        if (path.parent / REFERENCE_FILE).is_file():  # the rest spread and poor-fit threshold, measured beside
            ref = json.loads((path.parent / REFERENCE_FILE).read_text())
        rest = ref.get("rest_centered_sq_norm")
        return cls(torch.tensor(d["mean"], dtype=torch.float32), float(d["centered_sq_norm"]),
                   tuple(d["massive_dims"]), int(d["tokens"]), str(d["source"]),
                   None if rest is None else float(rest), ref.get("poor_below"), str(ref.get("poor_source", "")))

    def fidelity(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """1 - |x - x̂|² / E|x - μ|² per row. # (T,)"""
        err = (x.float() - x_hat.float()).pow(2).sum(-1)
        return 1 - err / max(self.centered_sq_norm, 1e-12)

    def fidelity_rest(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """1 - |(x - x̂)_r|² / E|(x - μ)_r|² per row, r = the non-massive dims (NaN while E|.|² is unknown). # (T,)"""
        err = (x.float() - x_hat.float())[..., self.rest_dims].pow(2).sum(-1)
        if self.rest_centered_sq_norm is None:
            return torch.full_like(err, float("nan"))
        return 1 - err / max(self.rest_centered_sq_norm, 1e-12)

    @property
    def poor_threshold(self) -> float:
        """`poor_below`, floored at 0 (the mean predictor's average): an SAE that fits no token better than
        the mean has every token flagged, not only its worst 5%."""
        return max(0.0, self.poor_below if self.poor_below is not None else 0.0)

    @property
    def poor_threshold_source(self) -> str:
        if self.poor_below is not None and self.poor_below >= 0:
            return self.poor_source
        known = f" ({self.poor_source}: {self.poor_below:.2f}, lower)" if self.poor_below is not None else ""
        return f"0, the mean predictor's average{known}"

    def poor(self, fidelity_rest: torch.Tensor) -> torch.Tensor:
        """Which tokens fit poorly: fidelity_rest below `poor_threshold`. # (T,) bool"""
        return fidelity_rest < self.poor_threshold

    def massive_share(self, x: torch.Tensor) -> torch.Tensor:
        """Share of each row's |x|² in the massive dimensions. # (T,)"""
        sq = x.float().pow(2)
        return sq[..., list(self.massive_dims)].sum(-1) / sq.sum(-1).clamp_min(1e-12)
