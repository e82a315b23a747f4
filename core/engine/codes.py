"""The sparse-feature spectrum of each token: SAE codes, L0, fidelity, top features, bands.

Encoding and decoding are sae-lens' own (`SAE.encode` / `SAE.decode`); this
module only summarises them for the Spectrum pane and the `spectrum` command.

Fidelity of one token is 1 - |x - x̂|² / E|x - μ|², its error against the typical
centered spread of the SAE's training residuals (core/residual_stats.py): averaged
over tokens drawn from the training distribution it is the held-out explained variance,
and the trivial mean predictor scores 0. (The raw-norm 1 - |x - x̂|² / |x|² reads 0.99 on
Gemma whatever the fit, because three dimensions hold ~97% of |x|².) Even centred, the three
massive dimensions hold ~65% of the spread and are reconstructed almost exactly, so it reads
~0.95 on any text: the headline is `fidelity_rest`, the same measure over the other dimensions.
A position is flagged as a poor fit when its `fidelity_rest` is below the SAE's `poor_below`, a
low percentile of it on reference text (core/engine/fidelity.py), floored at 0; BOS always is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from spectrascope.core.engine.residual_stats import ResidualStats


def hook_layer(hook_name: str) -> int:
    """`blocks.12.hook_resid_post` -> 12."""
    parts = hook_name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"Not a per-layer hook name: {hook_name!r}")
    return int(parts[1])


@dataclass(frozen=True)
class Spectrum:
    """One SAE's view of every token of a prompt (all CPU float32)."""

    role: str  # "coarse" or "fine"
    codes: torch.Tensor  # (T, F) feature activations, dense
    l0: torch.Tensor  # (T,) number of active features
    fidelity: torch.Tensor  # (T,) 1 - |x - x̂|² / E|x - μ|² (centered; see the module doc)
    rel_error: torch.Tensor  # (T,) |x - x̂| / |x|
    massive_share: torch.Tensor  # (T,) share of |x|² in the massive dimensions
    fidelity_rest: torch.Tensor  # (T,) the same without the massive dims: the headline (NaN: spread unknown)
    poor_below: float = 0.0  # fidelity_rest below this is a poor fit (ResidualStats.poor_threshold)
    poor_source: str = ""  # where `poor_below` comes from

    @property
    def width(self) -> int:
        return int(self.codes.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.codes.shape[0])

    def silent(self, position: int | None = None) -> int:
        """Features that are exactly zero at `position` (or on every token when None)."""
        row = self.row(position)
        return int((row == 0).sum())

    def poor_positions(self) -> list[int]:
        """Positions whose fidelity without the massive dims is below `poor_below`."""
        return [i for i, f in enumerate(self.fidelity_rest.tolist()) if f < self.poor_below]

    def row(self, position: int | None, reduce: str = "max", first: int = 0) -> torch.Tensor:
        """Activations at one position, or over tokens `first`.. ("max" or "mean"). # (F,)

        `first` = 1 leaves BOS out of "all tokens": its huge, off-distribution residual
        would otherwise top the table for every prompt."""
        if position is None:
            codes = self.codes[first:] if self.n_tokens > first else self.codes
            return codes.max(dim=0).values if reduce == "max" else codes.mean(dim=0)
        if not -self.n_tokens <= position < self.n_tokens:
            raise IndexError(f"Position {position} is outside the prompt (0..{self.n_tokens - 1}).")
        return self.codes[position]

    def top(self, position: int | None, n: int = 20, reduce: str = "max", first: int = 0) -> list[tuple[int, float]]:
        """The n strongest active features as (feature id, activation), strongest first."""
        row = self.row(position, reduce, first)
        n = min(n, int((row > 0).sum()))
        if n == 0:
            return []
        values, ids = row.topk(n)
        return list(zip(ids.tolist(), values.tolist()))

    def bands(self, position: int | None, n_bands: int, reduce: str = "max", first: int = 0) -> np.ndarray:
        """Strongest activation in each of `n_bands` equal slices of the feature axis. # (n_bands,)

        Like an audio analyzer: the fine SAE's 16K+ features are binned to the pane's width.
        """
        row = self.row(position, reduce, first).numpy()
        n_bands = max(1, min(n_bands, row.shape[0]))
        edges = np.linspace(0, row.shape[0], n_bands + 1).astype(np.int64)
        return np.maximum.reduceat(row, edges[:-1])


