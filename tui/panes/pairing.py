"""Pairing pane: concept vs neutral prompt sets -> selective coarse anchors -> their fine sub-features.

`r` runs both prompt sets through the model and both SAEs as a job (progress bar, `x` cancels between
batches; a finished run is cached on disk). After that, from the shown `PairingReport`
(core/views/pairing.py): thresholds (`c`/`C` cosine, `o`/`O` correlation) reclassify at once and recompute
the null model and permutation p as a job, the last press winning (tui/pairing_thresholds.py); `enter` on a
candidate shows it; `space` (± anchor) and `+`/`-` (how many) re-pair as a job, with no model forward.
Rows newly listed show "…" until the label worker has labelled them. A session file keeps the shown
report's anchors; restoring it runs again with them (from the contrast cache) once the model is there.
The shown anchor and its sub-features go up to the app as `SelectionChanged` (the Steering pane's).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from spectrascope.core.analysis.contrast import ContrastSettings, default_sets
from spectrascope.core.analysis.pairing import PairingSettings, known_labels
from spectrascope.core.engine.labels import PENDING
from spectrascope.core.text import one_line
from spectrascope.core.views import pairing as view
from spectrascope.tui.errors import describe
from spectrascope.tui.label_worker import LabelsComputed, LabelWorker
from spectrascope.tui.matched_neutral import MatchedNeutralAction
from spectrascope.tui.pairing_thresholds import THRESHOLDS, ThresholdRecompute
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets import pairing_render as render
from spectrascope.tui.widgets.fast_table import FastTable

N_CANDIDATES = view.N_CANDIDATES


class PairingPane(ThresholdRecompute, MatchedNeutralAction, LabelWorker, Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#pairing-anchors"
    status_id = "#pairing-status"
    BINDINGS = [
        Binding("r", "run", "Run"), Binding("s", "next_set", "Prompt set"), Binding("v", "token_view", "Tokens"),
        Binding("x", "cancel", "Cancel"), Binding("space", "toggle_anchor", "± anchor"),
        Binding("plus,equals_sign", "anchors(1)", "Anchors+"), Binding("minus", "anchors(-1)", "Anchors−"),
        Binding("c", "threshold('cos', -0.05)", "cos−"), Binding("C", "threshold('cos', 0.05)", "cos+"),
        Binding("o", "threshold('corr', -0.05)", "corr−"), Binding("O", "threshold('corr', 0.05)", "corr+"),
    ]

    class SelectionChanged(Pane.Shared):
        """The shown anchor and its sub-features: (("coarse", a), ("fine", f), ...); () before a run."""

        def __init__(self, features: tuple[tuple[str, int], ...]):
            super().__init__("pairing_selection", features)

        @property
        def features(self) -> tuple[tuple[str, int], ...]:
            return self.value

    class ShowScreen(Pane.ShowScreen):
        """A screen for the app to push (panes never reach into the app)."""

    def __init__(self, concept: str | Path | None = None, neutral: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self.concept_path, self.neutral_path = (Path(p) if p else d for p, d in zip((concept, neutral), default_sets()))
        self.settings = PairingSettings()
        self.contrast_settings = ContrastSettings()
        self.report: view.PairingReport | None = None  # the shown pairing
        self.anchor: int | None = None  # the anchor whose pairing is shown
        self.use_cache = True
        self._announced: tuple[tuple[str, int], ...] = ()  # the selection the app last heard of
        self._restore_anchors: list[int] | None = None  # a restored session's anchors, run once the model is there
        self._tokens_of: tuple[str, int] = ("coarse", 0)  # the feature the token-view job reads

    def compose(self) -> ComposeResult:
        yield Static("", id="pairing-header")
        with Horizontal(id="pairing-progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="pairing-progress")
            yield Static("", id="pairing-status")
        yield Static("", id="pairing-verdict")
        with Horizontal(id="pairing-body"):
            with Vertical(id="pairing-left"):
                yield Static(render.CANDIDATES_TITLE, classes="pairing-title")
                yield FastTable(id="pairing-anchors")
                yield Static("", id="pairing-pairs-title", classes="pairing-title")
                yield FastTable(id="pairing-pairs")
            with Vertical(id="pairing-right"):
                yield Static("", id="pairing-tree")
                yield Static("", id="pairing-scatter")
                yield Static("", id="pairing-heat")

    DEFAULT_CSS = """
    PairingPane, #pairing-body, #pairing-pairs, #pairing-tree, #pairing-scatter { height: 1fr; }
    #pairing-progress-row, .pairing-title { height: 1; }
    #pairing-progress { width: 30; }
    #pairing-status, #pairing-right { width: 1fr; }
    #pairing-verdict { height: auto; }
    #pairing-left { width: 1fr; min-width: 60; }
    #pairing-anchors { height: 12; }
    #pairing-heat { height: auto; max-height: 16; }
    """

    def on_mount(self) -> None:
        self.query_one("#pairing-progress", ProgressBar).display = False
        self.query_one("#pairing-anchors", FastTable).set_columns(render.CANDIDATE_COLUMNS)
        self.query_one("#pairing-pairs", FastTable).set_columns(render.PAIR_COLUMNS)
        self._draw_header()
        self._say("Press r to run the concept and neutral sets through the model and both SAEs.")

    @property
    def result(self) -> Any:
        """The shown `core.analysis.pairing.PairingResult` (None before a run)."""
        return self.report.result if self.report is not None else None

    @property
    def busy(self) -> bool:
        """A run, a re-pairing or a threshold recompute is under way."""
        return self.job_running("pairing") or self.job_running(THRESHOLDS)

    def selected_features(self) -> list[tuple[str, int]]:
        """The shown anchor and its sub-features: [("coarse", a), ("fine", f), ...] (empty before a run)."""
        return [] if self.report is None else self.report.selected_features(self.anchor)

    # ---- session file and export ----------------------------------------------------------------------
    def _spec(self, anchors: list[int] | None = None) -> view.PairingSpec:
        return view.PairingSpec.of(self.concept_path, self.neutral_path, self.settings, self.contrast_settings,
                                   anchors, self.use_cache)

    def get_state(self) -> dict:
        return {**self._spec(self.result.anchors if self.report else None).to_state(), "anchor": self.anchor}

    def set_state(self, state: dict) -> None:
        spec = view.PairingSpec.from_state({"concept": self.concept_path, "neutral": self.neutral_path, **state})
        self.concept_path, self.neutral_path = spec.paths()
        self.settings, self.contrast_settings = spec.settings, spec.contrast_settings
        self.anchor = None if state.get("anchor") is None else int(state["anchor"])
        self._restore_anchors = list(spec.anchors) if spec.anchors else None
        self._draw_header()
        self.watch_session()

    def watch_session(self) -> None:
        """Show a restored session's result again: the same run, from the contrast cache when it has it."""
        if self.session is not None and self._restore_anchors is not None and not self.busy:
            anchors, self._restore_anchors = self._restore_anchors, None
            self.action_run(anchors)

    def export_doc(self) -> tuple[dict, list[dict], str] | None:
        """The full report (anchors, pairings, heatmap, verdict), its pairs as CSV rows (ctrl+e)."""
        if self.report is None:
            return None
        from spectrascope.tui.export import pairing_rows

        doc = self.report.to_dict()
        return doc, pairing_rows(doc), self.report.sets_name  # the prompt sets, not the cache's hash

    def export(self, folder) -> list:
        """The base's JSON and CSV, and the report as Markdown beside them."""
        from spectrascope.tui.export import write_new

        paths = super().export(folder)
        return paths + [write_new(paths[0].with_suffix(".md"), self.report.to_markdown())] if paths else paths

    def _draw_header(self) -> None:
        self.query_one("#pairing-header", Static).update(render.header_text(
            self.concept_path.name, self.neutral_path.name, self.settings, self.contrast_settings, self.busy))

    def action_token_view(self) -> None:
        """Which tokens the highlighted feature (a candidate, or a fine row when that table has focus)
        fires on, in the prompts where it fires most and least (a job; then a screen)."""
        if self.report is None or self.session is None:
            self._say("Run the pairing first (r).")
            return
        table = self.query_one("#pairing-pairs", FastTable)
        role, feature = "coarse", self._candidate_under_cursor()
        if table.has_focus and table.row_count:
            role, feature = "fine", int(table.keys[table.cursor])
        if feature is None:
            return
        self._say(f"Reading {role} #{feature} token by token…")
        self._tokens_of = (role, feature)
        self.run_job("tokens", view.feature_tokens, self.session, self.report, self._spec(), role, feature)

    def action_next_set(self) -> None:
        """The next shipped concept set with its matched neutral set (core/concept_sets.py); r runs it.
        Other sets: `--concept/--neutral` on the command line or in a saved session."""
        chosen = view.next_concept_set(self.concept_path)
        self.concept_path, self.neutral_path = chosen.concept, chosen.neutral
        self._draw_header()
        self._say(f"Prompt set: {chosen.name} against its matched neutral set; r runs it (s: next set).")

    # ---- running and re-pairing: one job, so a newer one supersedes an older one ---------------------
    def action_run(self, anchors: list[int] | None = None) -> None:
        """Run both prompt sets, then pair `anchors` (None: the top `settings.n_anchors` by selectivity)."""
        if self.session is None:
            self._say("Waiting for the model to load.")
            return
        if self.job_running("pairing"):
            self._say("Already running: x cancels.")
            return
        self.cancel_jobs(THRESHOLDS)  # the run is judged at the pane's thresholds
        self.run_job("pairing", view.analyse, self.session, self._spec(anchors))
        bar = self.query_one("#pairing-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)  # it pulses until the first batch reports a count
        self._draw_header()
        self._say("first batch of prompts running… x cancels")  # short: the whole line fits at 80 columns

    def _repair(self, anchors: list[int] | None, settings: PairingSettings, show: int | None = None) -> None:
        """Pair the shown run again with `anchors` (None: the top `settings.n_anchors`), then show `show`."""
        if self.report is None:
            return
        if self.job_running("pairing"):
            self._say("Busy: try again when the current run ends (x cancels).")
            return
        self.cancel_jobs(THRESHOLDS)  # the re-pairing is judged at the pane's thresholds
        self.settings, self.anchor = settings, self.anchor if show is None else show
        self.run_job("pairing", view.repair, self.session, self.report, settings, anchors)
        self._draw_header()

    def action_cancel(self) -> None:
        if self.cancel_jobs("pairing", THRESHOLDS):
            self._say("cancelling after the current batch…")

    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        if fraction is not None:
            self.query_one("#pairing-progress", ProgressBar).update(total=1.0, progress=fraction)
        self._say(text)

    def _ended(self, text: str, error: bool = False) -> None:
        """A run or re-pairing is over: no bar, the header without "running", `text` in the status line."""
        self.query_one("#pairing-progress", ProgressBar).display = False
        self._draw_header()
        self._say(text, error)

    def job_cancelled(self, name: str) -> None:
        if name == "pairing":
            self._ended("Cancelled; the previous result (if any) is still shown.")
        elif name == THRESHOLDS:
            self.thresholds_stopped("Cancelled")

    def job_failed(self, name: str, error: BaseException) -> None:
        if name == "pairing":
            self._ended(describe(error), error=True)
        elif name == THRESHOLDS:
            self.thresholds_stopped(describe(error), error=True)
        else:
            self._say(f"Token view failed: {describe(error)}", error=True)

    def job_done(self, name: str, value: Any) -> None:
        if name == "tokens":
            from spectrascope.tui.token_view import TokenViewScreen

            role, feature = self._tokens_of
            self._say(f"{role} #{feature}: token view open (esc closes).")
            self.post_message(self.ShowScreen(TokenViewScreen(role, feature, self._label(role, feature), value)))
            return
        if name == THRESHOLDS:
            return self.thresholds_done(value)
        report: view.PairingReport = value
        self.report, self.label_error = report, None  # a new result tries the labels again
        if self.anchor not in report.result.anchors:
            self.anchor = report.first_shown
        self._ended(render.run_summary(report.result.contrast))
        if report.result.settings != self.settings:  # thresholds moved while it ran: reclassified as they are
            self.reclassify_at_thresholds(report)
        else:
            self._draw()

    def _candidate_under_cursor(self) -> int | None:
        table = self.query_one("#pairing-anchors", FastTable)
        key = table.keys[table.cursor] if table.row_count else None
        return None if key is None else int(key)

    @on(FastTable.Selected, "#pairing-anchors")
    def _anchor_chosen(self, message: FastTable.Selected) -> None:
        if message.key is None or self.report is None:
            return
        feature = int(message.key)
        if feature in self.result.anchors:
            self.anchor = feature
            self._draw()
        else:  # not yet an anchor: pair it, then show it
            self._repair(self.result.anchors + [feature], self.settings, show=feature)

    def action_toggle_anchor(self) -> None:
        feature = self._candidate_under_cursor()
        if feature is None or self.report is None:
            return
        anchors = list(self.result.anchors)
        if feature not in anchors:
            self._repair(anchors + [feature], self.settings, show=feature)
        elif len(anchors) == 1:
            self._say("At least one anchor is needed.")
        else:
            anchors.remove(feature)
            self._repair(anchors, self.settings, anchors[0] if self.anchor == feature else None)

    def action_anchors(self, delta: int) -> None:
        settings = replace(self.settings, n_anchors=max(1, min(N_CANDIDATES, self.settings.n_anchors + delta)))
        if self.report is None:
            self.settings = settings
            self._draw_header()
        else:
            self._repair(None, settings)  # the top n by selectivity

    # ---- labels of newly listed rows, from the shared label worker ---------------------------------------
    def on_labels_computed(self, message: LabelsComputed) -> None:
        self.labels_done(message)
        if self.label_error:
            self._say(f"labels: {self.label_error}", error=True)
        if self.report is not None:  # the worker filled the session's caches: read them, then label the rest
            self.report = self.report.with_labels(known_labels(self.session, self.report.unlabelled()))
            self._draw()

    def _label(self, role: str, feature: int) -> str:
        return one_line(self.result.labels.get(role, {}).get(feature, PENDING), 60)

    # ---- drawing ----------------------------------------------------------------------------------------
    def _draw(self) -> None:
        if self.report is None:
            return
        self.query_one("#pairing-verdict", Static).update(render.verdict_text(self.result))
        self.query_one("#pairing-anchors", FastTable).set_rows(
            *render.candidate_rows(self.result, self.anchor, self._label, N_CANDIDATES))
        title, cells, keys = render.pair_rows(self.result, self.anchor, self._label)
        self.query_one("#pairing-pairs-title", Static).update(title)
        self.query_one("#pairing-pairs", FastTable).set_rows(cells, keys)
        self._draw_plots()
        selection = tuple(self.selected_features())
        if selection != self._announced:  # other panes hear of it through the app
            self._announced = selection
            self.post_message(self.SelectionChanged(selection))
        self.fetch_labels(self.report.unlabelled())

    def _draw_plots(self) -> None:
        size = self.query_one("#pairing-scatter", Static).size
        drawn = render.anchor_plots(self.result, self.anchor, self._label, size.width, size.height)
        for widget_id, renderable in zip(("#pairing-tree", "#pairing-scatter", "#pairing-heat"), drawn):
            self.query_one(widget_id, Static).update(renderable)

    def on_resize(self) -> None:
        if self.report is not None:
            self.call_after_refresh(self._draw_plots)
