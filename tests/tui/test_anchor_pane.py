"""The Anchor pane (F8) on the fake session: the anchoring report, the navigator, drift (cached, cancellable)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Static

from spectrascope.core.analysis.anchoring import anchor_report
from spectrascope.core.analysis.drift import drift_experiment
from spectrascope.core.analysis.navigator import navigator, reference_basis
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

PROMPT, SYSTEM = "the capital of france is", "answer in french please"


def text_of(pane, selector) -> str:
    return str(pane.query_one(selector, Static).render())


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))


@pytest.mark.asyncio
async def test_f8_takes_the_ab_system_prompt_and_shows_the_anchor_report_and_navigator(tmp_path):
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT, output_dir=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pane = app.query_one("#anchor")
        app.query_one("#logits-system", Input).value = SYSTEM
        assert pane.report is None  # off screen: nothing computed
        await pilot.press("f8")
        await until(pilot, lambda: pane.report is not None)
        assert pane.system == SYSTEM  # the Logits A/B's system prompt, taken into the empty field
        want = anchor_report(session, PROMPT, SYSTEM)
        assert pane.report == want
        table = pane.query_one("#anchor-table", FastTable)
        rows = [r for rs in want.features.values() for r in rs]
        assert table.row_count == len(rows) and [table.row_text(i)[1] for i in range(len(rows))] == [
            str(r.feature) for r in rows]
        assert f"|Δx| {want.resid_shift_last:.1f}" in text_of(pane, "#anchor-header")
        nav = navigator(session, PROMPT, [SYSTEM], reference_basis(session))
        assert pane.navigator == nav and "navigator" in text_of(pane, "#anchor-nav")

        # More system prompts for the navigator: one arrow each.
        field = pane.query_one("#anchor-systems", Input)
        field.focus()
        field.value = "you are a pirate | be brief"
        await pilot.press("enter")
        await until(pilot, lambda: pane.navigator is not None and len(pane.navigator.points) == 4)
        assert [p.system for p in pane.navigator.points] == ["", SYSTEM, "you are a pirate", "be brief"]
        assert app.focused is pane.query_one("#anchor-table")  # enter hands the keyboard back to the pane

        await pilot.press("ctrl+e")
        doc = json.loads(next(tmp_path.glob("spectrascope-exports/spectrascope-anchor-*.json")).read_text())
        assert doc["anchor"]["system"] == SYSTEM and len(doc["navigator"]["points"]) == 4
        assert pane.get_state() == {"system": SYSTEM, "systems": "you are a pirate | be brief"}


@pytest.mark.asyncio
async def test_d_runs_drift_once_then_reads_it_from_the_cache():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f8")
        pane = app.query_one("#anchor")
        await pilot.press("d")
        assert "Type a system prompt first" in text_of(pane, "#anchor-status")  # no system prompt: a message
        pane.query_one("#anchor-system", Input).value = SYSTEM
        await pilot.press("d")
        await until(pilot, lambda: pane.drift is not None and not pane.job_running("drift"))
        want = drift_experiment(session, SYSTEM, PROMPT)
        assert [p.kl for p in pane.drift.points] == pytest.approx([p.kl for p in want.points], rel=1e-6)
        assert pane.drift.target == want.target and "KL" in text_of(pane, "#anchor-drift")
        assert "cached" not in text_of(pane, "#anchor-status")
        forwards = session.forwards
        await pilot.press("d")
        await until(pilot, lambda: not pane.job_running("drift") and "(cached)" in text_of(pane, "#anchor-status"))
        assert session.forwards == forwards  # the second run read the cache


@pytest.mark.asyncio
async def test_x_cancels_drift_between_turn_counts():
    session = fake_with_saes(delay=0.4)  # each `run` (the anchoring view drift starts with) takes 0.4 s
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f8")
        pane = app.query_one("#anchor")
        pane.query_one("#anchor-system", Input).value = SYSTEM
        await pilot.press("d", "x")
        await until(pilot, lambda: not pane.job_running("drift"), timeout=10)
        assert pane.drift is None and "cancelled" in text_of(pane, "#anchor-status")


@pytest.mark.asyncio
async def test_e_enters_the_system_prompt_field_and_enter_compares(tmp_path):
    """tmux showed the trap: from the table, Tab wraps to the app's prompt, so a system prompt typed
    after 'Tab' went into the prompt. `e` goes to the field; enter compares and returns to the table."""
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT, output_dir=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f8")
        pane = app.query_one("#anchor")
        await until(pilot, lambda: app.focused is pane.query_one("#anchor-table"))
        await pilot.press("e", *"Be brief.", "enter")
        await until(pilot, lambda: pane.report is not None)
        assert pane.system == "Be brief." and app.query_one("#prompt", Input).value == PROMPT
        assert app.focused is pane.query_one("#anchor-table")
