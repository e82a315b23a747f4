"""`probe`: one prompt in, tokens and the top next tokens out, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from spectrascope.core.engine.session import Request, Session, resid_hook
from spectrascope.core.engine.codes import POOR_FIDELITY
from spectrascope.core.engine.labels import DENSE_FREQ


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




@dataclass(frozen=True)
class FeatureRow:
    role: str
    feature: int
    activation: float
    max_act: float | None  # its max activation on held-out text, where known
    freq: float | None  # its firing rate on held-out tokens, where known
    label: str  # where it fires (top-snippet tokens), else the tokens it promotes
    url: str | None = None  # its Neuronpedia page, where Neuronpedia hosts the SAE


@dataclass(frozen=True)
class SAEView:
    role: str
    width: int
    hook: str
    l0: int
    silent: int
    fidelity: float | None  # at the position; None for all tokens
    poor_fit: bool  # fidelity at the position is below spectrum.POOR_FIDELITY
    poor_positions: tuple[int, ...]
    dense_hidden: int  # always-on features left out of `rows`
    rows: tuple[FeatureRow, ...]
    fidelity_per_token: tuple[float, ...] = ()
    pending: tuple[int, ...] = ()  # features in `rows` whose label is still to be computed
    massive_share: float | None = None  # share of the token's |x|² in the massive dimensions; None for all tokens
    fidelity_centre: str = ""  # where the centre of `fidelity` comes from (training cache / calibration text)


@dataclass(frozen=True)
class SpectrumView:
    """What the Spectrum pane shows and `spectrascope spectrum` prints, from one Result."""

    prompt: str
    tokens: tuple[Any, ...]
    position: int | None  # None = all tokens, BOS excluded
    reduce: str  # "max" or "mean" over tokens, for position None
    first: int  # first position "all tokens" covers (1 when the prompt starts with BOS)
    hide_dense: bool
    saes: dict[str, SAEView]

    def pending(self) -> dict[str, list[int]]:
        """Role -> features whose label is still to be computed (shown as `labels.PENDING`)."""
        return {role: list(v.pending) for role, v in self.saes.items() if v.pending}

    def rows(self) -> list[FeatureRow]:
        """Every SAE's rows in one table, strongest first."""
        return sorted((r for v in self.saes.values() for r in v.rows), key=lambda r: -r.activation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "position": self.position, "reduce": self.reduce,
            "all_tokens_from": self.first, "dense_hidden": self.hide_dense, "dense_freq": DENSE_FREQ,
            "tokens": [{"id": t.id, "text": t.text} for t in self.tokens],
            "saes": {role: {**{k: v for k, v in asdict(view).items() if k not in ("rows", "fidelity_per_token", "pending")},
                            "fidelity_per_token": [round(f, 6) for f in view.fidelity_per_token],
                            "top": [asdict(r) for r in view.rows]} for role, view in self.saes.items()},
        }


def spectrum_view(
    result: Any, labels: Mapping[str, Any], hooks: Mapping[str, str], position: int | None = -1,
    reduce: str = "max", top: int = 30, hide_dense: bool = True, roles: tuple[str, ...] | None = None,
    compute_labels: bool = True, stats: Mapping[str, Any] | None = None,
) -> SpectrumView:
    """The spectrum of `result` at `position` (None: all tokens but BOS), per SAE role.

    Labels not yet known are computed in one batch per role, or with `compute_labels=False`
    (the pane, on the UI thread) shown as `labels.PENDING` for a worker to fill (`pending`)."""
    from spectrascope.core.engine.labels import PENDING

    n = len(result.tokens)
    if position is not None and not -n <= position < n:
        raise ValueError(f"Position {position} is outside the prompt (0..{n - 1}).")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be max or mean, not {reduce!r}.")
    pos = None if position is None else position % n
    first = getattr(result, "bos", 0)
    stats = stats or {}  # role -> ResidualStats: says where the fidelity's centre came from
    saes = {}
    for role in roles or tuple(result.spectra):
        spec = result.spectra[role]
        lab = labels.get(role)
        row = spec.row(pos, reduce, first)
        chosen, hidden = [], 0
        for fid, act in spec.top(pos, top + 64, reduce, first):
            known = lab.known(fid) if lab is not None else None  # shipped firing rates: no matmul
            if hide_dense and known is not None and (known.freq or 0) > DENSE_FREQ:
                hidden += 1
                continue
            if len(chosen) < top:
                chosen.append((fid, act))
        found = lab.compute([f for f, _ in chosen]) if lab is not None and compute_labels else {}
        rows, pending = [], []
        for fid, act in chosen:
            label = found.get(fid) or (lab.known(fid) if lab is not None else None)
            if label is None and lab is not None:
                pending.append(fid)
            text = label.short(5) if label else (PENDING if lab is not None else "")
            rows.append(FeatureRow(role, fid, act, label.max_act if label else None,
                                   label.freq if label else None, text, lab.url(fid) if lab is not None else None))
        saes[role] = SAEView(role, spec.width, hooks.get(role, ""), int((row > 0).sum()), int((row == 0).sum()),
                             None if pos is None else float(spec.fidelity[pos]),
                             pos is not None and float(spec.fidelity[pos]) < POOR_FIDELITY, tuple(spec.poor_positions()),
                             hidden, tuple(rows), tuple(spec.fidelity.tolist()), tuple(pending),
                             None if pos is None else float(spec.massive_share[pos]),
                             stats[role].source if role in stats else "")
    return SpectrumView(result.prompt, tuple(result.tokens), pos, reduce, first, hide_dense, saes)


