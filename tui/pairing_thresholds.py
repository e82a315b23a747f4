"""The Pairing pane's threshold keys (`c`/`C` cosine, `o`/`O` correlation), kept responsive.

A threshold move shows the new classes and what the rule says on them at once (cheap), then recomputes
the verdict's null model and permutation test as the job `thresholds` (every live coarse feature paired
again: ~10 s on the embedded SAEs), with the progress bar and "recomputing…" in the status line. A
second press while it runs supersedes it: the older job stops at its next block and its result is
dropped, so the last press wins. `x` (or a failure) goes back to the last fully computed result and its
thresholds. A run or re-pairing (`r`, anchors) supersedes it too, since its result is judged at the
pane's thresholds; a threshold press during one only moves the settings, and the result, when it lands,
is reclassified the same way.

A mixin so the pane stays within its line budget (tests/test_architecture.py), as LabelWorker is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

THRESHOLDS = "thresholds"  # the job name


class ThresholdRecompute:
    """Mixin for the Pairing pane: needs its `settings`, `report`, `run_job`, `job_running`, `_draw`,
    `_draw_header`, `_ended` and `_say`."""

    _settled: Any = None  # the last report whose null model and permutation p are computed (x goes back to it)

    def action_threshold(self, which: str, delta: float) -> None:
        """Move the `cos` or `corr` threshold by `delta`, within [-1, 1]."""
        name = f"{which}_threshold"
        moved = round(max(-1.0, min(1.0, getattr(self.settings, name) + delta)), 2)
        self.settings = replace(self.settings, **{name: moved})
        self._draw_header()
        if self.report is not None:
            self.reclassify_at_thresholds(self.report)

    def reclassify_at_thresholds(self, report: Any) -> None:
        """Show `report` at the pane's thresholds now (classes only) and recompute the rest as a job; during
        a run or re-pairing, only show it (that job's result gets the same when it lands)."""
        from textual.widgets import ProgressBar

        from spectrascope.core.views import pairing as view

        if not report.pending:
            self._settled = report
        self.report = report.provisional(self.settings)
        self._draw()
        if self.job_running("pairing"):
            return
        self.run_job(THRESHOLDS, view.reclassify, report, self.settings)
        bar = self.query_one("#pairing-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self._draw_header()
        self._say(f"cos ≥ {self.settings.cos_threshold:.2f}, corr ≥ {self.settings.corr_threshold:.2f}: classes "
                  f"shown; recomputing the null model and permutation p… (x cancels)")

    def thresholds_done(self, report: Any) -> None:
        if self.job_running("pairing"):  # a run or re-pairing took over: its result is the one to show
            return
        if self.report is not None:  # labels that came in while it ran
            report = report.with_labels(self.report.result.labels)
        self.report, self._settled = report, report
        self._ended(f"cos ≥ {self.settings.cos_threshold:.2f}, corr ≥ {self.settings.corr_threshold:.2f}: "
                    f"null model and permutation p recomputed.")
        self._draw()

    def thresholds_stopped(self, why: str, error: bool = False) -> None:
        """Cancelled or failed: back to the last full result and its thresholds (unless a run took over)."""
        if self.job_running("pairing"):
            return
        if self._settled is not None:
            self.report, self.settings = self._settled, self._settled.result.settings
        self._ended(f"{why}: back to cos ≥ {self.settings.cos_threshold:.2f}, corr ≥ "
                    f"{self.settings.corr_threshold:.2f}, the last fully computed result.", error)
        self._draw()
