"""`spectrascope --demo SCRIPT`: replay prompts and keys with pauses and captions, for a talk.

A script is a text file, one step a line (blank lines and lines starting with # are ignored;
the notes after # below explain each step and are not part of a script):

    caption Tokens: the pieces the model reads   # a caption bar over the panes ("caption" alone clears it)
    type The capital of France is      # set the prompt
    field #logits-system You are a pirate.       # set a text field and apply it (as enter would)
    pane spectrum                      # logits | spectrum | pairing | steering
    focus #spectrum-table              # a widget, by id
    key right                          # any Textual key name; several: key t t t
    wait-result                        # until the model has answered the prompt
    wait-pane pairing                  # until the Pairing (or Steering) pane has finished its run
    pause 1.5                          # seconds; ctrl+n skips the rest of it
    hold                               # until the presenter presses ctrl+n
    expect top " the"                  # what the caption above says is on screen (tui/demo_checks.py)
    end                                # the end marker: a final caption; the app is the presenter's again

A caption's `expect` lines are checked at its next pause or hold (or the next caption, or the end): the
moment the audience reads it. A check waits for the model's work under way to land, then a false one is
never silent: the caption is marked in red with what the screen shows, a notification names the script
line, the end line counts them, and `app.demo_failures` lists them (tests/integration/test_demo_plays.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from spectrascope.tui.demo_checks import Expect, check, parse_expect

VERBS = {"type", "pane", "key", "pause", "wait-result", "focus", "caption", "field", "wait-pane", "hold", "end",
         "expect"}
END_CAPTION = "— end of the demo: the app is yours (? lists every key) —"
SETTLE_S = 30.0  # the longest a check waits for the app's work under way (an A/B, a step) to land


@dataclass(frozen=True)
class DemoStep:
    verb: str
    arg: str
    line: int


@dataclass(frozen=True)
class DemoFailure:
    """An `expect` line that did not hold when its caption showed."""

    line: int
    caption: str
    expect: str
    shown: str  # what the screen showed instead

    def __str__(self) -> str:
        return f"line {self.line}: {self.expect} — on screen: {self.shown} (caption: {self.caption!r})"


def parse_demo(text: str) -> list[DemoStep]:
    steps, captioned = [], False
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, arg = line.partition(" ")
        if verb not in VERBS:
            raise ValueError(f"Demo line {n}: unknown step {verb!r} (use one of {', '.join(sorted(VERBS))}).")
        if verb == "pause":
            try:
                if float(arg) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"Demo line {n}: pause needs a number of seconds, got {arg!r}.") from None
        if verb == "wait-pane" and arg not in ("pairing", "steering"):
            raise ValueError(f"Demo line {n}: wait-pane waits for pairing or steering, not {arg!r}.")
        if verb == "field" and not (arg.startswith("#") and " " in arg):
            raise ValueError(f"Demo line {n}: field needs a widget id and the text, e.g. field #logits-system Hi.")
        if verb == "expect":
            if not captioned:
                raise ValueError(f"Demo line {n}: expect checks what a caption says: put it under a caption.")
            try:
                parse_expect(arg)
            except ValueError as exc:
                raise ValueError(f"Demo line {n}: {exc}") from None
        captioned = captioned or verb == "caption" and bool(arg)
        steps.append(DemoStep(verb, arg, n))
    return steps


def load_demo(path: str | Path) -> list[DemoStep]:
    try:
        return parse_demo(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"Cannot read demo script {path}: {exc}") from None


async def play(app, steps: list[DemoStep], pause_scale: float = 1.0,
               on_screen: Callable[[int, str], Awaitable[None]] | None = None) -> list[DemoFailure]:
    """Run the steps against a live app (as if typed), check each caption's expectations, then leave the
    app to the presenter; returns the expectations that failed (also appended to `app.demo_failures`).

    `app.demo_next` (an asyncio.Event the app sets on ctrl+n) ends a pause or a hold early. `on_screen(i,
    caption)`, when given, is awaited once per caption at its checkpoint, after the checks (screenshots)."""
    from textual.widgets import Input

    if not hasattr(app, "demo_failures"):
        app.demo_failures = []
    failures: list[DemoFailure] = []
    caption, shots = "", 0
    pending: list[tuple[Expect, int]] = []  # the shown caption's expectations not checked yet
    shot = True  # on_screen was called for the shown caption (none yet)

    async def checkpoint() -> None:
        nonlocal pending, shot, shots
        if pending:
            failed = await settle(app, pending)
            pending = []
            if failed:
                _report(app, caption, failed, failures)
        if not shot:
            shot, shots = True, shots + 1
            if on_screen is not None:
                await on_screen(shots, caption)

    for step in steps:
        if step.verb in ("caption", "pause", "hold", "end"):
            await checkpoint()
        if step.verb == "expect":
            pending.append((parse_expect(step.arg), step.line))
        elif step.verb == "type":
            prompt = app.query_one("#prompt", Input)
            prompt.value = step.arg
            app.schedule_run(immediate=True)
        elif step.verb == "caption":
            app.show_caption(step.arg)
            caption, shot = step.arg, not step.arg
        elif step.verb == "field":
            selector, _, text = step.arg.partition(" ")
            field = app.query_one(selector, Input)
            field.value = text
            await field.action_submit()
        elif step.verb == "pane":
            app.action_show_pane(step.arg)
        elif step.verb == "focus":
            app.query_one(step.arg).focus()
        elif step.verb == "key":
            await app._press_keys(step.arg.split())  # what Textual's Pilot does
        elif step.verb in ("pause", "hold"):
            app.demo_next.clear()
            timeout = float(step.arg) * pause_scale if step.verb == "pause" else None
            try:
                await asyncio.wait_for(app.demo_next.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        elif step.verb == "wait-result":
            await _until(lambda: app.result is not None and app.result.prompt == app.query_one("#prompt", Input).value)
        elif step.verb == "wait-pane":  # the run the last key started: until it has finished or failed
            pane = app.query_one(f"#{step.arg}")
            attr = "result" if step.arg == "pairing" else "report"
            await _until(lambda: pane.busy or getattr(pane, attr, None) is not None, timeout=5.0)
            await _until(lambda: not pane.busy)
        elif step.verb == "end":
            app.show_caption(END_CAPTION)
            caption = END_CAPTION
            bad = len(app.demo_failures)
            app.set_status(f"Demo finished: {bad} expectation{'s' * (bad != 1)} did not hold on screen "
                           "(the notifications say which)." if bad else "Demo finished.", error=bool(bad))
    await checkpoint()
    return failures


async def settle(app, expects: list[tuple[Expect, int]], timeout: float = SETTLE_S) -> list[tuple[Expect, int, str]]:
    """The expectations that do not hold: checked until they all do, or the app has no work under way
    (a forward, a pane's job, a label worker) that could still change the screen, or `timeout`."""
    loop = asyncio.get_running_loop()
    end, idle = loop.time() + timeout, 0
    while True:
        failed = [(e, line, why) for e, line in expects if (why := check(app, e)) is not None]
        idle = idle + 1 if _idle(app) else 0
        if not failed or idle >= 3 or loop.time() > end:  # idle 3 polls: its last messages are handled too
            return failed
        await asyncio.sleep(0.05)


def _idle(app) -> bool:
    from textual.worker import WorkerState

    working = (WorkerState.PENDING, WorkerState.RUNNING)
    if any(w.state in working and w.group != "demo" for w in app.workers):
        return False
    return not any(pane.job_running() for pane in app.panes().values())


def _report(app, caption: str, failed: list[tuple[Expect, int, str]], failures: list[DemoFailure]) -> None:
    """Never silent: the caption marked in red with what is on screen, a notification per failed line."""
    from rich.text import Text
    from textual.widgets import Static

    for expect, line, shown in failed:
        failure = DemoFailure(line, caption, str(expect), shown)
        failures.append(failure)
        app.demo_failures.append(failure)
        app.notify(f"Line {line}: {expect}\nOn screen: {shown}", title="Demo: the caption is not what is shown",
                   severity="error", timeout=20)
    marked = Text(caption, style="bold")
    marked.append("   ✗ on screen: " + "; ".join(shown for _, _, shown in failed), style="bold red")
    box = app.query_one("#caption", Static)
    box.update(marked)
    box.display = True


async def _until(done, timeout: float = 600.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
