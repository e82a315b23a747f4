"""When is a token's reconstruction "poor"? A low percentile of per-token fidelity on reference text.

A fixed cut (fidelity < 0.5) never fired: with the massive dimensions in, fidelity reads ~0.95 on
any text (core/engine/residual_stats.py). The flag is therefore relative to what the SAE does on
ordinary text: a token is a poor fit when its fidelity without the massive dims is below the
POOR_PERCENTILE-th percentile of that fidelity on reference tokens (BOS left out), measured once
per SAE:

  * the embedded SAEs ship `fidelity_reference.json` beside `residual_stats.json`, measured by
    `python -m spectrascope.core.train fidelity` on the even-numbered lines of the shipped prompt
    sets (the odd ones stay out, to check the flag rate on text it was not set on);
  * any other SAE gets it from the calibration text at attach time (Session.attach_sae).

The same pass estimates E|(x - μ)_r|², the spread fidelity without the massive dims is measured
against, around the SAE's training mean μ where that is shipped.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spectrascope.core.engine.residual_stats import REFERENCE_FILE, ResidualStats

POOR_PERCENTILE = 5.0
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)


def reconstruct(sae: Any, resid: torch.Tensor) -> torch.Tensor:
    """The SAE's reconstruction of residuals (N, d), float32 on the CPU (sae-lens' encode/decode). # (N, d)"""
    with torch.inference_mode():
        x = resid.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
        return sae.decode(sae.encode(x)).float().cpu()


def measure(stats: ResidualStats, resid: torch.Tensor, recon: torch.Tensor, source: str,
            percentile: float = POOR_PERCENTILE) -> tuple[ResidualStats, dict[str, Any]]:
    """`stats` with the poor-fit threshold (and the rest spread, where it lacks one) from reference
    residuals (N, d) and their reconstructions, BOS left out; plus the summary the shipped file keeps."""
    resid, recon = resid.float(), recon.float()
    if stats.rest_centered_sq_norm is None:
        stats = replace(stats, rest_centered_sq_norm=stats.rest_spread(resid))
    rest = stats.fidelity_rest(resid, recon).double().numpy()
    full = stats.fidelity(resid, recon).double().numpy()
    below = float(np.percentile(rest, percentile))
    where = f"the {percentile:g}th percentile on {len(rest):,} tokens of {source}"
    stats = replace(stats, poor_below=below, poor_source=where)
    summary = {
        "rest_centered_sq_norm": stats.rest_centered_sq_norm, "poor_below": below, "poor_percentile": percentile,
        "poor_source": where, "source": source, "tokens": len(rest), "massive_dims": list(stats.massive_dims),
        "mean_fidelity": round(float(rest.mean()), 6), "mean_fidelity_with_massive": round(float(full.mean()), 6),
        "percentiles": {str(p): round(float(v), 6) for p, v in zip(PERCENTILES, np.percentile(rest, PERCENTILES))},
        "percentiles_with_massive": {str(p): round(float(v), 6)
                                     for p, v in zip(PERCENTILES, np.percentile(full, PERCENTILES))},
        "definition": "fidelity = 1 - |(x - x̂)_r|² / E|(x - μ)_r|² over the non-massive dims r; "
                      "with massive: 1 - |x - x̂|² / E|x - μ|²; μ from residual_stats.json",
    }
    return stats, summary


def calibrate(sae: Any, resid: torch.Tensor, stats: ResidualStats, source: str) -> ResidualStats:
    """`stats` with whatever it lacks (rest spread, poor-fit threshold) measured on `resid` (N, d)."""
    if stats.poor_below is not None and stats.rest_centered_sq_norm is not None:
        return stats
    return measure(stats, resid, reconstruct(sae, resid), source)[0]


def write(folder: str | Path, summary: dict[str, Any]) -> Path:
    from spectrascope.core.assets import atomic_write

    return atomic_write(Path(folder) / REFERENCE_FILE, json.dumps(summary, indent=1) + "\n")
