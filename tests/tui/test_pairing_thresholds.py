"""The Pairing pane's threshold keys stay responsive: the null model and permutation p are recomputed in a
job (tui/pairing_thresholds.py), the last press wins, and the numbers are the direct core call's."""

from __future__ import annotations

import threading
import time

import pytest

from spectrascope.core.analysis import pairing
from spectrascope.core.engine.values import Cancelled
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until
from tests.tui.test_pairing_pane import PaneApp, run_pairing, sets, text_of  # noqa: F401 - the fixture

HOLD_S = 30.0  # the slow recompute gives up waiting after this (a handler that blocked would then finish it)


class SlowCounts:
    """`subfeature_counts` held at a gate (a deliberately slow recompute) that still stops when its job is
    cancelled: it calls the job's tick while it waits."""

    def __init__(self):
        self.gate = threading.Event()
        self.events: list[str] = []  # "entered", then "cancelled" or "done", per call
        self.real = pairing.subfeature_counts

    def __call__(self, *a, tick=None, **k):
        self.events.append("entered")
        end = time.monotonic() + HOLD_S
        try:
            while not self.gate.wait(0.01) and time.monotonic() < end:
                if tick is not None:
                    tick(0.0)  # raises Cancelled once a newer press (or x) cancelled this job
        except Cancelled:
            self.events.append("cancelled")
            raise
        out = self.real(*a, tick=tick, **k)
        self.events.append("done")
        return out


def plain(value):
    """A report's dict without what differs run to run (timings) or arrives later (labels)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in ("seconds", "label")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def run_then_slow_down(pilot, monkeypatch):
    """A finished pairing run; from then on the null model's pairing is held (`SlowCounts`)."""
    pane = await run_pairing(pilot)
    slow = SlowCounts()
    monkeypatch.setattr(pairing, "subfeature_counts", slow)
    return pane, pane.report, slow


@pytest.mark.asyncio
async def test_threshold_keys_return_at_once_and_the_last_press_wins(sets, monkeypatch):  # noqa: F811
    app = PaneApp(fake_with_saes(), *sets)
    async with app.run_test(size=(180, 60)) as pilot:
        pane, base, slow = await run_then_slow_down(pilot, monkeypatch)

        await pilot.press("O")  # corr 0.55
        # The key came back while the recompute is still held: it runs off the UI thread.
        assert "done" not in slow.events and pane.busy
        assert pane.settings.corr_threshold == pytest.approx(0.55)
        assert pane.report.pending and pane.result.settings == pane.settings  # the classes are shown already
        assert "recomputing" in text_of(app, "#pairing-status")
        assert "recomputing" in text_of(app, "#pairing-verdict")
        await until(pilot, lambda: "entered" in slow.events)

        # The app takes other keys and redraws while it is held: the cursor moves, a second press lands.
        table = pane.query_one("#pairing-anchors", FastTable)
        cursor = table.cursor
        await pilot.press("down")
        assert table.cursor == cursor + 1
        await pilot.press("O")  # corr 0.60, while the first recompute is still held
        assert "done" not in slow.events
        assert pane.settings.corr_threshold == pytest.approx(0.6) and "corr ≥ 0.60" in text_of(app, "#pairing-header")
        await until(pilot, lambda: "cancelled" in slow.events)  # the first recompute stopped: superseded

        slow.gate.set()
        await until(pilot, lambda: not pane.busy)
        assert slow.events.count("cancelled") == 1 and "done" in slow.events
        assert not pane.report.pending and pane.result.settings == pane.settings
        assert "recomputed" in text_of(app, "#pairing-status")
        direct = base.reclassified(pane.settings)  # the core call, straight from the run's report
        assert plain(pane.report.to_dict()) == plain(direct.to_dict())
        assert pane.result.verdict.null == direct.result.verdict.null
        assert pane.result.verdict.permutation.p_value == direct.result.verdict.permutation.p_value


@pytest.mark.asyncio
async def test_x_cancels_the_recompute_and_goes_back_to_the_last_full_result(sets, monkeypatch):  # noqa: F811
    app = PaneApp(fake_with_saes(), *sets)
    async with app.run_test(size=(180, 60)) as pilot:
        pane, base, slow = await run_then_slow_down(pilot, monkeypatch)
        await pilot.press("c")
        await until(pilot, lambda: "entered" in slow.events)
        await pilot.press("x")
        await until(pilot, lambda: not pane.busy)
        assert slow.events == ["entered", "cancelled"]
        assert pane.settings == base.result.settings and pane.result.settings == base.result.settings
        assert not pane.report.pending and pane.result.verdict.null == base.result.verdict.null
        assert "Cancelled: back to cos ≥ 0.30" in text_of(app, "#pairing-status")
        slow.gate.set()
