"""The Layers view: the logit lens (or the tuned lens) at one token of a prompt, layer by layer, and where
each position's prediction settles (core/analysis/lens.py). `spectrascope lens` prints it; the Layers pane
shows the same report, its table first and the settled grid when ready (`table`, then `grid`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spectrascope.core.analysis import lens
from spectrascope.core.records import Record


@dataclass(frozen=True)
class LayersSpec(Record):
    prompt: str
    position: int = -1  # token index, -1 = the last
    top: int = 5  # tokens per layer
    tuned: bool = False  # read each layer through the tuned lens' fitted translators


@dataclass(frozen=True)
class LayersReport:
    report: lens.LensReport  # the table at the position and the settled grid

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()


def fit_tuned(session: Any, cancel: Any = None, progress: Any = None) -> Any:
    """The tuned lens' translators for this model (fitted once, then read from the cache)."""
    from spectrascope.core.analysis.tuned_lens import tuned_lens

    return tuned_lens(session, cancel=cancel, progress=progress)


def table(session: Any, prompt: str, position: int, tuned: Any = None, stream: lens.Stream | None = None,
          cancel: Any = None, progress: Any = None) -> tuple[lens.LensReport, lens.Stream]:
    """The table at `position` (its grid still empty) and the stream it read: a forward unless `stream`
    (this prompt's, kept) is given."""
    stream = stream or lens.read_stream(session, prompt)
    return lens.lens_table(session, stream, position, tuned=tuned), stream


def grid(session: Any, stream: lens.Stream, tuned: Any = None, cancel: Any = None, progress: Any = None) -> Any:
    """The settled grid of the stream's prompt, the costly part, after the table."""
    return lens.lens_grid(session, stream, tuned)


def build(session: Any, spec: LayersSpec, cancel: Any = None, progress: Any = None) -> LayersReport:
    tuned = fit_tuned(session, cancel, progress) if spec.tuned else None
    return LayersReport(lens.logit_lens(session, spec.prompt, spec.position, spec.top, tuned))
