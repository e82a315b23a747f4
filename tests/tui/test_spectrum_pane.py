"""The Spectrum pane on a tiny model with random coarse and fine SAEs."""

import pytest
from textual.widgets import Static, TabbedContent

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.pilot_helpers import until




@pytest.mark.asyncio
async def test_spectrum_follows_the_prompt_and_the_keys(tiny_sae_session):
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="The capital of France")
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app.query_one(TabbedContent).active = "tab-spectrum"
        pane = app.query_one("#spectrum")
        table = app.query_one("#spectrum-table", FastTable)
        table.focus()
        await pilot.pause()
        n = len(app.result.tokens)
        assert pane.position == n - 1 and table.row_count > 0
        roles = {table.row_text(i)[0] for i in range(table.row_count)}
        assert roles == {"coarse", "fine"}
        info = str(app.query_one("#spectrum-coarse-info", Static).render())
        assert "L0" in info and "silent" in info and "fidelity" in info
        await pilot.press("left", "left")
        assert pane.position == n - 3
        await pilot.press("a")
        assert pane.position is None
        # the ranked table is sorted by activation across both SAEs
        acts = [float(table.row_text(i)[2]) for i in range(table.row_count)]
        assert acts == sorted(acts, reverse=True)
        await pilot.press("enter")
        card = str(app.query_one("#spectrum-card", Static).render())
        role, fid = table.keys[0].split(":")
        assert f"{role} feature {fid}" in card and "promotes:" in card and "on this prompt" in card


@pytest.mark.asyncio
async def test_live_typing_updates_the_spectrum(tiny_sae_session):
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="Paris")
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        first = app.result
        await pilot.press(*" is big")
        await until(pilot, lambda: app.result is not first and app.result.prompt == "Paris is big")
        pane = app.query_one("#spectrum")
        assert pane.result is app.result and pane.position == len(app.result.tokens) - 1


@pytest.mark.asyncio
async def test_without_saes_the_pane_says_why(tiny_session):
    app = SpectrascopeApp(lambda progress: tiny_session, prompt="Paris")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        assert "No spectrum" in str(app.query_one("#spectrum-tokens", Static).render())
