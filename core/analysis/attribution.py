"""Why this token: the linear attribution of a next-token logit to SAE features, and its ablation check.

For a scalar m (a logit, or a logit difference) read after prompt position p, and the residual x_t at
an SAE's hook, first order around the actual run says each position contributes x_t · g_t with
g_t = ∂m/∂x_t. The SAE splits x_t exactly into its features, its constant and its error:

    x_t = Σ_f z_tf · W_dec[f]  +  b_dec  +  (x_t − x̂_t)

so x_t · g_t = Σ_f z_tf (W_dec[f] · g_t) + b_dec · g_t + (x_t − x̂_t) · g_t. The first terms are the
features' attributions (attribution patching with a zero baseline for the feature, as in sparse
feature circuits), the last the error node; with the BOS position's x · g as a node of its own (its
residual is the same for every prompt and off the SAE's distribution) they add up to Σ_t x_t · g_t,
the layer's total linear effect: the sum rule. Only active latents are read (a row of W_dec each),
so a 262K SAE costs what its L0 costs, never a dense (T, 262K) gradient.

The check (`ablation_edits`): the same feature zeroed in the code with the error kept
(core.engine.plan.AblateFeatures), one batch row each, measured as m(run) − m(ablated), the same
sign as the estimate. Estimates far from their measurement mark where the first-order view fails
(saturated softmax, attention that moves with the residual).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Sequence

import torch

from spectrascope.core.engine.plan import AblateFeatures

OFF_BY = 0.5  # an estimate is marked when it differs from its measured effect by more than half of it


@dataclass(frozen=True)
class Nodes:
    """One SAE's attribution at one hook: every active (position, feature) and the other terms."""

    role: str
    positions: torch.Tensor  # (n,) long: absolute prompt positions
    features: torch.Tensor  # (n,) long
    activations: torch.Tensor  # (n,) float32: z_tf
    estimates: torch.Tensor  # (n,) float32: z_tf · (W_dec[f] · g_t)
    error: torch.Tensor  # (T,) float32: (x_t − x̂_t) · g_t (0 at skipped positions)
    constant: torch.Tensor  # (T,) float32: (x̂_t − Σ_f z_tf W_dec[f]) · g_t, the decoder's constant
    bos: float  # x_0 · g_0 when position 0 is skipped as BOS, else 0
    total: float  # Σ_t x_t · g_t over every position

    def per_position(self, length: int) -> torch.Tensor:
        """The features' attributions summed at each position. # (length,)"""
        return torch.zeros(length).index_add_(0, self.positions, self.estimates)


LINEAR_TOLERANCE = 0.05  # per position, of the larger of |x̂ − b|·∇ and Σ|estimates|: bf16 rounds each term ~0.4%


def check_linear(role: str, estimates: torch.Tensor, t_idx: torch.Tensor, linear: torch.Tensor) -> None:
    """Σ_f z_tf (W_dec[f] · g_t) must equal (x̂_t − decode(0)) · g_t at every position: the decoder is linear
    in the code, which the attribution and the ablation edit rely on (an SAE that rescales by decoder
    norms or normalises its input does not qualify). Free: both sides are computed anyway."""
    per_position = torch.zeros_like(linear).index_add_(0, t_idx, estimates)
    scale = torch.maximum(linear.abs(), torch.zeros_like(linear).index_add_(0, t_idx, estimates.abs()))
    if bool(((per_position - linear).abs() > LINEAR_TOLERANCE * scale + 1e-6).any()):
        raise ValueError(f"The {role} SAE's decoder is not linear in its code (it rescales or normalises): "
                         "attribution needs x̂ = z · W_dec + b_dec.")


