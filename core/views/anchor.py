"""The Anchor view: a system prompt in activation space, for one user prompt.

Two reports, as the Anchor pane shows them: the anchoring (`build`: the features each system prompt
switches on/off/up/down on the user's tokens, core/analysis/anchoring.py, and optionally the navigator
picture, core/analysis/navigator.py; `spectrascope anchor`) and drift (`build_drift`: how a system
prompt's effect fades as neutral turns pile up before the question, core/analysis/drift.py;
`spectrascope drift`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spectrascope.core.analysis import anchoring
from spectrascope.core.analysis.drift import DriftReport, drift_experiment
from spectrascope.core.analysis.navigator import Basis, NavigatorReport, navigator, reference_basis
from spectrascope.core.records import Record

@dataclass(frozen=True)
class AnchorSpec(Record):
    user: str  # the user's text
    systems: tuple[str, ...]  # the system prompts compared with none, one anchoring report each
    top: int = 10  # features per SAE
    navigator: bool = False  # also the last-token residuals on the reference plane
    navigator_only: tuple[str, ...] = ()  # more system prompts drawn on the navigator, without their report


@dataclass(frozen=True)
class AnchorReport:
    reports: tuple[anchoring.AnchorReport, ...]  # one per system prompt, in the spec's order
    navigator: NavigatorReport | None = None
    # The reference plane the navigator was drawn on, not part of the report: the pane keeps it for the next
    # prompt (measuring it costs a forward per reference prompt).
    plane: Basis | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"reports": [r.to_dict() for r in self.reports],
                "navigator": self.navigator.to_dict() if self.navigator is not None else None}

    def document(self) -> Any:
        """What `spectrascope anchor --json` prints: the reports' list, or with the navigator the whole dict."""
        return self.to_dict() if self.navigator is not None else self.to_dict()["reports"]


def reference_plane(session: Any, kept: Basis | None = None) -> Basis:
    """`kept` while it is this model's at the SAE layer, else the reference prompts' plane measured again."""
    if kept is not None and kept.model == session.model.spec.name and kept.hook == session.sae_hook(
            next(iter(session.saes))):
        return kept
    return reference_basis(session)


def build(session: Any, spec: AnchorSpec, cancel: Any = None, progress: Any = None,
          basis: Basis | None = None) -> AnchorReport:
    """The anchoring reports and, with `spec.navigator`, the navigator on `basis` (an earlier report's
    `plane`) while it fits this session, else on a new plane."""
    reports = tuple(anchoring.anchor_report(session, spec.user, system, spec.top) for system in spec.systems)
    if not spec.navigator:
        return AnchorReport(reports)
    plane = reference_plane(session, basis)
    return AnchorReport(reports, navigator(session, spec.user, [*spec.systems, *spec.navigator_only], plane), plane)


@dataclass(frozen=True)
class DriftSpec(Record):
    system: str
    question: str
    filler: tuple[str, ...] | None = None  # the conversation turns; None: assets/prompts/filler_turns.txt
    max_turns: int = 16
    target: str | None = None  # the token to track (its first token); None: what the system prompt raises most


def build_drift(session: Any, spec: DriftSpec, cancel: Any = None, progress: Any = None) -> DriftReport:
    target = session.tokenize(spec.target, add_bos=False)[0][0] if spec.target else None
    return drift_experiment(session, spec.system, spec.question, spec.filler, spec.max_turns, target=target,
                            cancel=cancel, progress=progress)
