"""Regenerate the README's SVG screenshots on the embedded default (real model, real SAEs).

    .venv/bin/python -m spectrascope.tui.screenshots [--out assets/screenshots] [--size 80x24] [--only anchor]
    .venv/bin/python -m spectrascope.tui.screenshots --demo assets/demos/france.demo --size 130x42 --out assets/screenshots/demo-130x42
        # the screen each caption is read over; exits 1 and names them if a caption's `expect` fails
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


def _find_done(app) -> bool:
    pane = app.current_pane()
    return pane.report is not None and not pane.job_running()


def _why_done(app) -> bool:
    pane = app.current_pane()
    return pane.report is not None and not pane.job_running()


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
    ("f9-projector.svg", "logits", "The capital of France is", "Answer only in French.", ["K", "K", "K", "f9"], None),
    ("attribution.svg", "attribution", "The capital of France is", "", ["e", *" Paris", "tab", *" the", "enter"],
     _why_done),  # a forward, a backward and one batched forward of the 20 checked features
    ("find.svg", "find", "The Eiffel Tower is in Paris, the capital of France", "", ["f", *"Japan", "enter"],
     _find_done),  # the first search builds both SAEs' indexes (seconds), then cached
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


async def shoot_demo(script: Path, out: Path, size: tuple[int, int]) -> int:
    """Play a demo script with its pauses skipped and save the screen each caption is read over (where its
    `expect` lines are checked); print the expectations that failed and return how many."""
    from spectrascope.core.engine.session import Session
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.demo import load_demo, play
    from spectrascope.tui.pilot import until

    steps = load_demo(script)
    session = Session.load("gemma-3-270m")
    app = SpectrascopeApp(lambda progress: session, prompt="")
    saved = []  # printed after the app: under Pilot, stdout is the app's
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.session is not None, timeout=150)
        app.demo_next = asyncio.Event()  # what the app makes when it plays a demo itself

        async def shoot(i: int, caption: str) -> None:
            await pilot.pause(1.0)
            for inp in app.query("Input"):
                inp.cursor_blink = False
            name = f"{script.stem}-{i:02d}.svg"
            app.save_screenshot(filename=name, path=str(out))
            saved.append(f"{out / name} · {caption}")

        failures = await play(app, steps, pause_scale=0.0, on_screen=shoot)
    print("\n".join(saved))
    for failure in failures:
        print("FALSE CAPTION", failure)
    return len(failures)


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="assets/screenshots")
    ap.add_argument("--size", default="130x42", help="COLUMNSxLINES (the README's are 130x42)")
    ap.add_argument("--only", action="append", help="a shot's name (logits, spectrum, pairing, layers, anchor, f9-projector, find)")
    ap.add_argument("--demo", help="instead: play this demo script and shoot the end of each caption")
    args = ap.parse_args()
    cols, lines = (int(n) for n in args.size.lower().split("x"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.demo:
        raise SystemExit(1 if asyncio.run(shoot_demo(Path(args.demo), Path(args.out), (cols, lines))) else 0)
    else:
        asyncio.run(shoot(Path(args.out), (cols, lines), set(args.only or ())))


if __name__ == "__main__":
    main()
