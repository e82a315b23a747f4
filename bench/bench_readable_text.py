"""The cost of the readable-text filter (tui/contrast.py) on a full repaint: the app's screen rendered with
it (ours) and with Textual's own filters only (baseline), same app, same screen, in one run.

    .venv/bin/python bench/bench_readable_text.py [--size 130x42] [--repeats 200]

Each pane of the fake session is shown in turn, in both themes; a full repaint re-applies every line
filter to every line (Textual caches the strips, not the filtered output).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App  # noqa: E402

from tests.tui.pilot_helpers import fake_app, until  # noqa: E402

PANES = ["logits", "spectrum", "pairing", "steering", "layers", "anchor"]


async def measure(size: tuple[int, int], repeats: int) -> dict[str, list[float]]:
    app = fake_app()
    ours = type(app).get_line_filters
    times = {"ours": [], "baseline": []}
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.result is not None)
        for projector in (False, True):
            if projector:
                await pilot.press("f9")
            for pane in PANES:
                app.action_show_pane(pane)
                await pilot.pause(0.3)
                compositor = app.screen._compositor
                for name, filters in (("baseline", App.get_line_filters), ("ours", ours)):
                    type(app).get_line_filters = filters
                    compositor.render_update(full=True)  # warm: the strips are cached, the filters are not
                    t0 = time.perf_counter()
                    for _ in range(repeats):
                        compositor.render_update(full=True)
                    times[name].append((time.perf_counter() - t0) / repeats * 1000)
                type(app).get_line_filters = ours
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="130x42")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    cols, lines = (int(n) for n in args.size.split("x"))
    times = asyncio.run(measure((cols, lines), args.repeats))
    ours, base = statistics.median(times["ours"]), statistics.median(times["baseline"])
    print(f"full repaint at {args.size}, median over 6 panes x 2 themes: ours {ours:.2f} ms, "
          f"Textual's filters only {base:.2f} ms, ratio {ours / base:.2f}x (+{ours - base:.2f} ms)")


if __name__ == "__main__":
    main()
