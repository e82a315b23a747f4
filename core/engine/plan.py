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


@dataclass(frozen=True)
class AblateFeatures:
    """x_t <- x_t - scale * z_t[f] * W_dec[f] for each (position t, feature f) in `at`, z = the role's
    SAE code of the incoming x: the feature zeroed in the code with the SAE's error kept (the decoder is
    linear, so this is the reconstruction without it spliced back plus x - x̂). Feature -1 removes every
    active feature at t (x_t <- its error + the decoder's constant). `row` limits it to one batch row, so
    one batched forward measures many ablations; `scale` < 1 removes only part (finite differences)."""

    role: str
    at: tuple[tuple[int, int], ...]  # (absolute position, feature id or -1)
    row: int | None = None  # the batch row it acts on; None: every row
    scale: float = 1.0

    @property
    def from_position(self) -> int:
        return min(t for t, _ in self.at)


Edit = Union[AddFeature, ClampFeature, Splice, AblateFeatures]


@dataclass(frozen=True)
class LogitObjective:
    """The scalar a gradient is taken of: the logit of `token` (minus that of `vs`) in the next-token
    prediction after `position` (absolute; the forward runs the prompt up to it, causal attention
    makes later tokens irrelevant)."""

    position: int
    token: int
    vs: int | None = None


@dataclass
class GradientOut:
    """What `Session.gradient` returns: the objective, the residuals it was taken at and its gradient
    there (float32 on the CPU), and the next-token logits at the objective's position."""

    value: float
    resid: dict[str, Any]  # hook -> (T, d), T = position + 1
    grad: dict[str, Any]  # hook -> (T, d): d value / d resid
    logits: Any  # (V,) float32


@dataclass
class ForwardOut:
    """What a forward returns. Tensors stay on the model's device, in its dtype (logits float32)."""

    resid: dict[str, Any]  # hook name -> (B, T, d), after this call's edits at that hook
    logits: Any  # (B, n, V) float32 for the last n = keep_logits positions, or None
    cache: Any  # the KV cache, extended by this call's tokens (None when none was kept)
    edits_applied: int = 0  # hook calls in which an edit changed at least one position
    scores: Any = None  # (B, k) float32 logits of the asked tokens after the last position, or None
