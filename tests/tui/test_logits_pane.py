"""The Logits pane driven by keys, on a tiny real model (stepping needs a KV cache)."""

import pytest
from textual.widgets import DataTable, Input, Static

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.pilot_helpers import until




def text_of(app, selector):
    return str(app.query_one(selector, Static).render())


@pytest.fixture
def app(tiny_session):
    return SpectrascopeApp(lambda progress: tiny_session, prompt="The capital of France")


async def ready(pilot, app):
    await until(pilot, lambda: app.result is not None)
    app.query_one("#logits-table", FastTable).focus()
    await pilot.pause()
    return app.query_one("#logits")


@pytest.mark.asyncio
async def test_knobs_rerender_without_a_model_call(app, tiny_session, monkeypatch):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        calls = []
        monkeypatch.setattr(tiny_session, "run", lambda *a, **k: calls.append(a))
        await pilot.press("t", "t", "t")
        assert pane.settings.temperature == pytest.approx(0.7)
        await pilot.press("K", "K", "K")  # top-k off -> 1 -> 2 -> 3
        assert pane.settings.top_k == 3
        assert "survivors 3 of" in text_of(app, "#logits-summary")
        await pilot.press("p", "p")
        assert pane.settings.top_p == pytest.approx(0.9)
        table = app.query_one("#logits-table", FastTable)
        statuses = [table.row_text(i)[-1] for i in range(table.row_count)]
        assert statuses[0] == "kept" and "✗ top-k" in statuses
        await pilot.press(*["t"] * 12)  # all the way down: greedy
        assert pane.settings.is_greedy and "greedy" in text_of(app, "#logits-knobs")
        assert calls == []


@pytest.mark.asyncio
async def test_step_back_and_pick(app):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press("g")
        await until(pilot, lambda: pane.stepper is not None and len(pane.stepper.steps) == 1)
        greedy_id = pane.stepper.steps[0].token_id
        await pilot.press("s")
        await until(pilot, lambda: len(pane.stepper.steps) == 2 and not pane.busy)
        await pilot.press("b")
        await until(pilot, lambda: len(pane.stepper.steps) == 1 and not pane.busy)
        assert pane.stepper.steps[0].token_id == greedy_id
        await pilot.press("down", "down", "enter")  # pick the third row
        await until(pilot, lambda: len(pane.stepper.steps) == 2 and not pane.busy)
        assert pane.stepper.steps[1].how == "picked"
        assert "[2 steps]" in text_of(app, "#logits-text")


@pytest.mark.asyncio
async def test_seeded_runs_side_by_side(app):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        pane.run_steps = 5
        await pilot.press("n")
        runs = app.query_one("#logits-runs", DataTable)
        await until(pilot, lambda: runs.row_count == pane.n_runs)
        assert runs.display and str(runs.get_row_at(0)[0]) == "0"


@pytest.mark.asyncio
async def test_system_prompt_ab_columns(app):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press("a")  # no system prompt yet: focus goes to its field
        assert isinstance(app.focused, Input) and app.focused.id == "logits-system"
        await pilot.press(*"You are a pirate.", "enter")
        await until(pilot, lambda: pane.ab is not None)
        assert "KL(with ‖ without)" in text_of(app, "#logits-summary")
        table = app.query_one("#logits-table", FastTable)
        assert table.column_names[3:5] == ["p without", "p with"]
        await pilot.press("a")
        assert not pane.ab_on and "survivors" in text_of(app, "#logits-summary")
