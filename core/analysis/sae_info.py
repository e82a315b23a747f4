"""What one loaded SAE is and how good it is: the SAE info view and `spectrascope sae-info`.

Quality figures come from the SAE's own `metrics.json` (written by `python -m
spectrascope.core.train eval` for the embedded SAEs, on held-out text); an SAE without one
shows its shape only and says that its quality was not measured here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SAEInfo:
    role: str
    name: str
    hook: str
    width: int
    architecture: str
    k: int | None  # TopK's active latents per token (None for other architectures)
    measured: dict[str, Any] | None  # the metrics.json figures below, or None
    folder: str | None

    def rows(self) -> list[tuple[str, str]]:
        """(what, value) pairs, each value saying how it was measured."""
        rows = [("SAE", self.name), ("reads", self.hook), ("width", f"{self.width:,} latents"),
                ("architecture", self.architecture + (f" (k = {self.k})" if self.k else ""))]
        m = self.measured
        if not m:
            return rows + [("quality", "not measured by spectrascope (no metrics.json): see the SAE's release "
                                       "notes or Neuronpedia")]
        ci = m.get("ce_increase_ci95")
        rows += [
            ("L0", f"{m['l0_mean']:.1f} active latents per token (held-out mean)"),
            ("explained variance", f"{m['explained_variance']:.3f} (centered, {m['heldout_tokens']:,} held-out tokens)"),
        ]
        if m.get("explained_variance_without_massive") is not None:
            rows.append(("EV w/o massive dims", f"{m['explained_variance_without_massive']:.3f} (dims "
                         f"{m.get('massive_dims')} hold {m.get('massive_share_of_norm', 0):.0%} of |x|²; left out)"))
        rows += [
            ("ΔCE (spliced)", f"{m['ce_increase']:+.3f} nats" + (f" ± {ci:.3f} (95% CI)" if ci else "")
             + f", clean {m['ce_clean']:.3f}, {m['ce_seqs']} held-out sequences"),
            ("dead", f"{m['dead_frac_heldout']:.1%} never fire on the held-out tokens"),
        ]
        by = m.get("ce_increase_by_dims")
        if by:  # where the ΔCE comes from: the reconstruction spliced into some dimensions only
            rows.insert(-1, ("ΔCE by dims", f"{by['massive_only']:+.4f} ± {by['massive_only_ci95']:.4f} spliced into the "
                                           f"massive dims only, {by['others_only']:+.4f} ± {by['others_only_ci95']:.4f} "
                                           "into the others only"))
        if m.get("train_tokens_unique"):
            last = m.get("last_continuation_tokens_unique")
            part = f" (the last continuation read only the first {last:,})" if last else ""
            rows.append(("training", f"{m['train_tokens_unique']:,} unique tokens{part}, {m.get('train_tokens_seen', 0):,} "
                                     f"seen, {_mix(m)}"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [{"what": a, "value": b} for a, b in self.rows()]}


UNKNOWN_BUDGET = "unknown: no card with a training budget (a released SAE such as Gemma Scope: see its release notes)"


def training_budget(folder: str | Path | None) -> dict[str, Any]:
    """An SAE's training budget as its card gives it (the card's figures: `metrics.json` beside CARD.md in
    the SAE's folder): tokens seen and unique tokens, None each where the SAE has no card that says."""
    m: dict[str, Any] = {}
    path = Path(folder) / "metrics.json" if folder is not None else None
    if path is not None and path.is_file():
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            m = {}
    seen, unique = m.get("train_tokens_seen"), m.get("train_tokens_unique")
    known = isinstance(seen, (int, float)) and seen > 0
    return {"tokens_seen": int(seen) if known else None,
            "tokens_unique": int(unique) if known and isinstance(unique, (int, float)) and unique > 0 else None,
            "source": f"{path.parent.name}/metrics.json (the SAE card's figures)" if known else UNKNOWN_BUDGET}


def budget_text(budget: dict[str, Any]) -> str:
    """"39,399,424 tokens seen (6,047,232 unique)", or "unknown"."""
    if not budget.get("tokens_seen"):
        return "unknown"
    unique = budget.get("tokens_unique")
    return f"{budget['tokens_seen']:,} tokens seen" + (f" ({unique:,} unique)" if unique else "")


def budgets_line(budgets: dict[str, dict[str, Any]]) -> str:
    """Each SAE's training budget side by side, and what a difference between them means."""
    line = "training budgets (SAE cards): " + " · ".join(f"{role} {budget_text(b)}" for role, b in budgets.items())
    seen = [b.get("tokens_seen") for b in budgets.values()]
    if len(seen) == 2 and all(seen) and seen[0] != seen[1]:
        line += (f"; they differ {max(seen) / min(seen):.1f}x, so a comparison of the two mixes width with "
                 f"training budget")
    elif not all(seen):
        line += "; a comparison of the two cannot separate width from training budget"
    return line


def session_budgets(session: Any, roles: Any = ("coarse", "fine")) -> dict[str, dict[str, Any]]:
    """Role -> `training_budget` of the session's SAE in that role (from its card, where it has one)."""
    from spectrascope.core.engine.labels import labels_folder

    specs = getattr(session, "sae_specs", {}) or {}
    return {role: training_budget(labels_folder(specs.get(role))) for role in roles}


def continuation_read_part(metrics: dict, run: dict) -> int | None:
    """The unique tokens the last training run read, when it was a continuation that read only the
    start of the SAE's cache (`metrics`: metrics.json, `run`: train_curve.json); else None. The pass
    count over all unique tokens would otherwise hide that the later passes were over a subset."""
    last, total = run.get("train_tokens_unique") or 0, metrics.get("train_tokens_unique") or 0
    continued = metrics.get("warm_start") or run.get("warm_start")
    return last if continued and 0 < last < total else None


def _mix(m: dict) -> str:
    mix = (m.get("train_mix") or {})
    if mix.get("topic"):  # only SAEs trained before issue 15 removed the topic-window option
        return f"natural mix plus {mix['topic']:,} tokens of France topic windows (France results are in-sample)"
    return "the corpus' natural mix (no concept oversampled; see CARD.md)"


def sae_info(session: Any, role: str) -> SAEInfo:
    """The info view of the session's `role` SAE."""
    from spectrascope.core.engine.labels import labels_folder

    sae = session.sae(role)
    spec = getattr(session, "sae_specs", {}).get(role)
    folder = labels_folder(spec)
    measured = None
    if folder is not None and (Path(folder) / "metrics.json").is_file():
        measured = json.loads((Path(folder) / "metrics.json").read_text())
        curve = Path(folder) / "train_curve.json"
        if curve.is_file():  # the mix, and the tokens the last run read, are recorded with the training run
            run = json.loads(curve.read_text())
            measured.setdefault("train_mix", run.get("train_mix"))
            measured.setdefault("last_continuation_tokens_unique", continuation_read_part(measured, run))
    cfg = sae.cfg
    arch = cfg.architecture() if callable(getattr(cfg, "architecture", None)) else type(sae).__name__
    return SAEInfo(role, spec.label if spec is not None else type(sae).__name__, cfg.metadata.hook_name,
                   int(cfg.d_sae), str(arch), getattr(cfg, "k", None), measured, str(folder) if folder else None)
