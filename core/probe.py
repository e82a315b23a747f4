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


def logits_report(
    session: Session, prompt: str, settings: Any, system: str | None = None,
    runs: int = 0, steps: int = 20, top: int = 20,
) -> dict[str, Any]:
    """Everything `spectrascope logits` prints: the knob pipeline, the A/B, seeded runs."""
    from .generation import seeded_runs, system_prompt_ab
    from .sampling import LogitsView

    if top < 1 or runs < 0 or steps < 1:
        raise ValueError("--top and --steps must be at least 1, --runs at least 0.")
    result = session.run(Request(prompt, layers=(0,), codes=False))
    dist = LogitsView(result.logits).apply(settings)
    report: dict[str, Any] = {
        "model": session.model.spec.name, "prompt": prompt, "settings": settings.to_dict(),
        "tokens": [{"id": t.id, "text": t.text} for t in result.tokens],
        "survivors": dist.n_survivors, "vocab": dist.vocab_size,
        "entropy_before": dist.entropy_before, "entropy_after": dist.entropy_after,
        "top": [
            {"id": r.id, "token": session.piece(r.id), "logit": r.logit, "raw_p": r.raw_p,
             "final_p": r.final_p, "excluded_by": r.excluded_by}
            for r in dist.top(top)
        ],
    }
    if system:
        ab = system_prompt_ab(session, prompt, system, settings, top_n=top)
        comp = ab.comparison
        report["system_ab"] = {
            "system": system, "kl_with_vs_without": comp.kl_b_a, "kl_without_vs_with": comp.kl_a_b,
            "kl_basis": comp.kl_basis,
            "rows": [
                {"id": r.token_id, "token": session.piece(r.token_id), "p_without": r.prob_a,
                 "p_with": r.prob_b, "rank_without": r.rank_a, "rank_with": r.rank_b,
                 "rank_change": r.rank_change, "new_in_top": r.new_in_top_n, "dropped": r.dropped_from_top_n}
                for r in comp.rows
            ],
        }
    if runs:
        seeds = [settings.seed + i for i in range(runs)]
        report["runs"] = [
            {"seed": r.seed, "text": r.text, "token_ids": list(r.token_ids), "diverges_at": r.diverges_at}
            for r in seeded_runs(session, prompt, settings, seeds, steps)
        ]
    return report
