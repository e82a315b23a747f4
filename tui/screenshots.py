"""Regenerate the README's SVG screenshots on the embedded default (real model, real SAEs).

    .venv/bin/python -m spectrascope.tui.screenshots [--out assets/screenshots]
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


SHOTS = [
    # (file, pane, prompt, keys after the result arrives, ready to shoot once this holds or None).
    # Showing a pane focuses its `focus_target`, so the keys go to the pane's table.
    ("logits.svg", "logits", "The capital of France is", ["t", "t", "t", "K", "K", "K", "K", "K", "K", "p", "p"], None),
    ("spectrum.svg", "spectrum", "The Eiffel Tower is in Paris, the capital of France", ["enter"], None),
    ("pairing.svg", "pairing", "The capital of France is", ["r"], _pairing_done),  # 400 prompts: a while on CPU
    ("layers.svg", "layers", "The Eiffel Tower is located in the city of", [], _lens_done),
]


async def shoot(out: Path) -> None:
    from spectrascope.core.session import Session
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.pilot import until

    session = Session.load("gemma-3-270m")
    for name, pane, prompt, keys, ready in SHOTS:
        app = SpectrascopeApp(lambda progress: session, prompt=prompt)
        async with app.run_test(size=(130, 42)) as pilot:
            await until(pilot, lambda: app.result is not None, timeout=150)
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


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="assets/screenshots")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(Path(args.out)))


if __name__ == "__main__":
    main()
