"""Reconstruction metrics of an SAE on cached activations: shared by training (its end-of-run check)
and held-out evaluation, so neither imports the other."""

from __future__ import annotations

import numpy as np
import torch


MASSIVE_DIMS = 3  # Gemma's residual has ~3 dimensions holding ~97% of |x|^2 (see the SAE cards)


@torch.no_grad()
def recon_metrics(sae, acts: np.ndarray, batch: int = 4096) -> dict:
    """Mean L0, explained variance (centered: 1 - SSE / sum |x - mean|^2, as SAELens evals
    report it), the same without the `MASSIVE_DIMS` largest-magnitude dimensions, and
    per-latent firing counts, on raw activations."""
    n, d = sae.cfg.d_sae, acts.shape[1]
    fires = torch.zeros(n, dtype=torch.long)
    l0_sum, N = 0.0, 0
    sse = torch.zeros(d, dtype=torch.float64)  # per dimension, so any subset of dims can be scored
    s1 = torch.zeros(d, dtype=torch.float64)
    s2 = torch.zeros(d, dtype=torch.float64)
    for i in range(0, len(acts), batch):
        x = torch.from_numpy(np.asarray(acts[i:i + batch])).float()  # (B, d)
        z = sae.encode(x)                                              # (B, n)
        x_hat = sae.decode(z)
        sse += (x - x_hat).double().pow(2).sum(0)
        active = z > 0
        l0_sum += float(active.sum())
        fires += active.sum(0)
        s1 += x.double().sum(0)
        s2 += x.double().pow(2).sum(0)
        N += len(x)
    var = s2 - s1.pow(2) / N  # (d,) sum over tokens of (x - mean)^2
    massive = torch.topk(s2, min(MASSIVE_DIMS, d)).indices  # by raw magnitude, not variance
    rest = torch.ones(d, dtype=torch.bool)
    rest[massive] = False
    return {"n_tokens": N, "l0": l0_sum / N, "fve": float(1 - sse.sum() / var.sum()),
            "fve_without_massive": float(1 - sse[rest].sum() / var[rest].sum()),
            "massive_dims": sorted(int(i) for i in massive),
            "massive_share_of_norm": float(s2[massive].sum() / s2.sum()),
            "mse_per_token": float(sse.sum()) / N,
            "dead_frac_heldout": float((fires == 0).float().mean()), "fires": fires}
