"""`spectrascope --demo SCRIPT`: replay prompts and keys with pauses, for a talk.

A script is a text file, one step a line (blank lines and # comments ignored):

    type The capital of France is      # set the prompt
    pane spectrum                      # logits | spectrum | pairing | steering
    key right                          # any Textual key name; several: key t t t
    wait-result                        # until the model has answered the prompt
    pause 1.5                          # seconds
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

VERBS = {"type", "pane", "key", "pause", "wait-result", "focus"}


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
        steps.append(DemoStep(verb, arg, n))
    return steps


def load_demo(path: str | Path) -> list[DemoStep]:
    try:
        return parse_demo(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"Cannot read demo script {path}: {exc}") from None


async def play(app, steps: list[DemoStep]) -> None:
    """Run the steps against a live app (as if typed), then leave the app to the presenter."""
    from textual.widgets import Input

    for step in steps:
        if step.verb == "type":
            prompt = app.query_one("#prompt", Input)
            prompt.value = step.arg
            app.schedule_run(immediate=True)
        elif step.verb == "pane":
            app.action_show_pane(step.arg)
        elif step.verb == "focus":
            app.query_one(step.arg).focus()
        elif step.verb == "key":
            await app._press_keys(step.arg.split())  # what Textual's Pilot does
        elif step.verb == "pause":
            await asyncio.sleep(float(step.arg))
        elif step.verb == "wait-result":
            for _ in range(6000):
                if app.result is not None and app.result.prompt == app.query_one("#prompt", Input).value:
                    break
                await asyncio.sleep(0.05)
