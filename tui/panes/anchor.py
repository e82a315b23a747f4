"""The Anchor pane (F8): the system prompt in activation space, for the current prompt.

The features a system prompt switches on/off/up/down on the user's tokens and how far the residual
moved (core/anchoring.py, as `spectrascope anchor`), the navigator picture (core/navigator.py, as
`anchor --navigator`), and on `d` the drift experiment (core/drift.py, as `spectrascope drift`, cached
on disk; `x` cancels between turn counts). Like the Layers pane it runs only while on screen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, ProgressBar, Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.plots import blank_figure
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.messages import RunProgress
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.text_field import TextField

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

KIND_STYLE = {"on": "bold green", "up": "green", "off": "bold red", "down": "red"}


@dataclass
class AnchorReady(Message):
    key: tuple[str, str, tuple[str, ...]]  # (prompt, system, navigator systems)
    report: Any = None  # core.anchoring.AnchorReport
    navigator: Any = None  # core.navigator.NavigatorReport
    basis: Any = None  # core.navigator.Basis, kept for the next prompt
    error: BaseException | None = None


class DriftProgress(RunProgress):
    pass


@dataclass
class DriftDone(Message):
    run_id: int
    report: Any = None  # core.drift.DriftReport
    cached: bool = False
    cancelled: bool = False
    error: BaseException | None = None


def split_systems(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


def plot_navigator(nav: Any, width: int, height: int) -> str:
    """The reference cloud, the prompt alone (white) and an arrow to each system prompt's point."""
    with blank_figure(max(20, width), max(8, height)) as plt:
        return _draw_navigator(plt, nav)


def _draw_navigator(plt: Any, nav: Any) -> str:
    plt.scatter([p[0] for p in nav.reference], [p[1] for p in nav.reference], marker="dot", color="gray",
                label="reference prompts")
    alone = nav.points[0]
    colors = ["cyan", "magenta", "yellow", "green", "orange", "blue"]
    for i, pt in enumerate(nav.points[1:]):
        color = colors[i % len(colors)]
        plt.plot([alone.x, pt.x], [alone.y, pt.y], color=color, marker="braille")
        plt.scatter([pt.x], [pt.y], marker="●", color=color, label=f"{i + 1}: {one_line(pt.system, 24)}")
    plt.scatter([alone.x], [alone.y], marker="○", color="white", label="no system prompt")
    plt.title(f"navigator: last token on PC1 ({nav.explained[0]:.0%}) × PC2 ({nav.explained[1]:.0%})")
    return plt.build()


def plot_drift(rep: Any, width: int, height: int) -> str:
    """KL, attention share and the target's rank vs context tokens, plain and restated; halving marked."""
    with blank_figure(max(30, width), max(8, height)) as plt:
        return _draw_drift(plt, rep)


def _draw_drift(plt: Any, rep: Any) -> str:
    plt.subplots(1, 3)
    series = (("KL", lambda p: p.kl), ("attention → system", lambda p: p.attention_share),
              (f"rank of {visible(rep.target[1], 10)}", lambda p: p.target_rank))
    half = next((p.tokens for p in rep.points if p.turns == rep.halving_turns), None)
    for col, (title, value) in enumerate(series, start=1):
        plt.subplot(1, col)
        plt.theme("clear")
        plt.plot([p.tokens for p in rep.points], [value(p) for p in rep.points], label="plain", color="cyan",
                 marker="hd")
        plt.plot([p.tokens for p in rep.restated], [value(p) for p in rep.restated], label="restated",
                 color="yellow", marker="hd")
        if half is not None:
            plt.vline(half, "red")
        plt.title(title + (" (red: halves)" if col == 1 and half is not None else ""))
        plt.xlabel("context tokens")
    return plt.build()


