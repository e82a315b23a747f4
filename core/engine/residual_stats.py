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

The embedded SAEs ship `residual_stats.json` (from the training cache). Any other SAE gets
estimates from a calibration text at attach time, which says so (`source`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FILE = "residual_stats.json"
MASSIVE_DIMS = 3


@dataclass(frozen=True)
class ResidualStats:
    mean: torch.Tensor  # (d,) float32: μ
    centered_sq_norm: float  # E|x - μ|²
    massive_dims: tuple[int, ...]  # largest mean x² first
    tokens: int  # how many residuals the estimate rests on
    source: str  # "training cache" or "calibration text", for the UI

    @classmethod
    def estimate(cls, resid: torch.Tensor, source: str) -> "ResidualStats":
        """From residuals (N, d), BOS already left out."""
        x = resid.double()
        mean = x.mean(0)
        spread = float((x - mean).pow(2).sum(-1).mean())
        massive = torch.topk(x.pow(2).mean(0), min(MASSIVE_DIMS, x.shape[1])).indices.tolist()
        return cls(mean.float(), spread, tuple(int(i) for i in massive), int(x.shape[0]), source)

    def to_json(self) -> str:
        return json.dumps({"mean": [round(v, 5) for v in self.mean.tolist()], "centered_sq_norm": self.centered_sq_norm,
                           "massive_dims": list(self.massive_dims), "tokens": self.tokens, "source": self.source})

    @classmethod
    def load(cls, folder: str | Path | None) -> "ResidualStats | None":
        path = Path(folder) / FILE if folder is not None else None
        if path is None or not path.is_file():
            return None
        d: dict[str, Any] = json.loads(path.read_text())
        return cls(torch.tensor(d["mean"], dtype=torch.float32), float(d["centered_sq_norm"]),
                   tuple(d["massive_dims"]), int(d["tokens"]), str(d["source"]))

    def fidelity(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """1 - |x - x̂|² / E|x - μ|² per row. # (T,)"""
        err = (x.float() - x_hat.float()).pow(2).sum(-1)
        return 1 - err / max(self.centered_sq_norm, 1e-12)

    def massive_share(self, x: torch.Tensor) -> torch.Tensor:
        """Share of each row's |x|² in the massive dimensions. # (T,)"""
        sq = x.float().pow(2)
        return sq[..., list(self.massive_dims)].sum(-1) / sq.sum(-1).clamp_min(1e-12)