def attribute_sae(role: str, sae: Any, resid: torch.Tensor, grad: torch.Tensor, skip_bos: bool) -> Nodes:
    """The attribution of every active feature of `sae` at each position of `resid` (T, d), with its
    gradient `grad` (T, d) (both float32). `skip_bos`: position 0 is one node, not read by the SAE."""
    first = 1 if skip_bos and resid.shape[0] > 1 else 0
    with torch.inference_mode():
        x = resid[first:].to(sae.W_enc.device, sae.W_enc.dtype)  # (t, d)
        z = sae.encode(x)  # (t, F): a 262K SAE's codes at a handful of positions
        recon = sae.decode(z).float()  # (t, d)
        constant = sae.decode(torch.zeros_like(z[:1])).float()  # (1, d): b_dec and whatever decode adds
        g = grad[first:].to(recon.device, torch.float32)  # (t, d)
        proj = decoder_projections(sae.W_dec, g)  # (F, t): W_dec[f] · g_t
        t_idx, f_idx = z.nonzero(as_tuple=True)  # the active latents only
        acts = z[t_idx, f_idx].float()
        estimates = acts * proj[f_idx, t_idx]
        check_linear(role, estimates, t_idx, ((recon - constant) * g).sum(-1))
        x = resid.float().to(recon.device)
        err, const = torch.zeros(x.shape[0], device=x.device), torch.zeros(x.shape[0], device=x.device)
        err[first:] = ((x[first:] - recon) * g).sum(-1)
        const[first:] = (constant * g).sum(-1)
        gf = grad.float().to(x.device)
        return Nodes(
            role=role,
            positions=t_idx.cpu() + first,
            features=f_idx.cpu(),
            activations=acts.cpu(),
            estimates=estimates.cpu(),
            error=err.cpu(),
            constant=const.cpu(),
            bos=float((x[0] * gf[0]).sum()) if first else 0.0,
            total=float((x * gf).sum()),
        )


def decoder_projections(w_dec: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """W_dec[f] · g_t for every feature and position, as float32. # (F, t)

    One matmul over the whole decoder instead of gathering a row per active latent (a random or dense
    SAE can have millions of active (position, feature) pairs). A bf16 decoder is multiplied in bf16
    (float32 accumulation, the result rounded once, ~0.4%): a float32 copy of a 262K decoder would be
    2.4 GB of traffic for a first-order estimate."""
    g = g.to(w_dec.device)
    if w_dec.dtype == torch.float32:
        return w_dec @ g.T
    return (w_dec @ g.T.to(w_dec.dtype)).float()


def ranked(nodes: Sequence[Nodes], n: int) -> list[tuple[int, int]]:
    """The n largest |estimates| over every SAE, as (index into `nodes`, index inside it)."""
    sizes = [int(node.estimates.numel()) for node in nodes]
    flat = torch.cat([node.estimates.abs() for node in nodes]) if nodes else torch.zeros(0)
    picked = flat.topk(min(n, flat.numel())).indices.tolist()
    starts = list(accumulate(sizes, initial=0))  # where each SAE's estimates begin in `flat`
    located = [(bisect_right(starts, k) - 1, k) for k in picked]  # an empty SAE's start is skipped over
    return [(i, k - starts[i]) for i, k in located]


def ablation_edits(pairs: Sequence[tuple[str, int, int]], extra: Sequence[tuple[str, tuple[tuple[int, int], ...]]] = (),
                   first_row: int = 0) -> list[AblateFeatures]:
    """One batch row per (role, position, feature) in `pairs`, then one per (role, at) in `extra`
    (joint ablations: the top features together, every feature), from row `first_row` on."""
    ats = [(role, ((t, f),)) for role, t, f in pairs] + list(extra)
    return [AblateFeatures(role, at, row=first_row + r) for r, (role, at) in enumerate(ats)]


def off(estimate: float, measured: float) -> bool:
    """The linear estimate misses its measured effect by more than `OFF_BY` of it."""
    return abs(estimate - measured) > OFF_BY * abs(measured)


def scored_tokens(token: int, vs: int | None) -> list[int]:
    """The tokens whose float32 logits m is read from (`Session.forward(scores=...)`)."""
    return [token] + ([vs] if vs is not None else [])


def objective_value(scores: torch.Tensor) -> torch.Tensor:
    """m for each row of the (B, 1 or 2) float32 logits of `scored_tokens`. # (B,)"""
    return scores[:, 0] - (scores[:, 1] if scores.shape[1] > 1 else 0)
