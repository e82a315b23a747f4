"""Steering pane: coarse vs fine vs coarse+fine feature steering, side by side, effect vs cost.

Features come from the Pairing pane's selection (key f; the app hands it down) or are
typed as `coarse:123:4 fine:77:2` (ROLE:ID[:STRENGTH]; strength in the feature's unit, see
core/analysis/steering.py). g generates every configuration (baseline, coarse, fine, coarse+fine)
with the same seeds and shows them side by side with the effect (concept activation read back
unsteered, share of runs with a concept word) and the cost (perplexity under the unsteered
model) under each; w runs the strength sweep and plots effect and cost against strength.
Both are the Steering view (core/views/steering.py) run as one job: a new run cancels the old one.
A report stays on screen when the prompt (the app's, as typed) or a setting changes, under a
"stale: computed for …" line.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Input, Static

from spectrascope.core.analysis.steering import STRENGTH_MAX, SteerFeature, SteeringError
from spectrascope.core.views.steering import SteeringSpec, build
from spectrascope.tui.errors import describe
from spectrascope.tui.export import steering_rows
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.fast_table import FastTable
from spectrascope.tui.widgets.steering_columns import (CONFIGS, FEATURE_COLUMNS, PANE_CSS, RunColumn, draw_columns,
                                                       draw_plots, feature_cells, settings_line, show_stale,
                                                       targeting_note, words_note)
from spectrascope.tui.widgets.text_field import TextField
from spectrascope.tui.widgets.words_field import WordsField

PANE_DEFAULTS = SteeringSpec(sweep=(0.0, 2.0, 4.0, 8.0), n_seeds=3, tokens=12)  # small: a run takes seconds
SEEDS_MAX = 20
STRENGTH_STEP = 0.5
FEATURE_ROWS_SHOWN = 8


class SteeringPane(Pane):
    focus_target = "#steer-feature-table"
    status_id = "#steer-status"
    DEFAULT_CSS = PANE_CSS
    BINDINGS = [
        Binding("g", "generate", "Generate"), Binding("w", "sweep", "Sweep"),
        Binding("v", "toggle_view", "Side/Sweep"), Binding("f", "from_pairing", "From pairing"),
        Binding("plus,equals_sign", "strength(1)", "Str+"), Binding("minus", "strength(-1)", "Str−"),
        Binding("m", "toggle_method", "add/clamp"), Binding("o", "toggle_positions", "Positions"),
        Binding("right_square_bracket", "seeds(1)", "Seeds+", show=False),
        Binding("left_square_bracket", "seeds(-1)", "Seeds−", show=False),
        Binding("r", "reseed", "New seed", show=False), Binding("escape", "cancel", "Cancel", show=False),
    ]

    # Handed down by the app: its prompt as typed, the Pairing pane's selection, features sent by another pane.
    prompt: reactive[str] = reactive("", init=False, repaint=False)
    pairing_selection: reactive[tuple[tuple[str, int], ...]] = reactive((), init=False, repaint=False)
    steer_features: reactive[tuple[tuple[str, int, float], ...]] = reactive((), init=False, repaint=False,
                                                                            always_update=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._hold(PANE_DEFAULTS)
        self.report: Any = None  # the last side-by-side core.views.steering.SteeringReport
        self.sweep_report: Any = None  # the last sweep's
        self.view = "side"

    def compose(self) -> ComposeResult:
        with Horizontal(id="steer-inputs"):
            yield TextField("features to steer", placeholder="coarse:123:4 fine:77:2   (f: the Pairing pane's)",
                            id="steer-features")
            yield WordsField("concept words", placeholder="a, b, c (empty: the concept feature's own)",
                             id="steer-words")
        yield Static("", id="steer-settings")
        yield FastTable(id="steer-feature-table")
        yield Static("", id="steer-status")
        yield Static("", id="steer-stale")
        with Horizontal(id="steer-columns"):
            for name in CONFIGS:
                yield RunColumn("", id=f"steer-col-{name.replace('+', '-')}", classes="steer-col")
        with Horizontal(id="steer-plots"):
            yield Static("", id="steer-plot-effect", classes="steer-plot")
            yield Static("", id="steer-plot-cost", classes="steer-plot")

    def on_mount(self) -> None:
        self.query_one("#steer-feature-table", FastTable).set_columns(FEATURE_COLUMNS)
        self.query_one("#steer-plots").display = False
        self._draw_settings()
        self._draw_features()
        self._say("Type features and press enter (or f for the Pairing pane's), then g to generate, w to sweep.")

    def watch_prompt(self) -> None:
        if self.is_mounted:  # the app's prompt moved on: the shown report may be stale now
            self._draw_stale()

    # ---- the Spec the fields hold ------------------------------------------------------------------
    def _hold(self, spec: SteeringSpec) -> None:
        """The pane's fields from `spec` (the prompt is the app's)."""
        self.features: list[SteerFeature] = list(spec.features)
        self.method, self.positions, self.unit = spec.method, spec.positions, spec.unit  # unit: no key sets it
        self.n_seeds, self.tokens, self.sweep = spec.n_seeds, spec.tokens, spec.sweep
        self.settings, self.concept = spec.settings, spec.concept
        self.words = list(spec.words) if spec.words else None  # None: the concept feature's (the field shows them)

    def asked(self, sweep: bool = True) -> SteeringSpec:
        """The Spec the fields hold now; without `sweep`, the features' own strengths once (what g runs)."""
        return SteeringSpec(self.prompt, tuple(self.features), self.sweep if sweep else None, self.n_seeds,
                            self.tokens, self.method, self.positions, self.unit, self.settings, self.concept,
                            self.words)

    @property
    def busy(self) -> bool:
        return self.job_running("experiment")

    def _shown(self) -> Any:
        return self.report if self.view == "side" else self.sweep_report

    # ---- lines ----------------------------------------------------------------------------------------
    def _draw_settings(self) -> None:
        self.query_one("#steer-settings", Static).update(settings_line(self.asked(), self.busy))
        self._draw_stale()

    def _draw_stale(self) -> None:
        """Say so when the shown report was computed for another prompt or other settings."""
        show_stale(self.query_one("#steer-stale", Static), self._shown(), self.asked(self.view == "sweep"))

    def _draw_features(self) -> None:
        table = self.query_one("#steer-feature-table", FastTable)
        table.set_rows(feature_cells(self.features, getattr(self.report, "units", {}) or {}),
                       [f"{f.role}:{f.id}" for f in self.features])
        # Every row shown (header + rows, up to 8; more scroll), so "N features" matches what is seen.
        table.styles.height = 1 + max(1, min(len(self.features), FEATURE_ROWS_SHOWN))
        self._draw_stale()

    # ---- export (ctrl+e) and the session file ---------------------------------------------------------
    @property
    def export_kind(self) -> str:  # spectrascope-steering-side-… or -sweep-…: which report the file holds
        return f"steering-{self.view}"

    def export_doc(self) -> tuple[dict, list[dict], str] | None:
        """The shown report (side by side, or the sweep) as `spectrascope steer --json` prints it, its texts as CSV."""
        report = self._shown()
        if report is None:
            return None
        doc = report.to_dict()
        return doc, steering_rows(doc), report.prompt

    def get_results(self) -> dict:
        """The side-by-side and sweep reports as they are (a run takes tens of seconds), and which one shows."""
        saved = {k: r.to_state() for k, r in (("side", self.report), ("sweep", self.sweep_report)) if r is not None}
        return {**saved, "view": self.view} if saved else {}

    def set_results(self, results: dict) -> str:
        from spectrascope.core.views.steering import SteeringReport
        from spectrascope.tui.session_file import each

        reports, bad = each(results, ("side", "sweep"), SteeringReport.from_state)  # a bad one leaves the other
        self.report, self.sweep_report = reports.get("side"), reports.get("sweep")
        if results.get("view", "side") != self.view:
            self.action_toggle_view()
        self._draw_columns()
        self._draw_features()
        if bad:
            raise ValueError(bad)
        return f"{' and '.join(reports)} report{'s' * (len(reports) > 1)} as saved" if reports else ""

    def get_state(self) -> dict:
        return {k: v for k, v in self.asked().to_dict().items() if k != "prompt"}  # the prompt is the app's

    def set_state(self, state: dict) -> None:
        """Restore what get_state saved; a missing key keeps the pane's value, a bad one raises before any change."""
        spec = SteeringSpec.from_dict({**self.get_state(), **state})
        if spec.n_seeds > SEEDS_MAX or spec.sweep is None:
            raise SteeringError(f"n_seeds must be 1..{SEEDS_MAX} and sweep a list of multipliers")
        self._hold(spec)
        self.query_one("#steer-words", Input).value = ", ".join(self.words or [])
        self.query_one("#steer-features", Input).value = " ".join(f.label() for f in self.features)
        self.set_features(self.features)
        self._draw_settings()

    # ---- choosing features ----------------------------------------------------------------------
    @on(Input.Submitted, "#steer-features")
    def _features_submitted(self, event: Input.Submitted) -> None:
        from spectrascope.core.analysis.steering import parse_features, validate_features

        try:
            features = parse_features(event.value)
            if self.session is not None:
                validate_features(self.session, features)
        except SteeringError as exc:
            self._say(str(exc), error=True)
            return
        self.set_features(features)
        self.query_one("#steer-feature-table", FastTable).focus()

    @on(Input.Submitted, "#steer-words")
    def _words_submitted(self, event: Input.Submitted) -> None:
        self.words = self.query_one(WordsField).asked()  # None: the concept feature's own
        self._say(f"{len(self.words or self.query_one(WordsField).offered)} concept words: a run counts when its "
                  "text holds any (whole words; case and inflection ignored: French also counts France, Frenchmen).")
        self._draw_stale()
        self.query_one("#steer-feature-table", FastTable).focus()

    def set_features(self, features: list[Any]) -> None:
        self.features = list(dict.fromkeys(features))  # a feature typed twice is one row
        self.report = self.sweep_report = None
        self._draw_features()
        more = f" ({FEATURE_ROWS_SHOWN} shown: ↑/↓ scrolls)" if len(self.features) > FEATURE_ROWS_SHOWN else ""
        self._say(f"{len(self.features)} features{more} · g generate · w sweep · +/- strength of the selected row")
        self.watch_session()

    def watch_session(self) -> None:
        """Take the concept words from the concept feature (its top contexts, its promoted words) into the
        field, where the user sees and edits them; words the user gave stay."""
        from spectrascope.core.analysis.steering import concept_words, default_concept

        concept = (self.concept.role, self.concept.id) if self.concept else default_concept(self.features)
        if self.is_mounted and self.session is not None and self.words is None and concept is not None:
            self.run_job("words", lambda *ask, **_: concept_words(*ask), self.session, concept)  # no cancel: quick

    def action_from_pairing(self) -> None:
        if not self.pairing_selection:
            self._say("The Pairing pane has no features selected: run it (F4, r) or type features.", error=True)
            return
        self._take([SteerFeature(role, feature) for role, feature in self.pairing_selection])

    def watch_steer_features(self, sent: tuple[tuple[str, int, float], ...]) -> None:  # Attribution's `s`
        self._take([SteerFeature(role, feature, strength) for role, feature, strength in sent])

    def _take(self, picked: list[Any]) -> None:
        self.query_one("#steer-features", Input).value = " ".join(f.label() for f in picked)
        self.set_features(picked)

    def action_strength(self, direction: int) -> None:
        table = self.query_one("#steer-feature-table", FastTable)
        if not self.features:
            return
        i = min(table.cursor, len(self.features) - 1)
        f = self.features[i]
        strength = round(f.strength + direction * STRENGTH_STEP, 3)
        if abs(strength) > STRENGTH_MAX:  # the documented range (core/analysis/steering.py)
            self._say(f"Strength stays within ±{STRENGTH_MAX:g}.", error=True)
            return
        self.features[i] = replace(f, strength=strength)
        self.query_one("#steer-features", Input).value = " ".join(x.label() for x in self.features)
        self._draw_features()

    def action_toggle_method(self) -> None:
        self.method = "clamp" if self.method == "add" else "add"
        self._draw_settings()

    def action_toggle_positions(self) -> None:
        self.positions = "generated" if self.positions == "all" else "all"
        self._draw_settings()

    def action_seeds(self, delta: int) -> None:
        self.n_seeds = max(1, min(SEEDS_MAX, self.n_seeds + delta))
        self._draw_settings()

    def action_reseed(self) -> None:
        self.settings = replace(self.settings, seed=self.settings.seed + self.n_seeds)
        self._draw_settings()

    def action_toggle_view(self) -> None:
        self.view = "sweep" if self.view == "side" else "side"
        self.query_one("#steer-columns").display = self.view == "side"
        self.query_one("#steer-plots").display = self.view == "sweep"
        self._draw_plots()
        self._draw_stale()

    # ---- model work: one job, the experiment -----------------------------------------------------------
    def _start(self, sweep: bool) -> None:
        if self.session is None:
            self._say("Waiting for the model to load.")
            return
        if not self.features:
            self._say("No features yet: type e.g. coarse:123:4 fine:77:2 and press enter, or press f.", error=True)
            return
        if not self.prompt:
            self._say("Type a prompt first.", error=True)
            return
        spec = self.asked(sweep)
        self.run_job("experiment", build, self.session, spec)
        self._draw_settings()
        self._say(f"{'sweeping' if sweep else 'generating'} {spec.n_seeds} seeds × {spec.tokens} tokens…")

    def action_generate(self) -> None:
        self._start(sweep=False)

    def action_sweep(self) -> None:
        self._start(sweep=True)

    def action_cancel(self) -> None:
        if self.cancel_jobs():
            self._say("Cancelling…")

    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        pct = "" if fraction is None else f" ({fraction:.0%})"
        self._say(f"working: {text}{pct} · esc cancels")

    def job_cancelled(self, name: str) -> None:
        self._draw_settings()
        self._say("Cancelled; the model is unsteered again.")

    def job_failed(self, name: str, error: BaseException) -> None:
        if name == "words":
            self.query_one(WordsField).withdraw()  # the words offered were another feature's
        self._draw_settings()
        self._say(describe(error), error=True)

    def job_done(self, name: str, report: Any) -> None:
        if name == "words":
            if self.words is None and self.query_one(WordsField).offer(report[0]):  # never over typed words
                self._say(words_note(*report))
            return
        self._draw_settings()
        note = ""
        if report.asked.sweep is not None:
            note = targeting_note(report)
            self.sweep_report = report
            if self.view != "sweep":
                self.action_toggle_view()
            else:
                self._draw_plots()
        else:
            self.report = report
            if self.view != "side":
                self.action_toggle_view()
            self._draw_columns()
        self._draw_features()
        self._say(f"done in {report.seconds:.1f} s · concept feature "
                  f"{report.concept[0]}:{report.concept[1]} (marks: where it fired, unsteered readback) · same seeds "
                  f"{list(report.seeds)} everywhere{note}")

    # ---- drawing the reports --------------------------------------------------------------------------
    def _draw_columns(self) -> None:
        draw_columns({n: self.query_one(f"#steer-col-{n.replace('+', '-')}", RunColumn) for n in CONFIGS}, self.report)

    def _draw_plots(self) -> None:
        width = max(30, (self.size.width or 100) // 2 - 6)
        height = max(8, (self.size.height or 30) - 12)
        draw_plots(self.query_one("#steer-plot-effect", Static), self.query_one("#steer-plot-cost", Static),
                   self.sweep_report, width, height)
