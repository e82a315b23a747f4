"""The Steering pane driven by keys inside a minimal App, on the tiny SAE session."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from spectrascope.core import steering as st
from spectrascope.tui.panes.steering import SteeringPane
from spectrascope.tui.widgets.fast_table import FastTable
from tests.conftest import hooks_left
from tests.tui.pilot_helpers import until


class FakePairing(Static):
    def selected_features(self):
        return [("coarse", 3), ("fine", 10)]


class SteerApp(App):
    def __init__(self, session, pairing=False):
        super().__init__()
        self.session = session
        self.pairing = pairing

    def compose(self) -> ComposeResult:
        yield Input(value="The capital of France is", id="prompt")
        if self.pairing:
            yield FakePairing("", id="pairing")
        yield SteeringPane(id="steering")




def text_of(app, selector):
    return str(app.query_one(selector, Static).render())


async def setup(pilot, app, features="coarse:3:2 fine:10:1"):
    pane = app.query_one(SteeringPane)
    pane.tokens, pane.n_seeds, pane.sweep = 3, 2, (0.0, 4.0)
    box = app.query_one("#steer-features", Input)
    box.focus()
    box.value = features
    await pilot.press("enter")
    await pilot.pause()
    return pane


@pytest.mark.asyncio
async def test_generate_side_by_side_with_effect_and_cost(tiny_sae_session):
    app = SteerApp(tiny_sae_session)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app)
        assert [f.label() for f in pane.features] == ["coarse:3:2", "fine:10:1"]
        await pilot.press("plus", "plus")  # selected row: the coarse feature
        assert pane.features[0].strength == 3.0
        await pilot.press("down", "minus")
        assert pane.features[1].strength == 0.5
        await pilot.press("m")
        assert pane.method == "clamp"
        await pilot.press("m", "g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        assert pane.report.spec.method == "add"
        for name, col in [("baseline", "baseline"), ("coarse", "coarse"), ("fine", "fine"),
                          ("coarse+fine", "coarse-fine")]:
            body = text_of(app, f"#steer-col-{col}")
            assert body.startswith(name) and "seed 0:" in body and "seed 1:" in body
            assert "effect: concept act" in body and "concept words" in body and "perplexity" in body
        assert [r.seed for r in pane.report.cell("fine").runs] == [0, 1]
        assert "coarse:3:3" in text_of(app, "#steer-col-coarse")
        assert "1 = act" in " ".join(app.query_one("#steer-feature-table", FastTable).row_text(0))
        assert hooks_left(tiny_sae_session) == 0


@pytest.mark.asyncio
async def test_sweep_plots_and_bad_input(tiny_sae_session):
    app = SteerApp(tiny_sae_session)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app, "coarse:999")
        assert "0..127" in text_of(app, "#steer-status") and pane.features == []
        app.query_one("#steer-feature-table", FastTable).focus()  # the input keeps focus after an error
        await pilot.press("g")
        assert "No features yet" in text_of(app, "#steer-status")
        pane = await setup(pilot, app)
        await pilot.press("w")
        await until(pilot, lambda: pane.sweep_report is not None and not pane.busy)
        assert app.query_one("#steer-plots").display and not app.query_one("#steer-columns").display
        effect = text_of(app, "#steer-plot-effect")
        assert "concept activation" in effect and "strength" in effect
        assert "perplexity" in text_of(app, "#steer-plot-cost")
        assert "within 1.5× baseline ppl" in text_of(app, "#steer-status")
        assert [c.strength for c in pane.sweep_report.curve("coarse+fine")] == [0.0, 4.0]
        await pilot.press("v")
        assert app.query_one("#steer-columns").display


@pytest.mark.asyncio
async def test_features_from_pairing_and_cancel(tiny_sae_session):
    app = SteerApp(tiny_sae_session, pairing=True)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(SteeringPane)
        app.query_one("#steer-feature-table", FastTable).focus()
        await pilot.press("f")
        assert [f.label() for f in pane.features] == ["coarse:3:1", "fine:10:1"]
        assert app.query_one("#steer-features", Input).value == "coarse:3:1 fine:10:1"
        pane.tokens, pane.n_seeds = 40, 4
        await pilot.press("g")
        await until(pilot, lambda: "working" in text_of(app, "#steer-status"))
        await pilot.press("escape")
        await until(pilot, lambda: not pane.busy)
        assert "Cancelled" in text_of(app, "#steer-status") and pane.report is None
        assert hooks_left(tiny_sae_session) == 0