def encode(sae: Any, resid: torch.Tensor, role: str, stats: ResidualStats) -> Spectrum:
    """Encode a (T, d) residual with a sae-lens SAE; summarise per token against `stats`."""
    with torch.inference_mode():
        x = resid.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)  # (T, d)
        codes = sae.encode(x)  # (T, F)
        recon = sae.decode(codes)  # (T, d)
        x, recon = x.float().cpu(), recon.float().cpu()
        err = (x - recon).pow(2).sum(-1)  # (T,)
        norm = x.pow(2).sum(-1).clamp_min(1e-12)  # (T,)
        return Spectrum(
            role=role,
            codes=codes.float().cpu(),
            l0=(codes != 0).sum(-1).cpu(),
            fidelity=stats.fidelity(x, recon),
            rel_error=(err / norm).sqrt(),
            massive_share=stats.massive_share(x),
            fidelity_rest=stats.fidelity_rest(x, recon),
            poor_below=stats.poor_threshold,
            poor_source=stats.poor_threshold_source,
        )


def join_spectra(head: Spectrum, n: int, tail: Spectrum) -> Spectrum:
    """The first `n` positions of `head` followed by `tail` (a prompt that kept its first n tokens)."""
    cat = lambda a, b: torch.cat([a[:n], b])  # noqa: E731
    return Spectrum(tail.role, cat(head.codes, tail.codes), cat(head.l0, tail.l0),
                    cat(head.fidelity, tail.fidelity), cat(head.rel_error, tail.rel_error),
                    cat(head.massive_share, tail.massive_share), cat(head.fidelity_rest, tail.fidelity_rest),
                    tail.poor_below, tail.poor_source)


def encode_all(saes: Mapping[str, Any], resid_by_hook: Mapping[str, torch.Tensor],
               stats: Mapping[str, ResidualStats]) -> dict[str, Spectrum]:
    """Each SAE applied to the residual at its own hook."""
    out = {}
    for role, sae in saes.items():
        hook = sae.cfg.metadata.hook_name
        out[role] = encode(sae, resid_by_hook[hook], role, stats[role])
    return out


def lens_unembedding(W_U: torch.Tensor) -> torch.Tensor:
    """W_U as promoted tokens multiply it: kept in the model's dtype (no copy) where matmuls in it
    are fast (fp32, bf16, anything on an accelerator); fp16 on a CPU, which has no fast fp16
    matmul, becomes fp32. Callers convert once per SAE and keep the result."""
    if W_U.dtype in (torch.float32, torch.bfloat16) or W_U.device.type != "cpu":
        return W_U
    return W_U.float()


def promoted_tokens_batch(
    W_dec: torch.Tensor, W_U: torch.Tensor, top: int = 8, softcap: float | None = None, chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens each decoder direction raises most (logit lens). W_dec (n, d), W_U (V, d) -> (n, top) ids, values.

    Computed in W_U's dtype (see `lens_unembedding`: a bf16 model's logits can reorder near-ties,
    harmless for labels) and chunked so no (n, V) matrix exceeds ~16M entries (262K-wide SAEs,
    256K vocabularies). Gemma 2's final tanh softcap changes the values, never their order.
    """
    chunk = chunk or max(1, (1 << 24) // max(1, W_U.shape[0]))
    ids, vals = [], []
    with torch.inference_mode():
        for i in range(0, W_dec.shape[0], chunk):
            logits = (W_dec[i : i + chunk].to(W_U.device, W_U.dtype) @ W_U.T).float()  # (c, V)
            if softcap:
                logits = softcap * torch.tanh(logits / softcap)
            v, j = torch.topk(logits, top, dim=-1)
            ids.append(j.cpu())
            vals.append(v.cpu())
    return torch.cat(ids), torch.cat(vals)


def promoted_tokens(
    sae: Any, feature: int, unembed: torch.Tensor, final_norm_gain: torch.Tensor | None = None,
    k: int = 10, softcap: float | None = None,
) -> list[tuple[int, float]]:
    """(token id, logit) pairs for one feature's decoder direction, optionally through the final norm's gain."""
    if not 0 <= feature < sae.cfg.d_sae:
        raise IndexError(f"Feature {feature} does not exist: this SAE has 0..{sae.cfg.d_sae - 1}.")
    direction = sae.W_dec[feature : feature + 1].detach()  # (1, d)
    if final_norm_gain is not None:
        direction = direction * final_norm_gain.to(direction)
    ids, values = promoted_tokens_batch(direction, unembed, top=k, softcap=softcap)
    return list(zip(ids[0].tolist(), values[0].tolist()))
