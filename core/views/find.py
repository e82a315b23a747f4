"""The Find view: the features of both SAEs that match a query by text, or that fire on an example
relative to their usual activation (core/analysis/search/ says how each is scored).
`spectrascope find` prints the report; the Find pane (ctrl+f) shows the same one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from spectrascope.core.analysis.search.by_example import example_positions, example_run, find_example
from spectrascope.core.analysis.search.by_text import find_text
from spectrascope.core.analysis.search.explanations import Explanations, read_explanations
from spectrascope.core.analysis.search.hits import Hit
from spectrascope.core.engine.embedded import _quiet
from spectrascope.core.records import Record

ROLES = ("coarse", "fine")


@dataclass(frozen=True)
class FindSpec(Record):
    query: str = ""  # words to find (by text)
    role: str = "both"  # "coarse", "fine" or "both"
    top: int = 20  # hits in all
    example: str = ""  # a prompt to find by example instead (its SAE codes, through Session.run)
    positions: tuple[int, ...] = ()  # the example's tokens to read; () = every token but BOS
    labels_file: str = ""  # "[ROLE=]FILE": a Neuronpedia explanations export, searchable as "explanation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", tuple(int(p) for p in self.positions))
        if self.role not in (*ROLES, "both"):
            raise ValueError(f"role {self.role!r} is not coarse, fine or both.")
        if not 1 <= self.top <= 1000:
            raise ValueError(f"top must be 1..1000, not {self.top}.")
        if not (self.query.strip() or self.example):
            raise ValueError("Nothing to find: give a query (words) or an example (a phrase).")
        if self.query.strip() and self.example:
            raise ValueError("Give a query or an example, not both.")

    @property
    def mode(self) -> str:
        return "example" if self.example else "text"

    def roles(self) -> tuple[str, ...]:
        return ROLES if self.role == "both" else (self.role,)


@dataclass(frozen=True)
class FindReport(Record):
    spec: FindSpec
    mode: str  # "text" or "example"
    hits: tuple[Hit, ...]
    tokens: tuple[str, ...] = ()  # the example's tokens (by example)
    positions: tuple[int, ...] = ()  # the ones read
    notes: tuple[str, ...] = ()  # an SAE left out, and why

    def to_markdown(self) -> str:
        asked = (f"by text: {self.spec.query!r}" if self.mode == "text" else
                 f"by example: {''.join(self.tokens[p] for p in self.positions)!r} in {self.spec.example!r}")
        out = [f"## Find {asked} ({self.spec.role})", ""]
        out += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        out += ["| # | sae | feature | score | freq | label | why |", "|---|---|---:|---:|---:|---|---|"]
        for i, h in enumerate(self.hits, 1):
            freq = "–" if h.freq is None else f"{h.freq:.3%}"
            cells = [str(i), h.role, str(h.feature), f"{h.score:.2f}", freq, _cell(h.label), _cell(h.why)]
            out.append("| " + " | ".join(cells) + " |")
        if not self.hits:
            out.append("| | | | | | nothing matched | |")
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def explanations_for(session: Any, spec: FindSpec) -> dict[str, Explanations]:
    """The `labels_file` export, under the SAE it belongs to: the ROLE= it names, else the SAE whose
    Neuronpedia id matches the file's (modelId, layer), else the only role asked for."""
    if not spec.labels_file:
        return {}
    role, sep, path = spec.labels_file.partition("=")
    if not sep or role not in ROLES:
        role, path = "", spec.labels_file
    found = read_explanations(path)
    if not role:
        by_id = [r for r in ROLES if r in session.labels and found.source is not None
                 and session.labels[r].neuronpedia == found.source]
        role = by_id[0] if by_id else (spec.role if spec.role != "both" else "")
    if not role:
        raise ValueError(f"Which SAE are the explanations in {path} for? Write --labels fine={path} (or coarse=).")
    return {role: found}


def build(session: Any, spec: FindSpec, cancel: Any = None,
          progress: Callable[[str, float | None], None] | None = None) -> FindReport:
    roles = tuple(r for r in spec.roles() if r in session.saes)
    notes = tuple(f"{r}: not loaded ({session.sae_errors.get(r, 'not configured')})"
                  for r in spec.roles() if r not in session.saes)
    if not roles:
        raise ValueError("No SAE to search: " + "; ".join(notes))
    progress = progress or _quiet
    if spec.mode == "text":
        hits = find_text(session, spec.query, roles, spec.top, explanations_for(session, spec), cancel, progress)
        return FindReport(spec, "text", tuple(hits), notes=notes)
    result = example_run(session, spec.example, cancel)
    return from_result(session, spec, result, cancel, progress, notes)


def from_result(session: Any, spec: FindSpec, result: Any, cancel: Any = None, progress: Any = None,
                notes: tuple[str, ...] = ()) -> FindReport:
    """The by-example report of a Result already run (the pane's prompt: no model call here)."""
    roles = tuple(r for r in spec.roles() if r in result.spectra)
    positions = example_positions(result, spec.positions)
    hits = find_example(session, result, positions, roles, spec.top, cancel, progress or _quiet)
    return FindReport(spec, "example", tuple(hits), tuple(t.text for t in result.tokens), positions, notes)
