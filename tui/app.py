"""The Textual app: loads the session in a worker, runs prompts, hands results to the panes.

Data flows one way: keystroke -> debounce -> thread worker -> Session.run ->
ResultReady(run_id) -> panes. A newer prompt cancels the older run and stale
results are dropped, so the screen only ever shows the latest prompt.

Attributes down, messages up: the panes get the session, the prompt as typed and
the Pairing selection through data-bound reactives below; a pane tells the others
something only by a message to the app (Pairing's SelectionChanged).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Header, Input, ProgressBar, Static, TabbedContent, TabPane, Tabs

from spectrascope.core.text import one_line
from spectrascope.tui.errors import describe
from spectrascope.tui.folders import default_output_dir, ready
from spectrascope.tui.messages import LoadProgress, ResultReady, RunFailed, SAESwitched, SessionFailed, SessionReady
from spectrascope.tui.panes import PANES
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.paste import use_inert_paste
from spectrascope.tui.widgets.fitting_footer import FittingFooter
from spectrascope.tui.widgets.text_field import TextField
from spectrascope.tui.widgets.token_strip import TokenStrip

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

SessionFactory = Callable[[Callable[[str, float | None], None]], "SessionAPI"]

DEBOUNCE_S = 0.15


class SpectrascopeApp(App):
    TITLE = "spectrascope"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses may live anywhere
    # Screen classes for app.tcss: 80x24 stacks and gives every table rows; 200x50 spreads out.
    # -narrow: under 120 columns the Pairing pane stacks (side by side, its plots would get ~22 columns).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-medium"), (180, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("slash,ctrl+l", "focus_prompt", "Prompt"),
        Binding("ctrl+r", "rerun", "Rerun"),
        Binding("f1,question_mark", "help", "Help"),
        *(Binding(p.key, f"show_pane('{p.name}')", p.title, show=False) for p in PANES),
        Binding("ctrl+g", "screenshot", "SVG"),
        Binding("ctrl+e", "export", "Export"),
        Binding("ctrl+t", "dismiss_export", "Dismiss the export path", show=False),
        Binding("ctrl+s", "save_session", "Save session"),
        Binding("f9", "toggle_contrast", "High contrast", show=False),
        Binding("ctrl+o", "sae_info", "SAE info", show=False),
        Binding("ctrl+n", "demo_next", "Demo: next", show=False),
        Binding("f7", "pick_sae", "SAEs", show=False),
    ]
    # (title, action, help) for the command palette; every binding above is there too, and every pane's
    # key after them (tui/palette.py; tests/tui/test_palette_complete.py checks both).
    COMMANDS_LIST = [
        ("Help: list every key", "help", "Keys per pane"),
        ("Edit the prompt", "focus_prompt", "/, ^l"),
        *((p.about, f"show_pane('{p.name}')", p.key.upper()) for p in PANES),
        *((title, f"pane_action('{p.name}', '{action}')", key) for p in PANES for title, action, key in p.commands),
        ("Rerun the prompt", "rerun", "ctrl+r"),
        ("Save an SVG screenshot", "screenshot", "ctrl+g"),
        ("Export the current pane's tables (CSV/JSON/Markdown) to the export folder", "export", "ctrl+e"),
        ("Dismiss the export path line", "dismiss_export", "ctrl+t"),
        ("Save the session (every pane's settings and results) to JSON", "save_session", "ctrl+s"),
        ("SAE info: each loaded SAE's width, L0, EV, ΔCE, dead share, training data", "sae_info", "ctrl+o"),
        ("Switch the coarse or fine SAE (a preset, a release/sae_id, a folder)", "pick_sae", "F7"),
        ("Toggle the high-contrast projector theme", "toggle_contrast", "F9"),
        ("Demo: end the current pause or hold (while a demo plays)", "demo_next", "ctrl+n"),
        ("Quit", "quit", "ctrl+q"),
    ]

    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # None until loaded
    prompt: reactive[str] = reactive("", init=False, repaint=False)  # as typed, before the debounce
    pairing_selection: reactive[tuple[tuple[str, int], ...]] = reactive((), init=False, repaint=False)
    system_prompt: reactive[str] = reactive("", init=False, repaint=False)  # the Logits A/B's, for Anchor
    # (pane, role, feature) one pane sends another (Find's keys); every send acts, the same one again too.
    sent_feature: reactive[tuple[str, str, int] | None] = reactive(None, init=False, repaint=False,
                                                                    always_update=True)
    # Hand-offs: set again with the same value (the same row twice), they still reach the pane.
    attribution_ask: reactive[tuple[str, str] | None] = reactive(None, init=False, repaint=False, always_update=True)
    steer_features: reactive[tuple[tuple[str, int, float], ...]] = reactive((), init=False, repaint=False,
                                                                            always_update=True)

    def __init__(self, session_factory: SessionFactory, prompt: str = "", output_dir: str | Path | None = None,
                 restore: dict | None = None, demo: list | None = None, knobs: dict | None = None,
                 demo_pause_scale: float = 1.0, export_dir: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        from spectrascope.tui.contrast import ReadableText
        from spectrascope.tui.theme import CONTRAST_THEME, DEFAULT_THEME

        self.register_theme(DEFAULT_THEME)  # named textual-dark: Textual's own, its faint text raised to 4.5:1
        self.register_theme(CONTRAST_THEME)
        self.stylesheet.set_variables(self.get_css_variables())  # App.__init__ read the builtin one's
        # Every text cell at 4.5:1 or more, fixed Rich colours and uncoloured table cells included.
        self._readable_text = ReadableText(lambda: Color.parse(self.theme_variables["foreground"]))
        self._demo = demo or []
        self._demo_pause_scale = demo_pause_scale  # tests play the talk fast
        self._knobs = knobs or {}
        # Sessions and screenshots; None: the per-user data folder, never the working directory (tui/folders.py).
        self.output_dir = Path(output_dir).expanduser() if output_dir is not None else default_output_dir()
        self.export_dir = export_dir  # None: OUTPUT_DIR/spectrascope-exports (tui/export.py)
        self._restore = restore or {}
        self._session_factory = session_factory
        self.set_reactive(SpectrascopeApp.prompt, prompt)
        self.result: Any = None
        self._run_id = 0
        self._cancel: threading.Event | None = None
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield TextField("prompt", value=self.prompt, placeholder="press / and type a prompt", id="prompt")
        with Horizontal(id="status-bar"):
            yield ProgressBar(total=1.0, show_eta=False, id="load-progress")
            yield Static("", id="status")
        yield Static("", id="export-note")  # the last export's path: stays until ctrl+t, never overwritten by a run
        yield TokenStrip(id="tokens")
        yield Static("", id="caption")  # the demo's caption: what is on screen, for the audience
        with TabbedContent(id="panes"):
            for entry in PANES:
                with TabPane(entry.title, id=f"tab-{entry.name}"):
                    binds = [getattr(SpectrascopeApp, name) for name in ("session", *entry.binds)]
                    yield entry.pane_class()(id=entry.name).data_bind(*binds)
        yield FittingFooter()

    def get_driver_class(self):
        return use_inert_paste(super().get_driver_class())  # a paste never arrives as key presses

    def on_mount(self) -> None:
        # The tab strip would be a focus stop that shows nothing and swallows a key: F2-F5 switch panes.
        self.query_one(TabbedContent).query_one(Tabs).can_focus = False

        if self._knobs:  # the config's [knobs]: the Logits pane's sampling settings
            self.pane("logits").set_state({"settings": self._knobs})
        if self._restore:
            from spectrascope.tui.session_file import apply_session

            self.query_one("#prompt", Input).value = self._restore.get("prompt", "")
            notes: list[str] = []  # what each pane shows again: as saved, or recomputed
            for problem in apply_session(self.panes(), self._restore, notes):
                self.notify(problem, severity="warning", markup=False)  # the file's own text, never markup
            if notes:
                self.notify("Session restored · " + " · ".join(notes), timeout=12, markup=False)
        self.query_one("#caption", Static).display = False
        self.query_one("#export-note", Static).display = False
        self.query_one("#export-note", Static).styles.padding = (0, 2)  # in line with the status above
        if self._demo:
            import asyncio

            from spectrascope.tui.demo import play

            self.demo_next = asyncio.Event()
            self.run_worker(play(self, self._demo, self._demo_pause_scale), group="demo", exit_on_error=False)
        self.sub_title = "loading model…"
        self.set_status("Loading the model in the background; / edits the prompt meanwhile, ? lists every key.")
        self.action_focus_pane()  # keys act on a pane from the start: `?` opens help, never types
        self._load_session()

    # ---- status -------------------------------------------------------------------------
    def set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(one_line(text, max_len=400), style="bold red" if error else ""))

    # ---- loading --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _load_session(self) -> None:
        def progress(text: str, fraction: float | None) -> None:
            self.post_message(LoadProgress(text, fraction))

        try:
            session = self._session_factory(progress)
        except Exception as exc:  # noqa: BLE001 - every failure is shown, the app keeps running
            self.post_message(SessionFailed(exc))
            return
        self.post_message(SessionReady(session))

    def on_load_progress(self, message: LoadProgress) -> None:
        if message.fraction is not None:
            self.query_one("#load-progress", ProgressBar).update(progress=message.fraction)
        self.set_status(message.text)

    def on_session_ready(self, message: SessionReady) -> None:
        self.session = message.session
        self.query_one("#load-progress", ProgressBar).display = False
        self.sub_title = message.session.describe()
        self.set_status(f"Ready: {message.session.describe()}")
        self.schedule_run(immediate=True)

    def on_session_failed(self, message: SessionFailed) -> None:
        self.query_one("#load-progress", ProgressBar).display = False
        self.sub_title = "no model"
        self.set_status(describe(message.error), error=True)

    # ---- running prompts ----------------------------------------------------------------
    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        self.prompt = event.value
        self.schedule_run()

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self) -> None:
        self.schedule_run(immediate=True)

    def action_rerun(self) -> None:
        self.schedule_run(immediate=True)

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def schedule_run(self, immediate: bool = False) -> None:
        """Run the prompt after a short pause in typing (or now)."""
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        if immediate:
            self._start_run()
        else:
            self._debounce = self.set_timer(DEBOUNCE_S, self._start_run)

    def _start_run(self) -> None:
        if self.session is None:
            return
        prompt = self.query_one("#prompt", Input).value
        if prompt == "":
            self.set_status("Press / and type a prompt to see what the model predicts next.")
            return
        if self._cancel is not None:
            self._cancel.set()  # the running forward stops at its next block
        self._run_id += 1
        self._cancel = threading.Event()
        from spectrascope.core.engine.session import Request

        companions = tuple(c for pane in self.panes().values() for c in pane.companions(prompt))
        self._forward(self.session, Request(prompt, run_id=self._run_id, companions=companions), self._cancel)

    @work(thread=True, exit_on_error=False, group="forward")
    def _forward(self, session: SessionAPI, request: Any, cancel: threading.Event) -> None:
        from spectrascope.core.engine.session import Cancelled

        try:
            result = session.run(request, cancel)
        except Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - shown inline; the app keeps running
            self.post_message(RunFailed(request.run_id, exc))
            return
        self.post_message(ResultReady(result))

    def on_result_ready(self, message: ResultReady) -> None:
        result = message.result
        if result.run_id != self._run_id:
            return  # a newer prompt is on its way; never show a stale result
        self.result = result
        self.query_one("#tokens", TokenStrip).show([t.text for t in result.tokens])
        for pane in self.panes().values():
            pane.show_result(result)
        note = f"{len(result.tokens)} tokens · {result.seconds * 1000:.0f} ms"
        if result.truncated:
            note += f" · the first {result.truncated} tokens were cut to fit the context"
        self.set_status(note)

    def on_run_failed(self, message: RunFailed) -> None:
        if message.run_id == self._run_id:
            self.set_status(describe(message.error), error=True)

    # ---- what one pane tells the others (messages up, attributes down) ------------------------------
    def panes(self) -> dict[str, Pane]:
        """The panes by name, in registry order."""
        return {entry.name: self.pane(entry.name) for entry in PANES}

    def pane(self, name: str) -> Pane:
        return self.query_one(f"#{name}", Pane)

    @on(Pane.ShowScreen)  # decorated: a pane's own subclass of the message lands here too
    def _show_screen(self, message: Pane.ShowScreen) -> None:
        self.push_screen(message.screen)

    @on(Pane.Shared)
    def _shared(self, message: Pane.Shared) -> None:
        """A pane's value the others read (the Pairing selection, the A/B's system prompt) becomes the
        app's reactive of that name, which the panes that want it are data-bound to."""
        setattr(self, message.name, message.value)

    def watch_sent_feature(self, sent: tuple[str, str, int] | None) -> None:
        """Show the pane a feature was sent to, which takes it (tui/send_feature.py says how)."""
        from spectrascope.tui.send_feature import send_feature

        if sent is None or self.session is None:
            return
        to, role, feature = sent
        self.action_show_pane(to)
        try:
            self.set_status(send_feature(self.pane(to), role, feature, self.session))
        except Exception as exc:  # noqa: BLE001 - a pane that cannot take it says why; the app keeps running
            self.set_status(describe(exc), error=True)

    @on(Pane.Open)
    def _open(self, message: Pane.Open) -> None:
        self.action_show_pane(message.name)

    @on(Pane.Stepped)
    def _stepped(self, message: Pane.Stepped) -> None:
        if self.result is not None and message.prompt == self.result.prompt:  # else a newer prompt shows
            for pane in self.panes().values():
                pane.show_generation(self.result, message.stepper)

    # ---- navigation, help, export --------------------------------------------------------------
    def get_system_commands(self, screen):
        from textual.app import SystemCommand

        for command in super().get_system_commands(screen):  # Textual's own, less the two listed below too
            if command.title not in ("Quit", "Screenshot"):
                yield command

        from functools import partial

        from spectrascope.tui.palette import pane_commands

        for title, action, help_text in self.COMMANDS_LIST:
            yield SystemCommand(title, help_text, partial(self.run_action, action))
        for command in pane_commands(PANES):  # every other key of every pane, from its BINDINGS
            yield SystemCommand(command.title, command.help, partial(self.action_pane_action, command.pane,
                                                                     command.action))

    def action_help(self) -> None:
        from spectrascope.tui.help import HelpScreen, with_enter

        sections = [("Everywhere", with_enter("Everywhere", self, self.BINDINGS))]
        for pane in self.panes().values():
            sections.append((pane.pane_title, with_enter(pane.pane_title, pane, pane.BINDINGS)))
        self.push_screen(HelpScreen(sections))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Panes whose work costs forwards (the lens, the anchor) run it only when they are seen.
        self.pane(str(event.pane.id).removeprefix("tab-")).shown()

    def show_caption(self, text: str) -> None:
        caption = self.query_one("#caption", Static)
        caption.update(Text(text, style="bold"))
        caption.display = bool(text)

    def action_demo_next(self) -> None:
        """The presenter's key during a demo: end the current pause or hold now."""
        if self._demo:
            self.demo_next.set()

    def action_pick_sae(self) -> None:
        from spectrascope.tui.sae_picker import SAEPickerScreen

        session = self.session
        if session is None:
            self.set_status("The model is still loading.")
            return
        loaded = {role: (spec.label if spec is not None else "attached directly")
                  for role, spec in getattr(session, "sae_specs", {}).items()}
        self.push_screen(SAEPickerScreen(loaded), callback=self._sae_chosen)

    def _sae_chosen(self, choice) -> None:
        if choice is not None:
            role, spec = choice
            self.set_status(f"Loading the {role} SAE {spec.label}…")
            self._switch_sae(self.session, role, spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sae")
    def _switch_sae(self, session, role: str, spec) -> None:
        session.sae_errors.pop(role, None)
        session.load_saes([(role, spec)])  # failures land in sae_errors; the old SAE stays attached
        self.post_message(SAESwitched(role, spec.label, session.sae_errors.get(role)))

    def on_saeswitched(self, message: SAESwitched) -> None:  # Textual names the handler so
        if message.error:
            self.set_status(f"{message.role} SAE not switched: {message.error}", error=True)
            return
        self.set_status(f"{message.role} SAE is now {message.label}; Pairing needs r again for it.")
        self.schedule_run(immediate=True)

    def action_sae_info(self) -> None:
        from spectrascope.core.analysis.sae_info import sae_info
        from spectrascope.tui.sae_info import SAEInfoScreen

        session = self.session
        if session is None:
            self.set_status("The model is still loading.")
            return
        self.push_screen(SAEInfoScreen([sae_info(session, role) for role in session.saes],
                                       dict(getattr(session, "sae_errors", {}))))

    def action_show_pane(self, name: str) -> None:
        tabs = self.query_one(TabbedContent)
        if not tabs.query(f"#tab-{name}"):
            return
        tabs.active = f"tab-{name}"
        self.action_focus_pane()

    def action_focus_pane(self) -> None:
        """The keyboard to the showing pane (Esc in any text field comes here).

        Focus moves now, not after a refresh: Textual blurs a focused widget whose tab
        is hidden and hands focus to a field beside it, and focusing that field would
        switch the tabs back (a key typed then lands in that field).
        """
        target = self.current_pane().focus_target
        if target:
            widget = self.query_one(target)
            widget.screen.set_focus(widget)

    def on_paste(self, event: events.Paste) -> None:
        # Only a paste that no text field took gets here: it is dropped, never read as keys.
        self.set_status("Paste ignored: only a text field takes pasted text (/ for the prompt).")

    def action_pane_action(self, pane: str, action: str) -> None:
        """Run a pane's own action from anywhere (the command palette)."""
        self.action_show_pane(pane)
        self.call_after_refresh(lambda: self.query_one(f"#{pane}").run_action(action))

    def current_pane(self) -> Pane:
        return self.pane(self.query_one(TabbedContent).active.removeprefix("tab-"))

    def saved(self, what: str, path: str | Path) -> None:
        """Say where a file went, in full: on the status line and in a notification."""
        from rich.markup import escape

        self.set_status(f"Saved {what} {path}")
        self.notify(escape(f"Saved {what} {path}"), timeout=6)

    def action_screenshot(self) -> None:
        pane = self.query_one(TabbedContent).active.removeprefix("tab-")
        try:
            path = self.save_screenshot(filename=f"spectrascope-{pane}-{time.strftime('%Y%m%d-%H%M%S')}.svg",
                                        path=str(ready(self.output_dir)))
        except OSError as exc:
            self.set_status(describe(exc), error=True)
            return
        self.saved("screenshot", path)

    def action_export(self) -> None:
        from rich.markup import escape

        from spectrascope.tui.export import export_folder, export_note

        folder = export_folder(self.output_dir, self.export_dir)
        try:
            paths = self.current_pane().export(folder)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.set_status(describe(exc), error=True)
            return
        if not paths:
            self.set_status("Nothing to export yet.")
            return
        note = self.query_one("#export-note", Static)
        note.update(Text(f"{export_note(paths)} · ctrl+t dismisses", style="bold green"))
        note.display = True
        self.set_status(f"Exported {len(paths)} file{'s' * (len(paths) != 1)}: the path is on the line below.")
        self.notify(escape(export_note(paths)), timeout=6)

    def action_dismiss_export(self) -> None:
        self.query_one("#export-note", Static).display = False

    def action_toggle_contrast(self) -> None:
        projector = self.theme != "spectrascope-contrast"
        self.theme = "spectrascope-contrast" if projector else "textual-dark"
        self.notify("Projector theme on: high contrast, black and white (F9: the default theme)" if projector
                    else "Default theme on (F9: the high-contrast projector theme)", timeout=3)

    def get_line_filters(self):
        return [*super().get_line_filters(), self._readable_text]

    def action_save_session(self) -> None:
        from spectrascope.tui.session_file import save_session

        model = self.session.model.spec.name if self.session is not None else None
        try:
            path = ready(self.output_dir) / f"spectrascope-session-{time.strftime('%Y%m%d-%H%M%S')}.json"
            path = save_session(path, self.query_one("#prompt", Input).value, model, self.panes())
        except Exception as exc:  # noqa: BLE001
            self.set_status(describe(exc), error=True)
            return
        self.saved("session", path)

    async def action_quit(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self.exit()
