"""The Layers pane (F6) on the fake session: the logit lens report, its keys, and laziness."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from spectrascope.core.lens import logit_lens
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
