"""Regenerate the README's SVG screenshots on the embedded default (real model, real SAEs).

    .venv/bin/python -m spectrascope.tui.screenshots [--out assets/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

SHOTS = [
    # (file, pane, prompt, widget to focus, keys after the result arrives)
    ("logits.svg", "logits", "The capital of France is", "#logits-table",
     ["t", "t", "t", "K", "K", "K", "K", "K", "K", "p", "p"]),
    ("spectrum.svg", "spectrum", "The Eiffel Tower is in Paris, the capital of France", "#spectrum-table", ["enter"]),
    ("pairing.svg", "pairing", "The capital of France is", "#pairing-anchors", ["r"]),
]


async def shoot(out: Path) -> None:
    from spectrascope.core.session import Session
    from spectrascope.tui.app import SpectrascopeApp

    session = Session.load("gemma-3-270m")
    for name, pane, prompt, focus, keys in SHOTS:
        app = SpectrascopeApp(lambda progress: session, prompt=prompt)
        async with app.run_test(size=(130, 42)) as pilot:
            for _ in range(3000):
                await pilot.pause(0.05)
                if app.result is not None:
                    break
            app.action_show_pane(pane)
            app.query_one(focus).focus()
            await pilot.press(*keys)
            await pilot.pause(0.5)
            if pane == "pairing":  # the contrast run (400 prompts) takes a while on CPU
                from spectrascope.tui.panes.pairing import PairingPane

                for _ in range(6000):
                    if app.query_one(PairingPane).result is not None:
                        break
                    await pilot.pause(0.05)
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
