"""Logits pane: the next-token distribution under temperature, top-k and top-p, step by step.

Knob changes re-render from the cached `LogitsView` (no model call). Stepping,
seeded reruns and the system-prompt A/B run in this pane's own thread workers,
one at a time; their results come back as messages with the `Basis` they were
computed for. A step or an A/B for an older prompt is dropped; seeded runs and an
A/B whose prompt or knobs no longer match stay on screen marked stale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static

from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.text import one_line, visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.label_worker import LabelsComputed, LabelWorker
from spectrascope.tui.stale import Basis
from spectrascope.tui.widgets.bars import bar
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.step_strip import step_strip_text
from spectrascope.tui.widgets.text_field import TextField

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

TOP_K_STEPS = [None, 1, 2, 3, 5, 10, 20, 40, 50, 100, 200, 500, 1000]
STRIP_STEPS = 40  # the strip reports at most the newest this many steps (more never fit a line)
QUEUE_MAX = 20  # steps pressed ahead while one runs; a held key queues no more


def knob_text(s: SamplingSettings) -> str:
    temp = "0 (greedy)" if s.is_greedy else f"{s.temperature:.2f}"
    k = "off" if s.top_k is None else str(s.top_k)
    p = "off" if s.top_p >= 1.0 else f"{s.top_p:.2f}"
    return f"T {temp}   top-k {k}   top-p {p}   seed {s.seed}"


@dataclass
class GenerationDone(Message):
    basis: Basis  # the prompt and knobs it was computed for
    stepper: Any = None
    runs: Any = None
    ab: Any = None
    error: BaseException | None = None


class LogitsPane(LabelWorker, Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#logits-table"
    pane_title = "Logits"
    BINDINGS = [
        Binding("t", "temperature(-0.1)", "T−"),
        Binding("T", "temperature(0.1)", "T+"),
        Binding("k", "top_k(-1)", "k−"),
        Binding("K", "top_k(1)", "k+"),
        Binding("p", "top_p(-0.05)", "p−"),
        Binding("P", "top_p(0.05)", "p+"),
        Binding("s", "step('sample')", "Sample"),
        Binding("g", "step('greedy')", "Greedy"),
        Binding("b,backspace", "back", "Back"),
        Binding("n", "runs", "N runs"),
        Binding("r", "reseed", "New seed"),
        Binding("a", "toggle_ab", "Sys A/B"),
        Binding("0", "reset_knobs", "Reset", show=False),
    ]

    class Stepped(Pane.Stepped):
        """The stepper moved (a step or a step back) on `prompt`: the app hands it to the Spectrum pane."""

    top_n = 20
    n_runs = 5
    run_steps = 20
    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # from the app

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings = SamplingSettings(temperature=1.0)
        self.view: Any = None  # core.sampling.LogitsView  # logits for the next token
        self.prompt: str = ""  # the prompt `view` belongs to
        self.stepper: Any = None  # core.generation.Stepper once the user steps
        self.ab: Any = None  # core.generation.SystemAB when the A/B is on
        self.ab_basis: Basis | None = None
        self.ab_on = False
        self.runs: Any = None  # list of core.generation.Run
        self.runs_basis: Basis | None = None
        self.busy = False
        self.queued: list[tuple] = []  # steps and backs pressed while a worker ran, in order
        self._cancel = None  # threading.Event of the seeded runs in flight
        self.records: list = []  # core.step_record.TokenRecord of the steps the strip shows

    def compose(self) -> ComposeResult:
        yield Static("", id="logits-knobs")
        yield Static("", id="logits-summary")
        yield Static("", id="logits-text")
        yield Static("", id="logits-strip")  # per generated token: p, rank, top feature
        yield TextField("system prompt (A/B)", placeholder="a system prompt to compare against (a: A/B)",
                        id="logits-system")
        with Vertical(id="logits-body"):  # app.tcss puts the runs beside the table on wide screens
            yield FastTable(id="logits-table")
            with Vertical(id="logits-runs-box"):
                yield Static("", id="logits-runs-note")
                yield DataTable(id="logits-runs", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#logits-runs-box").display = False
        self._draw_columns()
        self._draw_knobs()

    # ---- session file and export -----------------------------------------------------------
    def get_state(self) -> dict:
        return {"settings": self.settings.to_dict(), "system": self.query_one("#logits-system", Input).value,
                "ab": self.ab_on}

    def set_state(self, state: dict) -> None:
        self.settings = SamplingSettings.from_dict(state.get("settings", {}))
        self.query_one("#logits-system", Input).value = str(state.get("system", ""))
        if bool(state.get("ab")) != self.ab_on:
            self.ab_on = bool(state.get("ab"))
            self._draw_columns()
        self._draw_knobs()

    def export(self, folder) -> list:
        """The core report of what is shown (distribution, steps, current A/B and seeded runs) as JSON,
        and the shown table (the distribution, or the A/B with its system prompt) as CSV."""
        from spectrascope.core.views.probe import ab_report, distribution_report, runs_report
        from spectrascope.tui.export import ab_rows, distribution_rows, export_files, new_stem

        dist = self._distribution()
        if dist is None:
            return []
        doc = {"prompt": self.prompt, "settings": self.settings.to_dict(),
               **distribution_report(dist, self.piece, self.top_n)}
        if self.stepper is not None:
            doc["steps"] = [{"id": s.token_id, "token": self.piece(s.token_id), "how": s.how}
                            for s in self.stepper.steps]
            from spectrascope.core.analysis.step_record import step_records

            labels = self.session.labels if self.session is not None else {}
            doc["generation"] = [r.to_dict() for r in step_records(  # the strip's report, as `logits --features`
                self.stepper.steps, self.piece, labels, compute_labels=False)]  # labels not known yet: "…"
        if self.ab is not None and not self.ab_basis.stale_note(self._ab_basis()):
            system = self.query_one("#logits-system", Input).value
            doc["system_ab"] = {"system": system, **ab_report(self.ab.comparison, self.piece),
                                "without": distribution_report(self.ab.without, self.piece, self.top_n),
                                "with_system": distribution_report(self.ab.with_system, self.piece, self.top_n)}
        if self.runs is not None and not self.runs_basis.stale_note(self._runs_basis()):
            doc["runs"] = runs_report(self.runs)
        ab = self.ab_on and "system_ab" in doc
        rows = ab_rows(doc["system_ab"]["system"], doc["system_ab"]) if ab else distribution_rows(doc)
        return export_files(new_stem(folder, "logits-ab" if ab else "logits", self.prompt), doc, rows)

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
        if self.ab_on:
            self._start_ab()

    def piece(self, token_id: int) -> str:
        return self.session.piece(token_id) if self.session is not None else str(token_id)

    # ---- knobs (no model call) ------------------------------------------------------------
    def _set(self, **changes) -> None:
        try:
            self.settings = replace(self.settings, **changes)
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        if self.stepper is not None:
            self.stepper.settings = self.settings
        self._draw()

    def action_temperature(self, delta: float) -> None:
        t = round(max(0.0, self.settings.temperature + delta), 2)
        self._set(temperature=0.0 if t < 0.05 else t)

    def action_top_k(self, direction: int) -> None:
        current = self.settings.top_k
        idx = TOP_K_STEPS.index(current) if current in TOP_K_STEPS else 0
        idx = max(0, min(len(TOP_K_STEPS) - 1, idx + direction))
        self._set(top_k=TOP_K_STEPS[idx])

    def action_top_p(self, delta: float) -> None:
        p = round(min(1.0, max(0.05, self.settings.top_p + delta)), 2)
        self._set(top_p=p)

    def action_reseed(self) -> None:
        self._set(seed=self.settings.seed + 1)

    def action_reset_knobs(self) -> None:
        self._set(temperature=1.0, top_k=None, top_p=1.0)

    # ---- rendering ---------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#logits-summary", Static).update(
            Text(one_line(text, 300), style="bold red" if error else "")
        )

    def _draw_knobs(self) -> None:
        busy = "   ⏳ working…" if self.busy else ""
        if self.queued:
            busy += f" (+{len(self.queued)} queued)"
        self.query_one("#logits-knobs", Static).update(Text(knob_text(self.settings) + busy, style="bold"))

    def _draw_columns(self) -> None:
        if self.ab_on:
            cols = [Column("#", 3, True), Column("id", 7, True), Column("token", 18),
                    Column("p without", 9, True), Column("p with", 9, True), Column("rank", 11, True),
                    Column("shift", 8), Column("", 12)]
        else:
            cols = [Column("#", 3, True), Column("id", 7, True), Column("token", 18),
                    Column("logit", 7, True), Column("raw p", 7, True), Column("final p", 7, True),
                    Column("", 16), Column("status", 10)]
        self.query_one("#logits-table", FastTable).set_columns(cols)

    def _distribution(self) -> Any:
        """The next-token distribution under the knobs (cached logits, no model call); None before a result."""
        view = self.stepper.view if self.stepper is not None else self.view
        return view.apply(self.settings) if view is not None else None

    def _runs_basis(self) -> Basis:
        return Basis(self.prompt, f"{knob_text(self.settings)} · {self.n_runs} runs × {self.run_steps} tokens")

    def _ab_basis(self) -> Basis:
        system = self.query_one("#logits-system", Input).value
        return Basis(self.prompt, f"{knob_text(self.settings)} · system '{system}'")

    def _draw(self) -> None:
        """Re-render everything from cached logits: this is the knob-change path."""
        self._draw_knobs()
        self._draw_text()
        self._draw_strip()
        self._draw_runs_note()
        if self.ab_on:
            self._draw_ab()
            return
        dist = self._distribution()
        if dist is None:
            return
        rows = dist.top(self.top_n)
        scale = max([max(r.raw_p, r.final_p) for r in rows], default=1.0) or 1.0
        cells = []
        for rank, row in enumerate(rows, start=1):
            kept = row.excluded_by is None
            dim = "" if kept else "grey50 strike"
            cells.append([
                (str(rank), dim), (str(row.id), dim), (visible(self.piece(row.id)), dim or "bold"),
                (f"{row.logit:.2f}", dim), (f"{row.raw_p:.4f}", dim),
                (f"{row.final_p:.4f}" if kept else "0", dim),
                (bar((row.final_p if kept else row.raw_p) / scale, 16), "green" if kept else "grey39"),
                ("kept", "green") if kept else (f"✗ {row.excluded_by}", "grey50"),
            ])
        self.query_one("#logits-table", FastTable).set_rows(cells, [str(r.id) for r in rows])
        self._say(
            f"survivors {dist.n_survivors:,} of {dist.vocab_size:,} · entropy {abs(dist.entropy_before):.2f}"
            f" → {abs(dist.entropy_after):.2f} nats · excluded tokens stay listed, dimmed, with the knob"
        )

    def _draw_text(self) -> None:
        text = Text()
        if self.stepper is None:
            text.append(one_line(self.prompt[-300:], 300), style="dim")
            text.append("  (s sample · g greedy · enter pick · b back · n runs)", style="italic grey50")
        else:
            text.append(one_line(self.prompt[-200:], 200), style="dim")
            for step in self.stepper.steps:
                style = {"greedy": "bold cyan", "sampled": "bold green", "picked": "bold yellow"}[step.how]
                text.append(visible(self.piece(step.token_id), mark_spaces=False), style=style)
            n = len(self.stepper.steps)
            text.append(f"   [{n} step{'s' if n != 1 else ''}]", style="grey50")
        self.query_one("#logits-text", Static).update(text)

    def _draw_strip(self) -> None:
        """Each generated token's surprise and top feature, from `step_records` (the report
        `logits --features` prints); labels not known yet show "…" until the worker brings them."""
        strip = self.query_one("#logits-strip", Static)
        steps = self.stepper.steps if self.stepper is not None else []
        strip.display = bool(steps)
        if not steps:
            self.records = []
            return
        from spectrascope.core.analysis.step_record import pending_labels, step_records

        labels = self.session.labels if self.session is not None else {}
        earlier = max(0, len(steps) - STRIP_STEPS)
        self.records = [replace(r, step=r.step + earlier)
                        for r in step_records(steps[earlier:], self.piece, labels, top=1, compute_labels=False)]
        width = strip.size.width or self.size.width or 80
        strip.update(step_strip_text(self.records, width, earlier))
        self.fetch_labels(pending_labels(self.records))

    def on_labels_computed(self, message: LabelsComputed) -> None:
        self.labels_done(message)
        if self.label_error:
            self._say(f"labels: {self.label_error}", error=True)
        self._draw_strip()

    def on_resize(self) -> None:
        if self.records:
            self._draw_strip()  # as many tokens as the new width holds

    def _draw_ab(self) -> None:
        table = self.query_one("#logits-table", FastTable)
        if self.ab is None:  # never the plain distribution under the A/B's column headers
            table.set_rows([], [])
            self._say("A/B: computing…" if self.busy else "A/B: enter in the system field compares.")
            return
        comp = self.ab.comparison
        cells = []
        for i, row in enumerate(comp.rows, start=1):
            if row.rank_change is None:
                shift = ("new" if row.new_in_top_n else "dropped" if row.dropped_from_top_n else "–", "yellow")
            elif row.rank_change == 0:
                shift = ("=", "")
            else:
                arrow = "↑" if row.rank_change > 0 else "↓"
                shift = (f"{arrow}{abs(row.rank_change)}", "green" if row.rank_change > 0 else "red")
            flag = "new in top" if row.new_in_top_n else "dropped" if row.dropped_from_top_n else ""
            cells.append([
                (str(i), ""), (str(row.token_id), ""), (visible(self.piece(row.token_id)), "bold"),
                (f"{row.prob_a:.4f}", ""), (f"{row.prob_b:.4f}", ""),
                (f"{row.rank_a or '–'} → {row.rank_b or '–'}", ""), shift, (flag, "yellow"),
            ])
        table.set_rows(cells, [str(r.token_id) for r in comp.rows])
        from spectrascope.core.views.probe import ab_summary  # torch is loaded by now: an A/B was computed

        summary = f"A/B: {ab_summary(comp)} · top {comp.top_n}"  # the CLI's line, from one core function
        stale = self.ab_basis.stale_note(self._ab_basis())
        self.query_one("#logits-summary", Static).update(
            Text(one_line(f"{stale} (ctrl+r recomputes) · {summary}" if stale else summary, 300),
                 style="bold yellow" if stale else ""))

    def _draw_runs_note(self) -> None:
        """What the seeded runs were computed for, or that they are stale."""
        note = self.query_one("#logits-runs-note", Static)
        self.query_one("#logits-runs-box").display = self.runs is not None
        if self.runs is None:
            return
        stale = self.runs_basis.stale_note(self._runs_basis())
        note.update(Text(one_line(f"seeded runs · {stale} · n reruns", 300), style="bold yellow") if stale
                    else Text(one_line(f"seeded runs of '{self.prompt}' · {self.runs_basis.knobs}", 300),
                              style="grey50"))

    # ---- model work (workers) -------------------------------------------------------------------
    def _ready(self) -> bool:
        if self.session is None or self.view is None:
            self._say("Waiting for the model and a prompt.")
            return False
        if self.busy:
            return False
        self.busy = True
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
            return
        if self.busy:
            self._enqueue(("step", settings))
            return
        self._start_step(settings, token_id)

    def _start_step(self, settings, token_id=None) -> None:
        if not self._ready():
            return
        self._step_worker(self.session, Basis(self.prompt), self.stepper, settings, token_id)

    def _enqueue(self, action: tuple) -> None:
        """Keep a key pressed while a step runs (a demo types ahead); a held key stops at QUEUE_MAX."""
        if self.session is None or self.view is None:
            return
        if len(self.queued) >= QUEUE_MAX:
            self._say(f"{QUEUE_MAX} steps are already queued: wait for them.", error=True)
            return
        self.queued.append(action)
        self._draw_knobs()

    def _run_queued(self) -> None:
        while self.queued and not self.busy:
            kind, *args = self.queued.pop(0)
            if kind == "step":
                self._start_step(*args)
            elif self.stepper is not None and self.stepper.steps:  # a back with something to undo
                self._start_back()
        self._draw_knobs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="logits-generate")
    def _step_worker(self, session: SessionAPI, basis: Basis, stepper, settings, token_id) -> None:
        from spectrascope.core.engine.generation import Stepper

        try:
            if stepper is None:
                stepper = Stepper.start(session, basis.prompt, settings)
            stepper.step(token_id=token_id, settings=settings)
            self.post_message(GenerationDone(basis, stepper=stepper))
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.post_message(GenerationDone(basis, error=exc))

    def action_back(self) -> None:
        if self.busy:
            self._enqueue(("back",))
            return
        if self.stepper is None or not self.stepper.steps:
            return
        self._start_back()

    def _start_back(self) -> None:
        self.busy = True
        self._back_worker(Basis(self.prompt), self.stepper)

    @work(thread=True, exclusive=True, exit_on_error=False, group="logits-generate")
    def _back_worker(self, basis: Basis, stepper) -> None:
        try:
            stepper.back()  # usually a cache crop; a rebuild needs the model
            self.post_message(GenerationDone(basis, stepper=stepper))
        except Exception as exc:  # noqa: BLE001
            self.post_message(GenerationDone(basis, error=exc))

    def action_runs(self) -> None:
        if not self._ready():
            return
        import threading

        seeds = [self.settings.seed + i for i in range(self.n_runs)]
        self._cancel = threading.Event()
        self._runs_worker(self.session, self._runs_basis(), self.settings, seeds, self.run_steps, self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="logits-generate")
    def _runs_worker(self, session: SessionAPI, basis: Basis, settings, seeds, steps, cancel) -> None:
        from spectrascope.core.engine.generation import seeded_runs
        from spectrascope.core.engine.session import Cancelled

        try:
            runs = seeded_runs(session, basis.prompt, settings, seeds, steps, cancel)
        except Cancelled:
            return  # the app is quitting
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.post_message(GenerationDone(basis, error=exc))
            return
        self.post_message(GenerationDone(basis, runs=runs))

    def action_toggle_ab(self) -> None:
        self.ab_on = not self.ab_on
        self._draw_columns()
        self._draw()  # never one view's rows under the other's column headers
        if self.ab_on:
            system = self.query_one("#logits-system", Input)
            if not system.value.strip():
                system.focus()
                self._say("Type a system prompt and press enter to compare with and without it.")
                return
            self._start_ab()

    @on(Input.Changed, "#logits-system")
    def _system_changed(self, event: Input.Changed) -> None:
        self.post_message(Pane.Shared("system_prompt", event.value))  # the Anchor pane offers it
        if self.ab_on:
            self._draw_ab()  # the shown A/B may now be for another system prompt

    @on(Input.Submitted, "#logits-system")
    def _system_submitted(self) -> None:
        if not self.ab_on:
            self.ab_on = True
            self._draw_columns()
            self._draw()
        self._start_ab()
        self.query_one("#logits-table", FastTable).focus()

    def _start_ab(self) -> None:
        system = self.query_one("#logits-system", Input).value
        if not system.strip():
            self._say("The system prompt is empty: type one to compare against.", error=True)
            return
        if not self._ready():
            return
        self.ab = None
        self._draw_ab()
        self._ab_worker(self.session, self._ab_basis(), system, self.settings, self.top_n)

    @work(thread=True, exclusive=True, exit_on_error=False, group="logits-generate")
    def _ab_worker(self, session: SessionAPI, basis: Basis, system, settings, top_n) -> None:
        from spectrascope.core.engine.generation import system_prompt_ab

        try:
            self.post_message(GenerationDone(basis, ab=system_prompt_ab(session, basis.prompt, system, settings, top_n)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(GenerationDone(basis, error=exc))

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # seeded runs stop at their next token when the app quits

    def on_generation_done(self, message: GenerationDone) -> None:
        self.busy = False
        if message.error is not None:
            self.queued.clear()  # what was pressed after a failed step would build on it
            self._draw_knobs()
            self._say(describe(message.error), error=True)
            return
        current = message.basis.prompt == self.prompt  # else a newer prompt arrived while it ran
        if message.stepper is not None and current:
            self.stepper = message.stepper
            self.post_message(self.Stepped(self.prompt, self.stepper))  # the Spectrum follows the generation
        if message.ab is not None and current:
            self.ab, self.ab_basis = message.ab, message.basis
        if message.runs is not None:
            self.runs, self.runs_basis = message.runs, message.basis
            self._draw_runs(message.runs)
        self._draw()
        self._run_queued()
        if not self.busy and self.ab_on and self.ab is None and self.query_one("#logits-system", Input).value.strip():
            self._start_ab()  # a new prompt came while this pane was busy

    def _draw_runs(self, runs) -> None:
        table = self.query_one("#logits-runs", DataTable)
        self.query_one("#logits-runs-box").display = True
        table.clear(columns=True)
        table.add_columns("seed", "diverges at", "continuation")
        for run in runs:
            where = "—" if run.diverges_at is None else f"step {run.diverges_at}"
            table.add_row(str(run.seed), where, Text(one_line(run.text, 160)))

