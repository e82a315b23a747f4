"""What each generated token looked like inside: how surprising the pick was and its top SAE features.

One report per generated token, built from a `generation.Step` (the distribution the token was
drawn from and its SAE codes, both from the generation's own forwards: nothing is run here).
The Logits pane's strip, `spectrascope logits --features`, and the Steering pane's per-token marks
all read it, so they show the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

from spectrascope.core.engine.labels import DENSE_FREQ, PENDING



@dataclass(frozen=True)
class FeatureHit:
    feature: int
    activation: float
    label: str  # labels.PENDING while not known yet (compute_labels=False)


@dataclass(frozen=True)
class TokenRecord:
    step: int  # 0-based index among the generated tokens
    token_id: int
    token: str
    how: str  # "greedy", "sampled", "picked"
    prob: float  # the model's probability of the token (T=1, no knobs)
    final_p: float  # its probability under the knobs it was drawn with (0: a picked, excluded token)
    rank: int  # 1-based rank by logit
    features: Mapping[str, tuple[FeatureHit, ...]]  # role -> strongest features at this token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_features(step: Any, role: str, labels: Any = None, top: int = 3, hide_dense: bool = True,
                 compute_labels: bool = True) -> tuple[FeatureHit, ...]:
    """The `top` strongest features of `role` at a step's token; always-on features (shipped firing
    rate above labels.DENSE_FREQ) left out, as in the Spectrum pane."""
    spec = step.codes.get(role)
    if spec is None:
        return ()
    chosen = []
    for fid, act in spec.top(0, top + 64):
        known = labels.known(fid) if labels is not None else None
        if hide_dense and known is not None and (known.freq or 0) > DENSE_FREQ:
            continue
        chosen.append((fid, act))
        if len(chosen) == top:
            break
    found = labels.compute([f for f, _ in chosen]) if labels is not None and compute_labels and chosen else {}
    hits = []
    for fid, act in chosen:
        label = found.get(fid) or (labels.known(fid) if labels is not None else None)
        hits.append(FeatureHit(fid, act, label.short(3) if label else (PENDING if labels is not None else "")))
    return tuple(hits)


def step_records(steps: Sequence[Any], piece: Callable[[int], str], labels: Mapping[str, Any] | None = None,
                 top: int = 3, hide_dense: bool = True, compute_labels: bool = True) -> list[TokenRecord]:
    """One record per generated step (`generation.Step`), in order."""
    labels = labels or {}
    out = []
    for i, step in enumerate(steps):
        feats = {role: top_features(step, role, labels.get(role), top, hide_dense, compute_labels)
                 for role in step.codes}
        out.append(TokenRecord(i, step.token_id, piece(step.token_id), step.how, step.prob,
                               float(step.dist.final_probs[step.token_id]), step.rank, feats))
    return out


def pending_labels(records: Sequence[TokenRecord]) -> dict[str, list[int]]:
    """role -> features whose label is still to be computed (for a UI worker)."""
    out: dict[str, list[int]] = {}
    for rec in records:
        for role, hits in rec.features.items():
            out.setdefault(role, []).extend(h.feature for h in hits if h.label == PENDING)
    return {role: ids for role, ids in out.items() if ids}


def feature_trace(steps: Sequence[Any], role: str, feature: int) -> list[float | None]:
    """One feature's activation at each generated token (None where a step has no record of `role`)."""
    return [float(s.codes[role].codes[0, feature]) if role in s.codes else None for s in steps]
