"""What the `core.plan` edits do to a residual: the one implementation of their semantics.

`Session.forward` calls `apply_edits` from its hook at each SAE's hook point; the UI test
fake calls it from its own forward, so both change the residual in the same way.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from spectrascope.core.engine.plan import AblateFeatures, AddFeature, Edit, Splice


def apply_edits(
    x: torch.Tensor, edits: Sequence[Edit], saes: Mapping[str, Any], offset: int
) -> tuple[torch.Tensor, bool]:
    """The residual `x` (B, t, d) at one hook after `edits`, and whether any position changed.

    x holds absolute positions offset..offset+t-1 (a cached call starts at the cache length);
    each edit acts on positions >= its from_position. Splices come first, so adds and clamps act
    on the reconstruction; every add and clamp then reads the same incoming x (their order does
    not matter). `x` itself is never written to. Every tensor an edit uses is brought to x's device
    (a dispatched model's SAE normally sits there already)."""
    start = max(min(e.from_position for e in edits) - offset, 0)
    if start >= x.shape[1]:
        return x, False
    x = x.clone()
    for e in edits:
        if isinstance(e, Splice):
            sae, s = saes[e.role], max(e.from_position - offset, 0)
            rec = sae.decode(sae.encode(x[:, s:].to(sae.W_enc.device, sae.W_enc.dtype))).to(x.device, x.dtype)
            if e.dims is None:
                x[:, s:] = rec
            else:
                dims = torch.tensor(e.dims, dtype=torch.long, device=x.device)
                x[:, s:, dims] = rec[..., dims]
    incoming = x[:, start:].clone()
    delta = torch.zeros(incoming.shape, dtype=torch.float32, device=x.device)  # (B, t, d)
    for e in edits:
        if isinstance(e, Splice):
            continue
        s = max(e.from_position - offset, 0) - start
        sae = saes[e.role]
        if isinstance(e, AblateFeatures):
            _ablate(delta, incoming, e, sae, offset + start)
            continue
        w = sae.W_dec[e.feature].float().to(x.device)  # (d,)
        if isinstance(e, AddFeature):
            delta[:, s:] += e.amount * w / w.norm().clamp_min(1e-12)
        else:  # ClampFeature: move the feature's code to the target
            z = sae.encode(incoming[:, s:].to(sae.W_enc.device, sae.W_enc.dtype))[..., e.feature]  # (B, t)
            delta[:, s:] += (e.target - z.float().to(x.device))[..., None] * w
    x[:, start:] = (incoming.float() + delta).to(x.dtype)
    return x, True


def _ablate(delta: torch.Tensor, incoming: torch.Tensor, e: AblateFeatures, sae: Any, first: int) -> None:
    """Subtract scale * z_t[f] * W_dec[f] from `delta` at each (t, f) of `e` inside this call's
    positions (incoming[:, 0] is absolute position `first`), on `e.row` only when it names one."""
    rows = slice(None) if e.row is None else slice(e.row, e.row + 1)
    if e.row is not None and not 0 <= e.row < incoming.shape[0]:
        raise ValueError(f"Ablation row {e.row} is outside the batch (0..{incoming.shape[0] - 1}).")
    by_position: dict[int, list[int]] = {}
    for t, f in e.at:
        if 0 <= t - first < incoming.shape[1]:
            by_position.setdefault(t - first, []).append(f)
    for t, features in by_position.items():
        z = sae.encode(incoming[rows, t].to(sae.W_enc.device, sae.W_enc.dtype))  # (b, F)
        if -1 in features:
            removed = z @ sae.W_dec  # (b, d): every active feature
        else:
            ids = torch.tensor(sorted(set(features)), device=z.device)
            removed = z[:, ids] @ sae.W_dec[ids]  # (b, d)
        delta[rows, t] -= e.scale * removed.float().to(delta.device)
