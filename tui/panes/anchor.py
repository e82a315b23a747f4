"""The Anchor pane (F8): the system prompt in activation space, for the current prompt.

The features a system prompt switches on/off/up/down on the user's tokens and how far the residual
moved, and the navigator picture (core/views/anchor.py `build`, as `spectrascope anchor --navigator`),
and on `d` the drift experiment (core/analysis/drift.py, as `spectrascope drift`, cached on disk; `x`
cancels between turn counts). Like the Layers pane it runs only while on screen.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Input, ProgressBar, Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.anchor_plots import plot_drift, plot_navigator
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.text_field import TextField

KIND_STYLE = {"on": "bold green", "up": "green", "off": "bold red", "down": "red"}


def split_systems(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


class AnchorPane(Pane):
    focus_target = "#anchor-table"
    status_id = "#anchor-status"
    status_style = "grey50"
    BINDINGS = [
        Binding("e", "edit_system", "Edit system prompt"),
        Binding("d", "drift", "Drift"),
        Binding("x", "cancel", "Cancel"),
    ]
    system_prompt: reactive[str] = reactive("", init=False, repaint=False)  # the Logits A/B's, from the app

    DEFAULT_CSS = """
    AnchorPane { height: 1fr; }
    AnchorPane #anchor-inputs { height: 3; }
    AnchorPane #anchor-system { width: 1fr; }
    AnchorPane #anchor-systems { width: 1fr; }
    AnchorPane #anchor-header { height: auto; }
    AnchorPane #anchor-table { height: 1fr; min-height: 6; }
    AnchorPane #anchor-progress-row { height: 1; }
    AnchorPane #anchor-progress { width: 30; }
    AnchorPane #anchor-plots { height: 1fr; min-height: 10; }
    AnchorPane #anchor-nav { width: 1fr; height: 1fr; }  /* sized by the layout, not by the last plot drawn */
    AnchorPane #anchor-drift { width: 2fr; height: 1fr; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result: Any = None
        self.report: Any = None  # core.analysis.anchoring.AnchorReport of the system prompt
        self.navigator: Any = None  # core.analysis.navigator.NavigatorReport of it and the more ones
        self.drift: Any = None  # core.analysis.drift.DriftReport
        self._plane: Any = None  # the navigator's reference plane, kept for the next prompt
        self._wanted: tuple | None = None  # (prompt, system, more systems) of the newest comparison asked for

    def compose(self) -> ComposeResult:
        with Horizontal(id="anchor-inputs"):
            yield TextField("system prompt", placeholder="a system prompt (enter compares)", id="anchor-system")
            yield TextField("more system prompts, | between", placeholder="for the navigator: A | B | C",
                            id="anchor-systems")
        yield Static("", id="anchor-header")
        yield FastTable(id="anchor-table")
        with Horizontal(id="anchor-progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="anchor-progress")
            yield Static("", id="anchor-status")
        with Horizontal(id="anchor-plots"):
            yield Static("", id="anchor-nav")
            yield Static("", id="anchor-drift")

    def on_mount(self) -> None:
        self.query_one("#anchor-table", FastTable).set_columns([
            Column("SAE", 6), Column("feature", 7, True), Column("", 4), Column("without", 8, True),
            Column("with", 8, True), Column("last token", 17, True), Column("label", 40)])
        self.query_one("#anchor-progress", ProgressBar).display = False
        self._say("e edits the system prompt (enter compares): its features on the user's tokens appear here; "
                  "d runs the drift experiment.")

    def action_edit_system(self) -> None:
        """Into the system-prompt field (Tab from the table wraps to the app's prompt first)."""
        self.query_one("#anchor-system", Input).focus()

    @property
    def system(self) -> str:
        return self.query_one("#anchor-system", Input).value

    # ---- session file and export ------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"system": self.system, "systems": self.query_one("#anchor-systems", Input).value}

    def set_state(self, state: dict) -> None:
        self.query_one("#anchor-system", Input).value = str(state.get("system", ""))
        self.query_one("#anchor-systems", Input).value = str(state.get("systems", ""))

    def get_results(self) -> dict:
        """The drift curves as they are (a run takes tens of seconds); the comparison recomputes when shown."""
        return {"drift": self.drift.to_dict()} if self.drift is not None else {}

    def set_results(self, results: dict) -> str:
        from spectrascope.core.analysis.drift import DriftReport

        if results.get("drift") is None:
            return ""
        drift = DriftReport.from_dict(results["drift"])
        if not drift.points:
            raise ValueError("DriftReport.points: no turn counts")
        self.drift = drift
        self._said_drift("as saved")
        self._draw_drift()
        return "the drift curves as saved"

    def export_doc(self) -> tuple[dict, None, str] | None:
        """The shown reports: `anchor --navigator --json`'s and `drift --json`'s."""
        if self.report is None and self.drift is None:
            return None
        doc = {"system": self.system,
               "anchor": self.report.to_dict() if self.report else None,
               "navigator": self.navigator.to_dict() if self.navigator else None,
               "drift": self.drift.to_dict() if self.drift else None}
        return doc, None, self.system

    # ---- inputs ---------------------------------------------------------------------------------
    def offer_system(self, text: str) -> None:
        """The Logits A/B's system prompt, taken when this pane's own field is still empty."""
        if text.strip() and not self.system.strip():
            self.query_one("#anchor-system", Input).value = text

    def show_result(self, result) -> None:
        self.result = result
        if self.is_on_screen:
            self.refresh_anchor()

    @on(Input.Submitted, "#anchor-system, #anchor-systems")
    def _submitted(self) -> None:
        self.refresh_anchor()
        self.query_one("#anchor-table", FastTable).focus()

    def shown(self) -> None:
        self.offer_system(self.system_prompt)  # the A/B's, if this pane's own is empty
        self.refresh_anchor()  # two runs and the navigator: only when on screen

    def refresh_anchor(self) -> None:
        from spectrascope.core.views.anchor import AnchorSpec, build

        if self.result is None or self.session is None:
            return
        if not self.system.strip():
            self._say("e edits the system prompt; enter compares with and without it.")
            return
        systems = split_systems(self.query_one("#anchor-systems", Input).value)
        key = (self.result.prompt, self.system, systems)
        if self.report is not None and key == self._wanted:
            return
        self._wanted = key
        self.query_one("#anchor-header", Static).update(Text("comparing with and without the system prompt…",
                                                             style="grey50"))
        spec = AnchorSpec(self.result.prompt, (self.system,), navigator=True, navigator_only=systems)
        self.run_job("compare", partial(build, basis=self._plane), self.session, spec)

    def _draw_report(self) -> None:
        rep = self.report
        self.query_one("#anchor-header", Static).update(Text(
            f"system {one_line(rep.system, 50)!r} on the user's {len(rep.shared_tokens)} tokens: residual moved "
            f"|Δx| {rep.resid_shift_last:.1f} at the last token (|x| {rep.resid_norm_last:.1f}, cosine "
            f"{rep.cosine_last:.3f}), {rep.resid_shift_mean:.1f} on average · without/with: summed over those tokens",
            style="bold"))
        cells, keys = [], []
        for role, rows in rep.features.items():
            for r in rows:
                cells.append([(role, "grey62"), (str(r.feature), "bold"), (r.kind, KIND_STYLE[r.kind]),
                              (f"{r.before:.1f}", ""), (f"{r.after:.1f}", ""),
                              (f"{r.before_last:.1f} → {r.after_last:.1f}", ""),
                              (visible(r.label, 60, mark_spaces=False), "")])
                keys.append(f"{role}:{r.feature}")
        self.query_one("#anchor-table", FastTable).set_rows(cells, keys)
        if self.drift is None and not self.job_running("drift"):
            self._say("d runs drift: how this system prompt's effect fades as filler turns push it back.")

    def _plot_size(self, widget_id: str, default: tuple[int, int]) -> tuple[int, int]:
        w = self.query_one(widget_id, Static).size
        return (w.width if w.width >= 20 else default[0]), (w.height if w.height >= 8 else default[1])

    def _draw_navigator(self) -> None:
        if self.navigator is not None:
            self.query_one("#anchor-nav", Static).update(
                Text.from_ansi(plot_navigator(self.navigator, *self._plot_size("#anchor-nav", (50, 14)))))

    def _draw_drift(self) -> None:
        if self.drift is not None:
            self.query_one("#anchor-drift", Static).update(
                Text.from_ansi(plot_drift(self.drift, *self._plot_size("#anchor-drift", (90, 14)))))

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_navigator)
        self.call_after_refresh(self._draw_drift)

    # ---- drift ----------------------------------------------------------------------------------
    def action_drift(self) -> None:
        from spectrascope.core.analysis.drift import cached_drift

        if self.session is None or self.result is None:
            self._say("Waiting for the model and a prompt.")
            return
        if self.job_running("drift"):
            self._say("Drift is already running: x cancels.")
            return
        if not self.system.strip():
            self._say("Type a system prompt first: drift measures its effect on the prompt as the question.", True)
            return
        bar = self.query_one("#anchor-progress", ProgressBar)
        bar.display = True
        bar.update(progress=0)
        self._say("drift: starting…")
        self.run_job("drift", cached_drift, self.session, self.system, self.result.prompt)

    def action_cancel(self) -> None:
        if self.job_running("drift"):
            self._say("drift: cancelling after the current turn count…")
        super().action_cancel()

    # ---- jobs' outcomes ---------------------------------------------------------------------------
    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        if fraction is not None:
            self.query_one("#anchor-progress", ProgressBar).update(progress=fraction)
        self._say(f"drift: {text}")

    def job_cancelled(self, name: str) -> None:
        self.query_one("#anchor-progress", ProgressBar).display = False
        self._say("Drift cancelled; the previous curves (if any) are still shown.")

    def job_failed(self, name: str, error: BaseException) -> None:
        if name == "compare":
            self.report = self.navigator = None
            self.query_one("#anchor-header", Static).update(Text(one_line(describe(error), 300), style="bold red"))
            return
        self.query_one("#anchor-progress", ProgressBar).display = False
        self._say(describe(error), error=True)

    def job_done(self, name: str, value: Any) -> None:
        if name == "compare":
            self.report, self.navigator, self._plane = value.reports[0], value.navigator, value.plane
            self._draw_report()
            self._draw_navigator()
            return
        self.query_one("#anchor-progress", ProgressBar).display = False
        self.drift, cached = value
        self._said_drift("cached" if cached else "")
        self._draw_drift()

    def _said_drift(self, how: str) -> None:
        """The drift line: how KL fades, where it halves, the target (`how`: "cached", "as saved" or "")."""
        rep = self.drift
        half = rep.halving_turns if rep.halving_turns is not None else f"> {rep.points[-1].turns}"
        self._say(f"drift{f' ({how})' if how else ''}: KL {rep.points[0].kl:.3f} → {rep.points[-1].kl:.3f} "
                  f"over {rep.points[-1].tokens} tokens, halves at {half} turn{'s' * (half != 1)} (red line) · target "
                  f"{visible(rep.target[1])} · {len(rep.sliding_layers)} sliding-window layers")