class AnchorPane(Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#anchor-table"
    pane_title = "Anchor"
    BINDINGS = [
        Binding("e", "edit_system", "Edit system prompt"),
        Binding("d", "drift", "Drift"),
        Binding("x", "cancel", "Cancel"),
    ]
    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # from the app

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
        self.report: Any = None
        self.navigator: Any = None
        self.drift: Any = None
        self.busy = False
        self._basis: Any = None
        self._wanted: tuple | None = None
        self._run_id = 0
        self._cancel: threading.Event | None = None

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

    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#anchor-status", Static).update(Text(one_line(text, 300), style="bold red" if error else
                                                             "grey50"))

    @property
    def system(self) -> str:
        return self.query_one("#anchor-system", Input).value

    # ---- session file and export (app conventions) ------------------------------------------------
    def get_state(self) -> dict:
        return {"system": self.system, "systems": self.query_one("#anchor-systems", Input).value}

    def set_state(self, state: dict) -> None:
        self.query_one("#anchor-system", Input).value = str(state.get("system", ""))
        self.query_one("#anchor-systems", Input).value = str(state.get("systems", ""))

    def export(self, folder) -> list:
        """The shown reports as JSON (ctrl+e): `anchor --navigator --json` and `drift --json`."""
        if self.report is None and self.drift is None:
            return []
        from spectrascope.tui.export import export_files, new_stem

        doc = {"system": self.system,
               "anchor": self.report.to_dict() if self.report else None,
               "navigator": self.navigator.to_dict() if self.navigator else None,
               "drift": self.drift.to_dict() if self.drift else None}
        return export_files(new_stem(folder, "anchor", self.system), doc)

    # ---- inputs ---------------------------------------------------------------------------------
    def offer_system(self, text: str) -> None:
        """The Logits A/B's system prompt, taken when this pane's own field is still empty."""
        if text.strip() and not self.system.strip():
            self.query_one("#anchor-system", Input).value = text

    def show_result(self, result) -> None:
        self.result = result
        if self.is_on_screen:
            self.refresh_anchor()

    @property
    def is_on_screen(self) -> bool:
        return self.is_mounted and all(node.display for node in self.ancestors_with_self if hasattr(node, "display"))

    @on(Input.Submitted, "#anchor-system, #anchor-systems")
    def _submitted(self) -> None:
        self.refresh_anchor()
        self.query_one("#anchor-table", FastTable).focus()

    system_prompt: reactive[str] = reactive("", init=False, repaint=False)  # the Logits A/B's, from the app

    def shown(self) -> None:
        self.offer_system(self.system_prompt)  # the A/B's, if this pane's own is empty
        self.refresh_anchor()  # two runs and the navigator: only when on screen

    def refresh_anchor(self) -> None:
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
        self._anchor(self.session, key, self._basis)

    @work(thread=True, exclusive=True, exit_on_error=False, group="anchor")
    def _anchor(self, session: SessionAPI, key: tuple, basis: Any) -> None:
        from spectrascope.core.analysis.anchoring import anchor_report
        from spectrascope.core.analysis.navigator import navigator, reference_basis

        prompt, system, systems = key
        try:
            report = anchor_report(session, prompt, system)
            if basis is None or basis.model != session.model.spec.name or basis.hook != session.sae_hook(
                    next(iter(session.saes))):
                basis = reference_basis(session)  # once per model and SAE layer
            nav = navigator(session, prompt, [system, *systems], basis)
        except Exception as exc:  # noqa: BLE001 - shown in the header; the pane keeps running
            self.post_message(AnchorReady(key, error=exc))
            return
        self.post_message(AnchorReady(key, report, nav, basis))

    def on_anchor_ready(self, message: AnchorReady) -> None:
        if message.key != self._wanted:
            return  # a newer prompt or system prompt was asked for
        header = self.query_one("#anchor-header", Static)
        if message.error is not None:
            self.report = self.navigator = None
            header.update(Text(one_line(describe(message.error), 300), style="bold red"))
            return
        self.report, self.navigator, self._basis = message.report, message.navigator, message.basis
        self._draw_report()
        self._draw_navigator()

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
        if self.drift is None and not self.busy:
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
        if self.session is None or self.result is None:
            self._say("Waiting for the model and a prompt.")
            return
        if self.busy:
            self._say("Drift is already running: x cancels.")
            return
        if not self.system.strip():
            self._say("Type a system prompt first: drift measures its effect on the prompt as the question.", True)
            return
        self._run_id += 1
        self._cancel = threading.Event()
        self.busy = True
        bar = self.query_one("#anchor-progress", ProgressBar)
        bar.display = True
        bar.update(progress=0)
        self._say("drift: starting…")
        self._drift(self.session, self._run_id, self._cancel, self.system, self.result.prompt)

    @work(thread=True, exclusive=True, exit_on_error=False, group="anchor-drift")
    def _drift(self, session: SessionAPI, run_id: int, cancel: threading.Event, system: str, question: str) -> None:
        from spectrascope.core.analysis.drift import cached_drift
        from spectrascope.core.engine.session import Cancelled

        def progress(text: str, fraction: float | None) -> None:
            self.post_message(DriftProgress(run_id, text, fraction))

        try:
            rep, cached = cached_drift(session, system, question, cancel=cancel, progress=progress)
        except Cancelled:
            self.post_message(DriftDone(run_id, cancelled=True))
            return
        except Exception as exc:  # noqa: BLE001 - shown inline, the app keeps running
            self.post_message(DriftDone(run_id, error=exc))
            return
        self.post_message(DriftDone(run_id, rep, cached))

    def action_cancel(self) -> None:
        if self._cancel is not None and self.busy:
            self._cancel.set()
            self._say("drift: cancelling after the current turn count…")

    def on_drift_progress(self, message: DriftProgress) -> None:
        if message.run_id != self._run_id:
            return
        if message.fraction is not None:
            self.query_one("#anchor-progress", ProgressBar).update(progress=message.fraction)
        self._say(f"drift: {message.text}")

    def on_drift_done(self, message: DriftDone) -> None:
        if message.run_id != self._run_id:
            return
        self.busy = False
        self.query_one("#anchor-progress", ProgressBar).display = False
        if message.cancelled:
            self._say("Drift cancelled; the previous curves (if any) are still shown.")
            return
        if message.error is not None:
            self._say(describe(message.error), error=True)
            return
        self.drift = rep = message.report
        half = rep.halving_turns if rep.halving_turns is not None else f"> {rep.points[-1].turns}"
        self._say(f"drift{' (cached)' if message.cached else ''}: KL {rep.points[0].kl:.3f} → {rep.points[-1].kl:.3f} "
                  f"over {rep.points[-1].tokens} tokens, halves at {half} turns (red line) · target "
                  f"{visible(rep.target[1])} · {len(rep.sliding_layers)} sliding-window layers")
        self._draw_drift()

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
