"""The Steering view (`spectrascope steer`, the Steering pane): a steering experiment as a Spec, a Report
and `build`.

The experiment itself (every configuration x strength x seed, measured unsteered) is
core/analysis/steering.py's `run_experiment`; this module says what was asked for and keeps it with
the result, so the pane can tell when a report no longer matches what it holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from spectrascope.core.analysis import steering
from spectrascope.core.analysis.steering import METHODS, POSITIONS, UNITS, SteerFeature, SteeringError, check_strength
from spectrascope.core.records import Record
from spectrascope.core.stats.knobs import SamplingSettings


@dataclass(frozen=True)
class SteeringSpec(Record):
    """What `spectrascope steer` takes and the Steering pane's fields hold. Less the prompt (the app's),
    its dict is the pane's session-file section; a report is stale when its Spec is not the pane's."""

    prompt: str = ""
    features: tuple[SteerFeature, ...] = ()  # each with its strength, in the feature's unit
    sweep: tuple[float, ...] | None = None  # strength multipliers; None: the features' own strengths once
    n_seeds: int = 20  # runs per configuration: seeds settings.seed, settings.seed + 1, …
    tokens: int = 20  # generated per run
    method: str = "add"
    positions: str = "all"
    unit: str = "max_act"  # what strength 1 means (core/analysis/steering.py)
    settings: SamplingSettings = SamplingSettings()  # the sampling knobs; its seed is the first seed
    concept: SteerFeature | None = None  # read back as the concept (its strength unused); None: the first coarse
    words: tuple[str, ...] | None = None  # None (or none): the words the concept feature fires on most

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "words", tuple(self.words or ()) or None)  # no words and None mean the same
        if self.sweep is not None:
            object.__setattr__(self, "sweep", tuple(float(s) for s in self.sweep))
        if not isinstance(self.settings, SamplingSettings):
            raise SteeringError(f"settings: expected the sampling knobs, not {self.settings!r}")
        for name, allowed in (("method", METHODS), ("positions", POSITIONS), ("unit", UNITS)):
            if getattr(self, name) not in allowed:
                raise SteeringError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for f in self.features:
            check_strength(f.strength, f"Strength of {f.role}:{f.id}:")
        for x in self.sweep or ():
            check_strength(x, "Sweep multiplier")
        if self.n_seeds < 1 or self.tokens < 1:
            raise SteeringError("n_seeds and tokens must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "settings": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SteeringSpec:
        """Record's, with the sampling knobs read by `SamplingSettings.from_dict`."""
        if isinstance(data, dict) and isinstance(data.get("settings"), dict):
            data = {**data, "settings": SamplingSettings.from_dict(data["settings"])}
        return super().from_dict(data)


@dataclass(frozen=True, kw_only=True)
class SteeringReport(steering.SteeringReport):
    """The experiment's report (cells, curves, targeting, matched cost; `to_dict()` is `steer --json`) with
    the Spec it was built for (`asked`)."""

    asked: SteeringSpec

    @classmethod
    def of(cls, experiment: steering.SteeringReport, asked: SteeringSpec) -> SteeringReport:
        return cls(**{f.name: getattr(experiment, f.name) for f in dataclasses.fields(experiment)}, asked=asked)

    def to_state(self) -> dict[str, Any]:
        """The whole report with its Spec, for a session file (`from_state` reads it back)."""
        return {**super().to_state(), "asked": self.asked.to_dict()}

    @classmethod
    def from_state(cls, data: dict[str, Any], **more: Any) -> SteeringReport:
        if not isinstance(data, dict) or not isinstance(data.get("asked"), dict):
            raise ValueError("SteeringReport.asked: expected the Spec the report was built for.")
        rest = {k: v for k, v in data.items() if k != "asked"}
        return super().from_state(rest, asked=SteeringSpec.from_dict(data["asked"]), **more)


def build(session: Any, spec: SteeringSpec, cancel: Any = None,
          progress: Callable[[str, float | None], None] | None = None) -> SteeringReport:
    """Run the experiment `spec` asks for; a SteeringError (before any generation) when it cannot run."""
    if not session.saes:
        why = "; ".join(f"{r}: {e}" for r, e in session.sae_errors.items()) or "none configured"
        raise SteeringError(f"this session has no SAEs ({why})")
    concept = None if spec.concept is None else (spec.concept.role, spec.concept.id)
    experiment = steering.run_experiment(
        session, spec.prompt, spec.features, settings=spec.settings,
        seeds=[spec.settings.seed + i for i in range(spec.n_seeds)], tokens=spec.tokens, strengths=spec.sweep,
        method=spec.method, positions=spec.positions, unit=spec.unit, concept=concept, words=spec.words,
        cancel=cancel, progress=progress)
    return SteeringReport.of(experiment, spec)
