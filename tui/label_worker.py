"""Feature labels not known yet, computed off the UI thread for a pane.

One worker per pane at a time, one batched `compute` call per SAE (seconds at Gemma
Scope 262K on a CPU). The pane draws `labels.PENDING` meanwhile and redraws on
`LabelsComputed`; that redraw asks again for whatever is still missing. A failure
is kept in `label_error` and not retried until the pane clears it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.message import Message


@dataclass
class LabelsComputed(Message):
    """The label worker filled the session's label caches (or failed with `error`)."""

    error: BaseException | None = None


class LabelWorker:
    """Mixin for a pane with a `session`: `fetch_labels(wanted)`, then `labels_done(message)` in its
    `on_labels_computed` before redrawing."""

    labelling = False  # a label worker is running
    label_error: str | None = None  # why labels could not be computed

    def fetch_labels(self, wanted: dict[str, list[int]]) -> None:
        """Compute `wanted` (role -> features) unless a worker already runs or an earlier one failed."""
        if not wanted or self.labelling or self.label_error or self.session is None:
            return
        self.labelling = True
        self._label_worker(self.session, wanted)

    @work(thread=True, exit_on_error=False, group="labels")
    def _label_worker(self, session, wanted: dict[str, list[int]]) -> None:
        from spectrascope.core.engine.labels import compute_labels

        try:
            compute_labels(session.labels, wanted)
        except Exception as exc:  # noqa: BLE001 - shown by the pane, which keeps its placeholders
            self.post_message(LabelsComputed(exc))
            return
        self.post_message(LabelsComputed())

    def labels_done(self, message: LabelsComputed) -> None:
        from spectrascope.tui.errors import describe

        self.labelling = False
        if message.error is not None:
            self.label_error = describe(message.error)
