"""Logits pane: the next-token distribution under temperature, top-k and top-p, step by step.

It shows the Logits view's report (core/views/logits.py) from what it holds; knobs re-render from the cached
`LogitsView`. Steps, seeded runs and the A/B are the base's jobs, one at a time (steps pressed meanwhile queue);
a step moves a copy of the stepper, adopted when it returns. A step or an A/B for an older prompt is dropped;
seeded runs, and an A/B whose knobs changed, stay on screen marked stale. A session file keeps the steps
(fed again on restore) and the seeded runs (as they were)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.views import logits
from spectrascope.tui.errors import describe
from spectrascope.tui.knob_keys import knob_text, turned
from spectrascope.tui.label_worker import LabelsComputed, LabelWorker
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.stale import Basis
from spectrascope.tui.typed_ahead import TypedAhead
from spectrascope.tui.widgets.fast_table import FastTable
from spectrascope.tui.widgets.logits_report import (AB_COLUMNS, DISTRIBUTION_COLUMNS, GenerationStrip, RunsBox,
                                                    draw_ab, draw_distribution, generated_text, knobs_line)
from spectrascope.tui.widgets.text_field import TextField

QUEUE_MAX = 20  # steps pressed ahead while one runs; a held key queues no more


class LogitsPane(LabelWorker, Pane):
    focus_target = "#logits-table"
    status_id = "#logits-summary"
    BINDINGS = [
        Binding("t", "turn('temperature', -0.1)", "T−"), Binding("T", "turn('temperature', 0.1)", "T+"),
        Binding("k", "turn('top_k', -1)", "k−"), Binding("K", "turn('top_k', 1)", "k+"),
        Binding("p", "turn('top_p', -0.05)", "p−"), Binding("P", "turn('top_p', 0.05)", "p+"),
        Binding("s", "step('sample')", "Sample"), Binding("g", "step('greedy')", "Greedy"),
        Binding("b,backspace", "back", "Back"), Binding("n", "runs", "N runs"),
        Binding("r", "turn('seed', 1)", "New seed"), Binding("a", "toggle_ab", "Sys A/B"),
        Binding("w", "why", "Why?"), Binding("0", "reset_knobs", "Reset", show=False),
    ]

    top_n = 20
    n_runs = 5
    run_steps = 20

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings = SamplingSettings(temperature=1.0)
        self.view: Any = None  # core.stats.sampling.LogitsView: logits for the next token
        self.prompt: str = ""  # the prompt `view` belongs to
        self.stepper: Any = None  # core.engine.generation.Stepper once the user steps; replaced, never moved here
        self.ab: Any = None  # core.engine.generation.SystemAB when the A/B is on
        self.ab_basis: Basis | None = None
        self.ab_on = False
        self.runs: Any = None  # list of core.engine.generation.Run
        self.runs_basis: Basis | None = None
        self.queued = TypedAhead(QUEUE_MAX)  # steps and backs pressed while a job ran, in order
        self._asked: dict[str, Basis] = {}  # job name -> what its newest run was started for
        self._saved_steps: Any = None  # a session file's core.views.logits.SavedLogits: replayed on its prompt

    def compose(self) -> ComposeResult:
        yield Static("", id="logits-knobs")
        yield Static("", id="logits-summary")
        yield Static("", id="logits-text")
        yield GenerationStrip("", id="logits-strip")  # per generated token: p, rank, top feature
        yield TextField("system prompt (A/B)", placeholder="a system prompt to compare against (a: A/B)",
                        id="logits-system")
        with Vertical(id="logits-body"):  # app.tcss puts the runs beside the table on wide screens
            yield FastTable(id="logits-table")
            yield RunsBox(id="logits-runs-box")

    def on_mount(self) -> None:
        self._draw_columns()
        self._draw_knobs()

    @property
    def busy(self) -> bool:
        return self.job_running()

    @property
    def records(self) -> list:  # core.analysis.step_record.TokenRecord of the steps the strip shows
        return self.query_one(GenerationStrip).records

    # ---- session file and export -----------------------------------------------------------
    def get_state(self) -> dict:
        return {"settings": self.settings.to_dict(), "system": self._system(), "ab": self.ab_on}

    def set_state(self, state: dict) -> None:
        self.settings = SamplingSettings.from_dict(state.get("settings", {}))
        self.query_one("#logits-system", Input).value = str(state.get("system", ""))
        self.ab_on = bool(state.get("ab"))
        self._draw_columns()
        self._draw_knobs()

    def get_results(self) -> dict:
        """The generation's steps (replayed on restore) and the seeded runs (kept as they are, with their basis)."""
        saved = logits.SavedLogits.of(self.prompt, self.stepper, self.runs, self.runs_basis)
        return saved.to_dict() if saved.steps or saved.runs is not None else {}

    def set_results(self, results: dict) -> str:
        saved = logits.SavedLogits.from_dict(results)
        if saved.runs is not None:
            self.runs, self.runs_basis = saved.runs, Basis(saved.runs_prompt, saved.runs_knobs)
            self.query_one(RunsBox).show_runs(saved.runs)
            self._draw_runs_note()
        self._saved_steps = saved if saved.steps else None
        return saved.note()

    @property
    def export_kind(self) -> str:  # the A/B's table is a file of its own kind
        return "logits-ab" if self.ab_on and self._fresh_ab() is not None else "logits"

    def export_doc(self) -> tuple[dict, list[dict], str] | None:
        """The report of what is shown (distribution, steps, current A/B and seeded runs), and the shown table
        (the distribution, or the A/B with its system prompt) as CSV rows."""
        from spectrascope.tui.export import ab_rows, distribution_rows

        if (dist := self._distribution()) is None:
            return None
        steps = self.stepper.steps if self.stepper is not None else None
        stale_runs = self.runs is None or self.runs_basis.stale_note(self._basis("runs"))
        doc = logits.LogitsReport.of(
            self.prompt, self.settings, dist, self.piece, self.top_n, system=self._system(), ab=self._fresh_ab(),
            full_ab=True, runs=None if stale_runs else self.runs, steps=steps,
            labels=self.session.labels if self.session is not None else {},  # those not known yet: "…"
        ).to_dict()
        ab = self.ab_on and "system_ab" in doc
        return doc, ab_rows(doc["system_ab"]["system"], doc["system_ab"]) if ab else distribution_rows(doc), self.prompt

    # ---- inputs from the app ------------------------------------------------------------
    def show_result(self, result) -> None:
        """A new prompt result: reset stepping and the A/B, keep the knobs and (marked stale) the runs."""
        if result.logits is None:
            return
        from spectrascope.core.stats.sampling import LogitsView  # torch: loaded with the model, not at start

        self.prompt = result.prompt
        self.view = LogitsView(result.logits)
        self.stepper = None
        self.queued.clear()  # steps pressed for the old prompt
        self.ab = None
        self.label_error = None  # a new prompt tries the labels again
        self._draw()
        saved, self._saved_steps = self._saved_steps, None
        if saved is not None and saved.prompt == self.prompt:  # a restored session's steps, each token fed again
            self._start("step", Basis(self.prompt), logits.replay, self.session, self.prompt, saved.steps)
        if self.ab_on:
            self._start_ab()

    def companions(self, prompt: str) -> tuple:  # the A/B's variants ride in the prompt's forward
        return logits.ab_companions(self.session, prompt, self._system()) if self.ab_on and self.session else ()

    def piece(self, token_id: int) -> str:
        return self.session.piece(token_id) if self.session is not None else str(token_id)

    # ---- knobs (no model call) ------------------------------------------------------------
    def _set(self, **changes) -> None:
        try:
            self.settings = replace(self.settings, **changes)
        except ValueError as exc:
            self._say(str(exc), "bold red")
            return
        self._draw()

    def action_turn(self, knob: str, amount: float) -> None:
        self._set(**turned(self.settings, knob, amount))

    def action_reset_knobs(self) -> None:
        self._set(temperature=1.0, top_k=None, top_p=1.0)

    # ---- what is shown -----------------------------------------------------------------------
    def _system(self) -> str:
        return self.query_one("#logits-system", Input).value

    def _distribution(self) -> Any:
        """The next-token distribution under the knobs (cached logits, no model call); None before a result."""
        view = self.stepper.view if self.stepper is not None else self.view
        return view.apply(self.settings) if view is not None else None

    def _basis(self, job: str) -> Basis:
        """What job "runs" or "ab" would be computed for now: the prompt, the knobs, the runs' size or the system."""
        more = f"{self.n_runs} runs × {self.run_steps} tokens" if job == "runs" else f"system '{self._system()}'"
        return Basis(self.prompt, f"{knob_text(self.settings)} · {more}")

    def _fresh_ab(self) -> Any:
        """The A/B if it was computed for what is asked now, else None."""
        return self.ab if self.ab is not None and not self.ab_basis.stale_note(self._basis("ab")) else None

    def _draw_knobs(self) -> None:
        self.query_one("#logits-knobs", Static).update(knobs_line(self.settings, self.busy, len(self.queued)))

    def _draw_columns(self) -> None:
        self.query_one("#logits-table", FastTable).set_columns(AB_COLUMNS if self.ab_on else DISTRIBUTION_COLUMNS)

    def _draw(self) -> None:
        """Re-render everything from cached logits: this is the knob-change path."""
        self._draw_knobs()
        self.query_one("#logits-text", Static).update(
            generated_text(self.prompt, self.stepper.steps if self.stepper is not None else None, self.piece))
        self._draw_strip()
        self._draw_runs_note()
        if self.ab_on:
            self._draw_ab()
        elif (dist := self._distribution()) is not None:
            self._say(draw_distribution(self.query_one("#logits-table", FastTable), dist, self.piece, self.top_n))

    def _draw_strip(self) -> None:
        labels = self.session.labels if self.session is not None else {}
        steps = self.stepper.steps if self.stepper is not None else []
        self.fetch_labels(self.query_one(GenerationStrip).show(steps, self.piece, labels, self.size.width or 80))

    def on_labels_computed(self, message: LabelsComputed) -> None:
        self.labels_done(message)
        if self.label_error:
            self._say(f"labels: {self.label_error}", "bold red")
        self._draw_strip()

    def _draw_ab(self) -> None:
        stale = self.ab_basis.stale_note(self._basis("ab")) if self.ab is not None else ""
        self._say(*draw_ab(self.query_one("#logits-table", FastTable), self.ab, self._system(), self.piece, stale,
                           self.busy))

    def _draw_runs_note(self) -> None:
        self.query_one(RunsBox).note(None if self.runs is None else self.runs_basis, self._basis("runs"))

    # ---- model work (the base's jobs, one at a time) ----------------------------------------------
    def _start(self, job: str, basis: Basis, fn: Any, *args: Any) -> bool:
        """Run `fn(*args)` as `job` for `basis`, unless the model or a prompt is missing or a job runs."""
        if self.session is None or self.view is None:
            self._say("Waiting for the model and a prompt.")
        if self.busy or self.session is None or self.view is None:
            return False
        self._asked[job] = basis
        self.run_job(job, fn, *args)
        self._draw_knobs()
        return True

    @on(FastTable.Selected, "#logits-table")
    def _row_chosen(self) -> None:
        self.action_step("pick")  # enter on a row appends that token

    def action_step(self, how: str) -> None:
        token_id = None
        if how == "pick":
            table = self.query_one("#logits-table", FastTable)
            if self.ab_on or table.row_count == 0:
                return
            token_id = int(table.keys[table.cursor])
        settings = replace(self.settings, temperature=0.0) if how == "greedy" else self.settings
        if self.busy and how == "pick":  # a pick reads the shown table, which the running step replaces
            self._say("A step is running: pick a row when it is done.")
        elif self.busy:
            self._enqueue(lambda: self._start_step(settings))
        else:
            self._start_step(settings, token_id)

    def action_why(self) -> None:  # the Attribution pane on the selected row, after the text with its steps
        table = self.query_one("#logits-table", FastTable)
        if not self.ab_on and table.row_count and self.session is not None:
            steps = self.stepper.steps if self.stepper is not None else []
            text = self.prompt + self.session.decode([s.token_id for s in steps])
            self.post_message(Pane.Shared("attribution_ask", (text, f"#{int(table.keys[table.cursor])}")))

    def _start_step(self, settings: SamplingSettings, token_id: int | None = None) -> None:
        self._start("step", Basis(self.prompt), logits.step, self.session, self.prompt, self.stepper, settings,
                    token_id)

    def action_back(self) -> None:
        if self.busy:
            self._enqueue(self.action_back)  # with nothing left to undo then, it does nothing
        elif self.stepper is not None and self.stepper.steps:
            self._start("step", Basis(self.prompt), logits.back, self.stepper)

    def _enqueue(self, action: Callable[[], None]) -> None:
        """Keep a key pressed while a step runs (a demo types ahead); a held key stops at QUEUE_MAX."""
        if not self.queued.add(action):
            self._say(f"{QUEUE_MAX} steps are already queued: wait for them.", "bold red")
        self._draw_knobs()

    def action_runs(self) -> None:
        self._start("runs", self._basis("runs"), logits.seeded, self.session, self.prompt, self.settings, self.n_runs,
                    self.run_steps)

    def _show_ab(self, on: bool) -> None:
        self.ab_on = on
        self._draw_columns()
        self._draw()  # never one view's rows under the other's column headers

    def action_toggle_ab(self) -> None:
        self._show_ab(not self.ab_on)
        if self.ab_on and not self._system().strip():
            self.query_one("#logits-system", Input).focus()
            self._say("Type a system prompt and press enter to compare with and without it.")
        elif self.ab_on:
            self._start_ab()

    @on(Input.Changed, "#logits-system")
    def _system_changed(self, event: Input.Changed) -> None:
        self.post_message(Pane.Shared("system_prompt", event.value))  # the Anchor pane offers it
        if self.ab_on:
            self._draw_ab()  # the shown A/B may now be for another system prompt

    @on(Input.Submitted, "#logits-system")
    def _system_submitted(self) -> None:
        self._show_ab(True)  # (again, if on: it redraws)
        self._start_ab()
        self.query_one("#logits-table", FastTable).focus()

    def _start_ab(self) -> None:
        if not (system := self._system()).strip():
            return self._say("The system prompt is empty: type one to compare against.", "bold red")
        if self._start("ab", self._basis("ab"), logits.system_ab, self.session, self.prompt, system, self.settings,
                       self.top_n):
            self.ab = None
            self._draw_ab()

    def job_done(self, name: str, value: Any) -> None:
        basis = self._asked[name]
        current = basis.prompt == self.prompt  # else a newer prompt arrived while it ran
        if name == "step" and current:
            self.stepper = value
            self.post_message(Pane.Stepped(self.prompt, value))  # the app hands it to the Spectrum, which follows
        elif name == "ab" and current:
            self.ab, self.ab_basis = value, basis
        elif name == "runs":
            self.runs, self.runs_basis = value, basis
            self.query_one(RunsBox).show_runs(value)
        self._draw()
        self.queued.run(lambda: self.busy)
        self._draw_knobs()
        if not self.busy and self.ab_on and self.ab is None and self._system().strip():
            self._start_ab()  # a new prompt came while this pane was busy

    def job_failed(self, name: str, error: BaseException) -> None:
        self.queued.clear()  # what was pressed after a failed step would build on it
        self._draw_knobs()
        self._say(describe(error), "bold red")

