"""What every pane shares: the session binding, background jobs, staleness, export and save/restore.

A pane is a view of one core report (`core/views/<view>.py`): it keeps `compose`, how it draws its
report and its own keys; this base owns the rest, written once:

- **jobs**: `run_job(name, fn, *args)` runs `fn(*args, cancel=…, progress=…)` in a thread worker.
  Each job name has its own run id and cancel event: a newer run of the same job cancels the older
  one, and a result, error or progress line from a run that is no longer the newest is dropped. The
  outcome comes back on the UI thread as `job_done(name, value)` / `job_failed(name, error)` /
  `job_progress(name, text, fraction)`; workers never touch widgets. `x` (`action_cancel`) and
  unmounting cancel every running job.
- **state**: `get_state`/`set_state` are the pane's Spec as a dict (the session-file section), and
  `get_results`/`set_results` what it shows (its reports, kept or recomputed on restore);
  `export` writes the pane's report (`export_doc`) as JSON, plus CSV rows where the pane has a table.
- **on screen**: `is_on_screen` for panes whose work costs a forward only worth doing when shown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from spectrascope.core.text import one_line

if TYPE_CHECKING:
    from pathlib import Path

    from spectrascope.core.engine.interface import SessionAPI


@dataclass
class _Job:
    run_id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    running: bool = False


class Pane(Vertical):
    """The base of every pane (see the module docstring); subclasses set the class variables."""

    DEFAULT_CLASSES = "pane"
    focus_target: ClassVar[str] = ""  # the widget the keyboard goes to when the pane shows
    export_kind: ClassVar[str] = ""  # the export file's PANE part (spectrascope-PANE-WHAT-...); "" = the pane's id
    status_id: ClassVar[str] = ""  # the Static the pane's one-line messages go to (`_say`)
    status_style: ClassVar[str] = ""  # their style when they are not errors

    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # from the app

    @dataclass
    class JobProgress(Message, bubble=False):
        job: str
        run_id: int
        text: str
        fraction: float | None

        def can_replace(self, message: Message) -> bool:  # only the newest progress matters
            return isinstance(message, Pane.JobProgress) and message.job == self.job

    @dataclass
    class JobDone(Message, bubble=False):
        job: str
        run_id: int
        value: Any = None
        error: BaseException | None = None
        cancelled: bool = False

    # Messages up to the app (they bubble); the app hands what they carry to the panes that want it.
    @dataclass
    class ShowScreen(Message):
        """Push this screen (a feature card, a token view) over the app."""

        screen: Any

    @dataclass
    class Shared(Message):
        """A value other panes read: the app sets its reactive `name` (the panes that want it bind to it)."""

        name: str  # "pairing_selection", "system_prompt"
        value: Any

    @dataclass
    class Open(Message):
        """Show the pane `name` (a pane that was just handed work from another, say)."""

        name: str

    @dataclass
    class Stepped(Message):
        """The Logits pane's generation moved (a step or a step back) on `prompt`."""

        prompt: str
        stepper: Any  # core.engine.generation.Stepper

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._jobs: dict[str, _Job] = {}

    # ---- jobs ------------------------------------------------------------------------------------
    def run_job(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args, cancel=event, progress=callback)` off the UI thread as job `name`."""
        job = self._jobs.setdefault(name, _Job())
        job.cancel.set()  # an older run of this job stops at its next check; its outcome is dropped
        job.run_id += 1
        job.cancel = threading.Event()
        job.running = True
        run_id, cancel = job.run_id, job.cancel

        def progress(text: str, fraction: float | None = None) -> None:
            self.post_message(Pane.JobProgress(name, run_id, text, fraction))  # thread-safe

        def body() -> None:
            from spectrascope.core.engine.values import Cancelled

            try:
                value = fn(*args, cancel=cancel, progress=progress)
            except Cancelled:
                self.post_message(Pane.JobDone(name, run_id, cancelled=True))
                return
            except Exception as exc:  # noqa: BLE001 - shown by the pane; the app keeps running
                self.post_message(Pane.JobDone(name, run_id, error=exc))
                return
            self.post_message(Pane.JobDone(name, run_id, value))

        self.run_worker(body, thread=True, exit_on_error=False, group=f"{self.id}-{name}")

    def job_running(self, name: str | None = None) -> bool:
        """Is job `name` (any job, for None) running?"""
        return any(j.running for n, j in self._jobs.items() if name in (None, n))

    def cancel_jobs(self, *names: str) -> bool:
        """Cancel the named running jobs (all, when none are named); True if one was running."""
        hit = False
        for name, job in self._jobs.items():
            if job.running and (not names or name in names):
                job.cancel.set()
                hit = True
        return hit

    def on_pane_job_progress(self, message: Pane.JobProgress) -> None:
        job = self._jobs.get(message.job)
        if job is not None and job.run_id == message.run_id and job.running:
            self.job_progress(message.job, message.text, message.fraction)

    def on_pane_job_done(self, message: Pane.JobDone) -> None:
        job = self._jobs.get(message.job)
        if job is None or job.run_id != message.run_id:
            return  # a newer run of this job is on its way
        job.running = False
        if message.cancelled:
            self.job_cancelled(message.job)
        elif message.error is not None:
            self.job_failed(message.job, message.error)
        else:
            self.job_done(message.job, message.value)

    def job_done(self, name: str, value: Any) -> None:
        """A job's value, on the UI thread."""

    def job_failed(self, name: str, error: BaseException) -> None:
        """A job's error, on the UI thread (the pane shows it; nothing is raised)."""
        self.notify(f"{self.pane_title}: {error}", severity="error")

    def job_cancelled(self, name: str) -> None:
        """A job stopped at the user's request."""

    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        """A progress line from a running job."""

    def action_cancel(self) -> None:
        self.cancel_jobs()

    def on_unmount(self) -> None:
        self.cancel_jobs()  # long runs stop at their next check when the app quits

    @property
    def pane_title(self) -> str:
        """The pane's title, from the registry (tui/panes/__init__.py) by its id."""
        from spectrascope.tui.panes import PANES

        return next((p.title for p in PANES if p.name == self.id), str(self.id).title())

    def _say(self, text: str, error: bool | str = False) -> None:
        """One line in the pane's status: an error in bold red (a str is a style of its own)."""
        style = error if isinstance(error, str) else "bold red" if error else ""
        self.query_one(self.status_id, Static).update(Text(one_line(text, 300), style=style or self.status_style))

    # ---- where the pane stands -------------------------------------------------------------------
    @property
    def is_on_screen(self) -> bool:
        # An inactive tab's pane (or an ancestor) has display off; no need to ask the app.
        return self.is_mounted and all(node.display for node in self.ancestors_with_self if hasattr(node, "display"))

    # ---- inputs from the app (attributes down) ----------------------------------------------------
    def show_result(self, result: Any) -> None:
        """A new prompt result (core.engine.values.Result); panes that follow the prompt override it."""

    def shown(self) -> None:
        """The pane's tab was just selected; panes whose work waits until they are seen override it."""

    def companions(self, prompt: str) -> tuple:
        """Texts the pane will ask for on every new `prompt` (core.engine.values.Request, logits only):
        the app's run extends them in the prompt's own forward (the A/B's variants)."""
        return ()

    def show_generation(self, result: Any, stepper: Any) -> None:
        """The Logits pane's generation of `result`'s prompt moved; the Spectrum follows it."""

    # ---- session file and export ----------------------------------------------------------------------
    def get_state(self) -> dict:
        """The pane's settings (its Spec) as a session-file section."""
        return {}

    def set_state(self, state: dict) -> None:
        """Apply a session-file section; a key it lacks keeps its default."""

    def get_results(self) -> dict:
        """What the pane shows that took the model to make (its reports, a generation), as a session-file
        section; {} when nothing is shown or what is shown is cheap to recompute from the settings."""
        return {}

    def set_results(self, results: dict) -> str:
        """Show a session file's results again: as saved, or recomputed to the same numbers. Called after
        `set_state`; returns what it did, for the restore note ("" for nothing); a bad field is a ValueError
        naming it, and the pane shows nothing of it."""
        return ""

    def export_doc(self) -> tuple[dict, list[dict] | None, str] | None:
        """(report as JSON-ready dict, CSV rows or None, WHAT for the file name); None: nothing shown yet."""
        return None

    def export(self, folder: Path) -> list[Path]:
        """The shown report as JSON (and the shown table as CSV) in `folder`: ctrl+e."""
        made = self.export_doc()
        if made is None:
            return []
        from spectrascope.tui.export import export_files, new_stem

        doc, rows, what = made
        return export_files(new_stem(folder, self.export_kind or str(self.id), what), doc, rows)
