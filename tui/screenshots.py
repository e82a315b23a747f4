"""Regenerate the README's SVG screenshots on the embedded default (real model, real SAEs).

    .venv/bin/python -m spectrascope.tui.screenshots [--out assets/screenshots] [--size 80x24] [--only anchor]
    .venv/bin/python -m spectrascope.tui.screenshots --demo assets/demos/france.demo --out DIR   # each caption's screen
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

def _pairing_done(app) -> bool:
    return app.current_pane().result is not None


def _lens_done(app) -> bool:
    return app.current_pane().report is not None


def _anchor_done(app) -> bool:
    pane = app.current_pane()
    return (pane.report is not None and pane.navigator is not None and pane.drift is not None
            and not pane.job_running("drift"))


ANCHOR_SYSTEM = "Answer only in French."


SHOTS = [
    # (file, pane, prompt, system prompt, keys after the result arrives, ready to shoot once this holds or None).
    # Showing a pane focuses its `focus_target`, so the keys go to the pane's table.
    ("logits.svg", "logits", "The capital of France is", "", ["t", "t", "t", "K", "K", "K", "K", "K", "K", "p", "p"],
     None),
    ("spectrum.svg", "spectrum", "The Eiffel Tower is in Paris, the capital of France", "", ["enter"], None),
    ("pairing.svg", "pairing", "The capital of France is", "", ["r"], _pairing_done),  # 400 prompts: a while on CPU
    ("layers.svg", "layers", "The Eiffel Tower is located in the city of", "", [], _lens_done),
    ("anchor.svg", "anchor", "User: What is the word for a small domestic cat? Assistant:", ANCHOR_SYSTEM, ["d"],
     _anchor_done),  # drift: 12 forwards of up to ~550 tokens, a few minutes on CPU unless cached
]


async def shoot(out: Path, size: tuple[int, int] = (130, 42), only: set[str] | None = None) -> None:
    from spectrascope.core.engine.session import Session
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.pilot import until

    session = Session.load("gemma-3-270m")
    for name, pane, prompt, system, keys, ready in SHOTS:
        if only and name.removesuffix(".svg") not in only:
            continue
        app = SpectrascopeApp(lambda progress: session, prompt=prompt)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.result is not None, timeout=150)
            app.query_one("#logits-system").value = system  # the Anchor pane takes the A/B's system prompt
            app.action_show_pane(pane)
            await pilot.pause()  # the pane is focused after the next refresh
            await pilot.press(*keys)
            await pilot.pause(0.5)
            if ready is not None:
                await until(pilot, lambda: ready(app), timeout=300)
                await pilot.pause(1.0)
            for inp in app.query("Input"):
                inp.cursor_blink = False
            app.save_screenshot(filename=name, path=str(out))
            print(out / name)


async def shoot_demo(script: Path, out: Path, size: tuple[int, int]) -> None:
    """Play a demo script with its pauses skipped and save the screen at the end of each caption's steps."""
    from spectrascope.core.engine.session import Session
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.demo import load_demo, play
    from spectrascope.tui.pilot import until

    steps = load_demo(script)
    chunks, chunk = [], []
    for step in steps:
        if step.verb == "caption" and chunk:
            chunks.append(chunk)
            chunk = []
        chunk.append(step)
    chunks.append(chunk)
    session = Session.load("gemma-3-270m")
    app = SpectrascopeApp(lambda progress: session, prompt="")
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.session is not None, timeout=150)
        app.demo_next = asyncio.Event()  # what the app makes when it plays a demo itself
        for i, chunk in enumerate(chunks, start=1):
            await play(app, chunk, pause_scale=0.0)
            await pilot.pause(1.0)
            for inp in app.query("Input"):
                inp.cursor_blink = False
            name = f"{script.stem}-{i:02d}.svg"
            app.save_screenshot(filename=name, path=str(out))
            print(out / name)


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="assets/screenshots")
    ap.add_argument("--size", default="130x42", help="COLUMNSxLINES (the README's are 130x42)")
    ap.add_argument("--only", action="append", help="a shot's name (logits, spectrum, pairing, layers, anchor)")
    ap.add_argument("--demo", help="instead: play this demo script and shoot the end of each caption")
    args = ap.parse_args()
    cols, lines = (int(n) for n in args.size.lower().split("x"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.demo:
        asyncio.run(shoot_demo(Path(args.demo), Path(args.out), (cols, lines)))
    else:
        asyncio.run(shoot(Path(args.out), (cols, lines), set(args.only or ())))


if __name__ == "__main__":
    main()
