"""The Spectrum view: which SAE features fire on a token of a prompt (or over all its tokens), per SAE.

`build` runs the prompt; `from_result` reads a Result already computed (the pane's, on the UI thread:
labels not known yet show as `labels.PENDING` for a worker to fill). `spectrascope spectrum --json`
prints the report's `to_dict` with the model's name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from spectrascope.core.engine.labels import DENSE_FREQ
from spectrascope.core.records import Record


@dataclass(frozen=True)
class SpectrumSpec(Record):
    prompt: str
    roles: tuple[str, ...] = ("coarse", "fine")
    position: int | None = -1  # None = all tokens, BOS excluded
    reduce: str = "max"  # "max" or "mean" over tokens, for position None
    top: int = 30  # rows per SAE (the pane shows 30)
    show_dense: bool = False  # keep the always-on features (hidden by default)


@dataclass(frozen=True)
class FeatureRow:
    role: str
    feature: int
    activation: float
    max_act: float | None  # its max activation on held-out text, where known
    freq: float | None  # its firing rate on held-out tokens, where known
    label: str  # where it fires (FeatureLabel.text: top contexts' lemma, its share, density), else what it promotes
    url: str | None = None  # its Neuronpedia page, where Neuronpedia hosts the SAE


@dataclass(frozen=True)
class SAESpectrum:
    """One SAE's part of the report."""

    role: str
    width: int
    hook: str
    l0: int
    silent: int
    fidelity: float | None  # at the position, without the massive dims (the headline); None for all tokens
    poor_fit: bool  # `fidelity` at the position is below `poor_below`
    poor_positions: tuple[int, ...]
    dense_hidden: int  # always-on features left out of `rows`
    rows: tuple[FeatureRow, ...]
    fidelity_per_token: tuple[float | None, ...] = ()  # without the massive dims
    pending: tuple[int, ...] = ()  # features in `rows` whose label is still to be computed
    massive_share: float | None = None  # share of the token's |x|² in the massive dimensions; None for all tokens
    fidelity_centre: str = ""  # where the centre of `fidelity` comes from (training cache / calibration text)
    fidelity_with_massive: float | None = None  # the same with the massive dims in (reads ~0.95 on any text)
    fidelity_with_massive_per_token: tuple[float, ...] = ()
    poor_below: float | None = None  # the poor-fit threshold on `fidelity`
    poor_source: str = ""  # where `poor_below` comes from (a percentile of which reference text)


@dataclass(frozen=True)
class SpectrumReport:
    """What the Spectrum pane shows and `spectrascope spectrum` prints, from one Result."""

    prompt: str
    tokens: tuple[Any, ...]
    position: int | None  # None = all tokens, BOS excluded
    reduce: str  # "max" or "mean" over tokens, for position None
    first: int  # first position "all tokens" covers (1 when the prompt starts with BOS)
    hide_dense: bool
    saes: dict[str, SAESpectrum]

    def pending(self) -> dict[str, list[int]]:
        """Role -> features whose label is still to be computed (shown as `labels.PENDING`)."""
        return {role: list(v.pending) for role, v in self.saes.items() if v.pending}

    def rows(self) -> list[FeatureRow]:
        """Every SAE's rows in one table, strongest first."""
        return sorted((r for v in self.saes.values() for r in v.rows), key=lambda r: -r.activation)

    def to_dict(self) -> dict[str, Any]:
        inner = ("rows", "fidelity_per_token", "fidelity_with_massive_per_token", "pending")  # written below
        return {
            "prompt": self.prompt, "position": self.position, "reduce": self.reduce,
            "all_tokens_from": self.first, "dense_hidden": self.hide_dense, "dense_freq": DENSE_FREQ,
            "fidelity_definition": FIDELITY_DEFINITION,
            "tokens": [{"id": t.id, "text": t.text} for t in self.tokens],
            "saes": {role: {**{k: v for k, v in asdict(sae).items() if k not in inner},
                            "fidelity_per_token": [_round(f) for f in sae.fidelity_per_token],
                            "fidelity_with_massive_per_token": [_round(f) for f in sae.fidelity_with_massive_per_token],
                            "top": [asdict(r) for r in sae.rows]} for role, sae in self.saes.items()},
        }


FIDELITY_DEFINITION = (
    "fidelity = 1 - |(x - x̂)_r|² / E|(x - μ)_r|² over the dims r that are not massive (μ, E: the SAE's "
    "reference residuals); fidelity_with_massive = 1 - |x - x̂|² / E|x - μ|², which the massive dims hold near "
    "0.95 on any text; poor_fit: fidelity below poor_below, a low percentile of it on reference text (poor_source)")


def _round(value: float | None) -> float | None:
    """6 decimals; NaN (no rest spread known) as None, which JSON can hold."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def from_result(
    result: Any, labels: Mapping[str, Any], hooks: Mapping[str, str], position: int | None = -1,
    reduce: str = "max", top: int = 30, hide_dense: bool = True, roles: tuple[str, ...] | None = None,
    compute_labels: bool = True, stats: Mapping[str, Any] | None = None,
) -> SpectrumReport:
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
            text = label.text(5) if label else (PENDING if lab is not None else "")
            rows.append(FeatureRow(role, fid, act, label.max_act if label else None,
                                   label.freq if label else None, text, lab.url(fid) if lab is not None else None))
        rest = [_round(f) for f in spec.fidelity_rest.tolist()]
        here = None if pos is None else rest[pos]
        saes[role] = SAESpectrum(role, spec.width, hooks.get(role, ""), int((row > 0).sum()), int((row == 0).sum()),
                                 here, here is not None and here < spec.poor_below,
                                 tuple(spec.poor_positions()), hidden, tuple(rows), tuple(rest),
                                 tuple(pending), None if pos is None else float(spec.massive_share[pos]),
                                 stats[role].source if role in stats else "",
                                 None if pos is None else float(spec.fidelity[pos]), tuple(spec.fidelity.tolist()),
                                 spec.poor_below, spec.poor_source)
    return SpectrumReport(result.prompt, tuple(result.tokens), pos, reduce, first, hide_dense, saes)


def build(session: Any, spec: SpectrumSpec, cancel: Any = None, progress: Any = None) -> SpectrumReport:
    """Run `spec.prompt` and read its spectrum, every shown label computed."""
    from spectrascope.core.engine.values import Request

    missing = [r for r in spec.roles if r not in session.saes]
    if missing:
        why = "; ".join(f"{r}: {session.sae_errors.get(r, 'not loaded')}" for r in missing)
        raise ValueError(f"No {'/'.join(missing)} SAE: {why}")
    result = session.run(Request(spec.prompt), cancel)
    hooks = {role: session.sae_hook(role) for role in spec.roles}
    return from_result(result, session.labels, hooks, spec.position, spec.reduce, spec.top, not spec.show_dense,
                       spec.roles, stats=session.resid_stats)
