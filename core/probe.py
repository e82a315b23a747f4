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


def spectrum_report(
    session: Session, prompt: str, roles: tuple[str, ...] = ("coarse", "fine"),
    position: int | None = -1, top: int = 20,
) -> dict[str, Any]:
    """Everything `spectrascope spectrum` prints: per SAE, L0, fidelity and the top features."""
    missing = [r for r in roles if r not in session.saes]
    if missing:
        why = "; ".join(f"{r}: {session.sae_errors.get(r, 'not loaded')}" for r in missing)
        raise ValueError(f"No {'/'.join(missing)} SAE: {why}")
    result = session.run(Request(prompt, logits=False))
    n = len(result.tokens)
    if position is not None and not -n <= position < n:
        raise ValueError(f"--position {position} is outside the prompt (0..{n - 1}).")
    pos = None if position is None else position % n
    report: dict[str, Any] = {
        "model": session.model.spec.name, "prompt": prompt, "position": pos,
        "tokens": [{"id": t.id, "text": t.text} for t in result.tokens], "saes": {},
    }
    for role in roles:
        spec = result.spectra[role]
        labels = session.labels.get(role)
        row = spec.row(pos)
        report["saes"][role] = {
            "width": spec.width,
            "hook": session.saes[role].cfg.metadata.hook_name,
            "l0": int((row > 0).sum()),
            "silent": spec.silent(pos),
            "fidelity": None if pos is None else float(spec.fidelity[pos]),
            "poor_fidelity_positions": spec.poor_positions(),
            "top": [
                {"feature": f, "activation": a,
                 "label": list(labels.get(f).promoted[:6]) if labels is not None else []}
                for f, a in spec.top(pos, top)
            ],
        }
    return report
