"""What one forward pass should capture and change, as plain data.

`Session.forward` takes these instead of Python closures, so the same request
could be carried out by another backend (several GPUs, a remote server): hook
names, feature ids, amounts and positions travel; code does not.

Positions are absolute sequence positions (a KV-cached decode step of token t
is position t), so "steer only what is generated" is `from_position =
len(prompt) - 1` for the prefill and every decode step alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class AddFeature:
    """x <- x + amount * W_dec[feature] / |W_dec[feature]| at the role's SAE hook."""

    role: str
    feature: int
    amount: float  # residual-stream norm added along the unit decoder direction
    from_position: int = 0


@dataclass(frozen=True)
class ClampFeature:
    """x <- x + (target - z[feature]) * W_dec[feature], z = the role's SAE code of the incoming x."""

    role: str
    feature: int
    target: float
    from_position: int = 0


@dataclass(frozen=True)
class Splice:
    """x <- SAE(x): the role's reconstruction replaces the residual (the ΔCE / "spliced" forward).

    `dims` limits the replacement to those residual dimensions (the rest keep the model's own
    values): which dimensions' reconstruction error the CE increase comes from."""

    role: str
    from_position: int = 0
    dims: tuple[int, ...] | None = None  # None: every dimension


Edit = Union[AddFeature, ClampFeature, Splice]


@dataclass
class ForwardOut:
    """What a forward returns. Tensors stay on the model's device, in its dtype (logits float32)."""

    resid: dict[str, Any]  # hook name -> (B, T, d), after this call's edits at that hook
    logits: Any  # (B, n, V) float32 for the last n = keep_logits positions, or None
    cache: Any  # the KV cache, extended by this call's tokens (None when none was kept)
    edits_applied: int = 0  # hook calls in which an edit changed at least one position