def spectrum_report(
    session: Session, prompt: str, roles: tuple[str, ...] = ("coarse", "fine"),
    position: int | None = -1, top: int = 30, reduce: str = "max", hide_dense: bool = True,
) -> dict[str, Any]:
    """Everything `spectrascope spectrum` prints: the Spectrum pane's view of `prompt`."""
    missing = [r for r in roles if r not in session.saes]
    if missing:
        why = "; ".join(f"{r}: {session.sae_errors.get(r, 'not loaded')}" for r in missing)
        raise ValueError(f"No {'/'.join(missing)} SAE: {why}")
    result = session.run(Request(prompt))
    hooks = {role: session.sae_hook(role) for role in roles}
    view = spectrum_view(result, session.labels, hooks, position, reduce, top, hide_dense, roles,
                         stats=session.resid_stats)
    return {"model": session.model.spec.name, **view.to_dict()}


def distribution_report(dist: Any, piece: Callable[[int], str], top: int = 20) -> dict[str, Any]:
    """One next-token distribution after the knobs (a `sampling.Distribution`, already computed):
    survivors, entropies and the top rows, excluded ones included. The Logits pane exports this."""
    return {
        "survivors": dist.n_survivors, "vocab": dist.vocab_size,
        "entropy_before": dist.entropy_before, "entropy_after": dist.entropy_after,
        "top": [
            {"rank": rank, "id": r.id, "token": piece(r.id), "logit": r.logit, "raw_p": r.raw_p,
             "final_p": r.final_p, "excluded_by": r.excluded_by}
            for rank, r in enumerate(dist.top(top), start=1)
        ],
    }


# Which distributions the A/B's KL compares (`sampling.compare` picks): the rows always show final p.
KL_BASIS_TEXT = {
    "final": "on the final distributions (after T, top-k, top-p: the p columns)",
    "raw": "on the raw distributions (T 1, no knobs: a knob cut tokens, and cut distributions' supports differ; "
           "the p columns are final)",
}


def ab_summary(comp: Any) -> str:
    """The A/B's KL line, word for word the same in the Logits pane and `spectrascope logits --system`."""
    return (f"KL(with ‖ without) {comp.kl_b_a:.3f} nats · KL(without ‖ with) {comp.kl_a_b:.3f} nats "
            f"{KL_BASIS_TEXT[comp.kl_basis]}")


def ab_report(comp: Any, piece: Callable[[int], str]) -> dict[str, Any]:
    """A system-prompt A/B (a `sampling.ABComparison`, already computed): KL both ways and rank shifts."""
    return {
        "kl_with_vs_without": comp.kl_b_a, "kl_without_vs_with": comp.kl_a_b, "kl_basis": comp.kl_basis,
        "kl_summary": ab_summary(comp),
        "top_n": comp.top_n,
        "rows": [
            {"id": r.token_id, "token": piece(r.token_id), "p_without": r.prob_a,
             "p_with": r.prob_b, "rank_without": r.rank_a, "rank_with": r.rank_b,
             "rank_change": r.rank_change, "new_in_top": r.new_in_top_n, "dropped": r.dropped_from_top_n}
            for r in comp.rows
        ],
    }


def runs_report(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Seeded runs (`generation.Run`, already generated) as rows."""
    return [{"seed": r.seed, "text": r.text, "token_ids": list(r.token_ids), "diverges_at": r.diverges_at}
            for r in runs]


def generation_report(session: Session, prompt: str, settings: Any, steps: int, top: int = 3) -> list[dict[str, Any]]:
    """`logits --features`: each generated token (seed settings.seed) with how it was picked, its
    probability and rank, and its strongest SAE features, all from the generation's own forwards."""
    from spectrascope.core.engine.generation import Stepper
    from spectrascope.core.analysis.step_record import step_records

    stepper = Stepper.start(session, prompt, settings)
    for _ in range(steps):
        if stepper.step().token_id == session.eos_id:
            break
    return [r.to_dict() for r in step_records(stepper.steps, session.piece, session.labels, top=top)]


def logits_report(
    session: Session, prompt: str, settings: Any, system: str | None = None,
    runs: int = 0, steps: int = 20, top: int = 20, features: bool = False,
) -> dict[str, Any]:
    """Everything `spectrascope logits` prints: the knob pipeline, the A/B, seeded runs, and
    (features=True) one generation's tokens with their top SAE features."""
    from spectrascope.core.engine.generation import seeded_runs, system_prompt_ab
    from spectrascope.core.stats.sampling import LogitsView

    if top < 1 or runs < 0 or steps < 1:
        raise ValueError("--top and --steps must be at least 1, --runs at least 0.")
    result = session.run(Request(prompt, layers=(0,), codes=False))
    dist = LogitsView(result.logits).apply(settings)
    report: dict[str, Any] = {
        "model": session.model.spec.name, "prompt": prompt, "settings": settings.to_dict(),
        "tokens": [{"id": t.id, "text": t.text} for t in result.tokens],
        "truncated": result.truncated, "seconds": result.seconds,
        **distribution_report(dist, session.piece, top),
    }
    if system:
        ab = system_prompt_ab(session, prompt, system, settings, top_n=top)
        report["system_ab"] = {"system": system, **ab_report(ab.comparison, session.piece)}
    if runs:
        seeds = [settings.seed + i for i in range(runs)]
        report["runs"] = runs_report(seeded_runs(session, prompt, settings, seeds, steps))
    if features:
        report["generation"] = generation_report(session, prompt, settings, steps)
    return report
