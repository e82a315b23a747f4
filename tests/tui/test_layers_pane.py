"""The Layers pane (F6) on the fake session: the logit lens report, its keys, and laziness."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from spectrascope.core.analysis.lens import logit_lens
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until


@pytest.mark.asyncio
async def test_f6_shows_the_lens_of_the_prompt_and_follows_the_token():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt="the capital of france is")
    async with app.run_test(size=(150, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pane = app.query_one("#layers")
        assert pane.report is None  # not on screen: no lens forward yet
        await pilot.press("f6")
        await until(pilot, lambda: pane.report is not None)
        want = logit_lens(session, "the capital of france is", -1)
        table = pane.query_one("#layers-table", FastTable)
        assert table.row_count == len(want.rows)
        assert [table.row_text(i)[1] for i in range(table.row_count)] == [str(r.target_rank) for r in want.rows]
        assert "top-1 from layer" in str(pane.query_one("#layers-header", Static).render())
        pane.query_one("#layers-table", FastTable).focus()
        await pilot.press("left")
        await until(pilot, lambda: pane.report is not None and pane.report.position == len(want.tokens) - 2)
        assert pane.report.target == logit_lens(session, "the capital of france is", -2).target


@pytest.mark.asyncio
async def test_the_table_shows_before_the_grid_and_other_tokens_need_no_forward(monkeypatch):
    """The costly settled grid comes after the table, once per prompt; ←/→ reuse the kept stream."""
    import threading

    from spectrascope.core.analysis import lens

    gate, grids = threading.Event(), []
    real_grid = lens.lens_grid

    def slow_grid(session, stream, tuned=None):
        assert gate.wait(30)
        grids.append(stream.prompt)
        return real_grid(session, stream, tuned)

    session = fake_with_saes()
    want = logit_lens(session, "the capital of france is", -2)  # before the patch: the plain report
    monkeypatch.setattr(lens, "lens_grid", slow_grid)
    app = SpectrascopeApp(lambda progress: session, prompt="the capital of france is")
    async with app.run_test(size=(150, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pane = app.query_one("#layers")
        await pilot.press("f6")
        await until(pilot, lambda: pane.table is not None)
        strip = pane.query_one("#layers-strip", Static)
        assert pane.table.settled == () and pane.report is None and "reading every layer" in str(strip.render())
        table = pane.query_one("#layers-table", FastTable)
        assert table.row_count == len(pane.table.rows) and table.row_text(0)[6] == "…"  # its column waits
        forwards = session.forwards
        pane.query_one("#layers-table", FastTable).focus()
        await pilot.press("left")
        await until(pilot, lambda: pane.table.position == len(pane.table.tokens) - 2)
        assert session.forwards == forwards  # the kept stream: no second forward for another token
        gate.set()
        await until(pilot, lambda: pane.report is not None)
        assert pane.report == want and grids == ["the capital of france is"]
        assert "already top-1" in str(strip.render())
        assert table.column_names[6] == "settled"  # each layer's row of the grid, beside its lens row
        assert [table.row_text(i)[6].strip() for i in range(table.row_count)] == [
            "".join("█" if v else "·" for v in row) for row in want.settled]
        await pilot.press("right")
        await until(pilot, lambda: pane.report is not None and pane.report.position == len(want.tokens) - 1)
        assert grids == ["the capital of france is"] and session.forwards == forwards


@pytest.mark.asyncio
async def test_u_reads_the_layers_through_the_tuned_lens(monkeypatch, tmp_path):
    """`u` fits the tuned lens once (in a worker, the header says so), shows its report, and toggles back."""
    from spectrascope.core.analysis.tuned_lens import tuned_lens

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    prompts = ["the cat sat on the mat", "one two three four five", "a b c d e f g h", "paris is in france"]
    monkeypatch.setattr("spectrascope.core.analysis.tuned_lens.calibration_prompts", lambda: prompts)
    session = fake_with_saes()
    prompt = "the capital of france is"
    app = SpectrascopeApp(lambda progress: session, prompt=prompt)
    async with app.run_test(size=(150, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pane = app.query_one("#layers")
        await pilot.press("f6")
        await until(pilot, lambda: pane.report is not None)
        assert pane.report.lens == "logit lens"
        pane.query_one("#layers-table", FastTable).focus()
        await pilot.press("u")
        await until(pilot, lambda: pane.report is not None and pane.report.lens.startswith("tuned lens"))
        want = logit_lens(session, prompt, -1, tuned=tuned_lens(session, prompts))
        assert pane.report == want  # table and grid: the report `spectrascope lens --tuned` prints
        header = str(pane.query_one("#layers-header", Static).render())
        assert "tuned lens (fitted on 4 prompts" in header and "translator" in header
        assert pane.get_state()["tuned"] is True
        await pilot.press("u")
        await until(pilot, lambda: pane.report is not None and pane.report.lens == "logit lens")
        assert pane.report == logit_lens(session, prompt, -1)


def test_the_settled_column_shows_a_window_around_the_token_of_a_long_prompt():
    from spectrascope.tui.panes.layers import settled_spans, settled_window

    assert settled_window(10, 9) == range(10)
    assert settled_window(100, 0) == range(0, 32) and settled_window(100, 99) == range(68, 100)
    assert settled_window(100, 50) == range(34, 66)
    spans = settled_spans((True, False, True), range(3), 1)
    assert [t for t, _ in spans] == ["█", "·", "█"] and spans[1][1] == "bold yellow"
