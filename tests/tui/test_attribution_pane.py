"""The Attribution pane (F10, `w` on a Logits row) on the fake session: the same report as the core view,
the hand-offs from Logits and to Steering, live ablation, bad input."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from spectrascope.core.views.attribution import AttributionSpec, ablate, build
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

PROMPT = "the capital of france is"


def without_time(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "seconds"}


@pytest.mark.asyncio
async def test_f10_shows_the_core_report_and_enter_ablates_live():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pane = app.query_one("#attribution")
        assert pane.report is None  # not on screen: no forward yet
        await pilot.press("f10")
        await until(pilot, lambda: pane.report is not None)
        want = build(session, AttributionSpec(PROMPT))
        doc, rows, _ = pane.export_doc()
        assert without_time(doc) == without_time(want.to_dict())  # the pane and the CLI: one report
        assert len(rows) == len(want.features)
        table = pane.query_one("#attr-table", FastTable)
        assert table.row_count == len(want.features)
        assert "Why" in str(pane.query_one("#attr-header", Static).render())
        table.focus()
        await pilot.press("down", "enter")
        direct = ablate(session, want, want.features[1])
        await until(pilot, lambda: "→" in str(pane.query_one("#attr-status", Static).render()), timeout=10)
        status = str(pane.query_one("#attr-status", Static).render())
        assert f"{direct.prob_after:.3f}" in status and f"{direct.value_after:+.3f}" in status


@pytest.mark.asyncio
async def test_w_on_a_logits_row_explains_that_token_and_s_sends_it_to_steering():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f2")
        table = app.query_one("#logits-table", FastTable)
        await until(pilot, lambda: table.row_count > 3)
        table.focus()
        await pilot.press("down", "down")
        chosen = int(table.keys[table.cursor])
        await pilot.press("w")
        pane = app.query_one("#attribution")
        await until(pilot, lambda: pane.report is not None and app.query_one("#panes").active == "tab-attribution")
        assert pane.report.target_id == chosen
        assert app.query_one("#attr-target", Input).value == f"#{chosen}"
        row = pane.report.features[0]
        pane.query_one("#attr-table", FastTable).focus()
        await pilot.press("s")
        steering = app.query_one("#steering")
        await until(pilot, lambda: len(steering.features) == 1)
        sent = steering.features[0]
        assert (sent.role, sent.id, sent.strength) == (row.role, row.feature, 1.0 if row.estimate >= 0 else -1.0)


@pytest.mark.asyncio
async def test_a_bad_target_gets_one_line_and_the_app_keeps_running():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f10")
        pane = app.query_one("#attribution")
        await until(pilot, lambda: pane.report is not None)
        field = app.query_one("#attr-target", Input)
        field.focus()
        field.value = "#99999"
        await pilot.press("enter")
        header = pane.query_one("#attr-header", Static)
        await until(pilot, lambda: pane.report is None)
        assert "outside the vocabulary" in str(header.render())
        field.value = "[bold]x"  # markup in a target is text, never a style (the fake makes it some token)
        field.focus()
        await pilot.press("enter")
        await until(pilot, lambda: pane.report is not None)
        assert str(header.render()).startswith("Why ")
        field.value = ""
        field.focus()
        await pilot.press("enter")
        await until(pilot, lambda: pane.report is not None)
