"""`probe`: one prompt in, tokens and the top next tokens out, as plain data."""

from __future__ import annotations

from typing import Any

import torch

from .session import Request, Session, resid_hook


def probe(session: Session, prompt: str, top: int = 10, layer: int | None = None) -> dict[str, Any]:
    """Everything `spectrascope probe` prints, as a JSON-ready dict."""
    if top < 1:
        raise ValueError("--top must be at least 1.")
    layer = session.default_layer if layer is None else layer
    result = session.run(Request(prompt, layers=(layer,)))
    logits = result.logits  # (V,)
    probs = torch.softmax(logits, dim=-1)
    top_p, top_i = probs.topk(min(top, logits.numel()))
    resid = result.resid[resid_hook(layer)]  # (T, d)
    return {
        "model": session.model.spec.name,
        "prompt": prompt,
        "truncated": result.truncated,
        "tokens": [{"id": t.id, "text": t.text} for t in result.tokens],
        "top": [
            {"rank": r, "id": i, "token": session.piece(i), "logit": float(logits[i]), "prob": p}
            for r, (p, i) in enumerate(zip(top_p.tolist(), top_i.tolist()), start=1)
        ],
        "resid": {
            "hook": resid_hook(layer),
            "shape": list(resid.shape),
            "last_norm": float(resid[-1].norm()),
        },
        "seconds": result.seconds,
    }
