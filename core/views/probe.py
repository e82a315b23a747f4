"""The Probe view: one prompt in, its tokens, the top next tokens and the residual's size out (`spectrascope probe`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spectrascope.core.engine.values import Request, Token, resid_hook
from spectrascope.core.records import Record


@dataclass(frozen=True)
class ProbeSpec(Record):
    """What `spectrascope probe` is asked."""

    prompt: str
    top: int = 10  # next tokens to list
    layer: int | None = None  # the residual stream reported; None: the session's default layer

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError("--top must be at least 1.")


@dataclass(frozen=True)
class Prediction(Record):
    """One of the top next tokens: its logit and its probability (T 1, no knobs)."""

    rank: int
    id: int
    token: str
    logit: float
    prob: float


@dataclass(frozen=True)
class Residual(Record):
    """The residual stream read at one hook: its shape (tokens, width) and its size at the last token."""

    hook: str
    shape: tuple[int, ...]
    last_norm: float


@dataclass(frozen=True)
class ProbeReport:
    model: str
    prompt: str
    truncated: int  # tokens dropped from the front to fit the context window
    tokens: tuple[Token, ...]
    top: tuple[Prediction, ...]
    resid: Residual
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "prompt": self.prompt, "truncated": self.truncated,
                "tokens": [{"id": t.id, "text": t.text} for t in self.tokens], "top": [p.to_dict() for p in self.top],
                "resid": self.resid.to_dict(), "seconds": self.seconds}


def build(session: Any, spec: ProbeSpec, cancel: Any = None, progress: Any = None) -> ProbeReport:
    import torch

    layer = session.default_layer if spec.layer is None else spec.layer
    result = session.run(Request(spec.prompt, layers=(layer,)), cancel)
    logits = result.logits  # (V,)
    top_p, top_i = torch.softmax(logits, dim=-1).topk(min(spec.top, logits.numel()))
    top = tuple(Prediction(rank, i, session.piece(i), float(logits[i]), p)
                for rank, (p, i) in enumerate(zip(top_p.tolist(), top_i.tolist()), start=1))
    resid = result.resid[resid_hook(layer)]  # (T, d)
    return ProbeReport(session.model.spec.name, spec.prompt, result.truncated, tuple(result.tokens), top,
                       Residual(resid_hook(layer), tuple(resid.shape), float(resid[-1].norm())), result.seconds)
