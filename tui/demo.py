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
    end                                # the end marker: a final caption; the app is the presenter's again
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

VERBS = {"type", "pane", "key", "pause", "wait-result", "focus", "caption", "field", "wait-pane", "hold", "end"}
END_CAPTION = "— end of the demo: the app is yours (? lists every key) —"


@dataclass(frozen=True)
class DemoStep:
    verb: str
    arg: str
    line: int


def parse_demo(text: str) -> list[DemoStep]:
    steps = []
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
        steps.append(DemoStep(verb, arg, n))
    return steps


def load_demo(path: str | Path) -> list[DemoStep]:
    try:
        return parse_demo(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"Cannot read demo script {path}: {exc}") from None


async def play(app, steps: list[DemoStep], pause_scale: float = 1.0) -> None:
    """Run the steps against a live app (as if typed), then leave the app to the presenter.

    `app.demo_next` (an asyncio.Event the app sets on ctrl+n) ends a pause or a hold early."""
    from textual.widgets import Input

    for step in steps:
        if step.verb == "type":
            prompt = app.query_one("#prompt", Input)
            prompt.value = step.arg
            app.schedule_run(immediate=True)
        elif step.verb == "caption":
            app.show_caption(step.arg)
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
            app.set_status("Demo finished.")


async def _until(done, timeout: float = 600.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
