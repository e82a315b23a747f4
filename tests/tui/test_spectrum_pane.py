"""The Spectrum pane on a tiny model with random coarse and fine SAEs."""

import threading

import pytest
from textual.widgets import Static, TabbedContent

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import block_labels, fake_with_saes
from tests.tui.pilot_helpers import until




async def show_spectrum(pilot):
    """Wait for the first result, show the Spectrum pane and focus its table."""
    app = pilot.app
    await until(pilot, lambda: app.result is not None)
    app.query_one(TabbedContent).active = "tab-spectrum"
    table = app.query_one("#spectrum-table", FastTable)
    table.focus()
    return app.query_one("#spectrum"), table


@pytest.mark.asyncio
async def test_spectrum_follows_the_prompt_and_the_keys(tiny_sae_session):
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="The capital of France")
    async with app.run_test(size=(140, 45)) as pilot:
        pane, table = await show_spectrum(pilot)
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
        await pilot.press("slash", *" is big")  # / enters the prompt
        await until(pilot, lambda: app.result is not first and app.result.prompt == "Paris is big")
        pane = app.query_one("#spectrum")
        assert pane.result is app.result and pane.position == len(app.result.tokens) - 1


@pytest.mark.asyncio
async def test_without_saes_the_pane_says_why(tiny_session):
    app = SpectrascopeApp(lambda progress: tiny_session, prompt="Paris")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        assert "No spectrum" in str(app.query_one("#spectrum-tokens", Static).render())


@pytest.mark.asyncio
async def test_labels_arrive_from_a_worker_and_the_pane_stays_responsive():
    from spectrascope.core.engine.labels import PENDING

    session = fake_with_saes()
    gate, threads = threading.Event(), []
    block_labels(session, gate, threads)
    app = SpectrascopeApp(lambda progress: session, prompt="The capital of France")
    async with app.run_test(size=(140, 45)) as pilot:
        pane, table = await show_spectrum(pilot)
        await until(pilot, lambda: table.row_count > 0 and pane.labelling)
        assert {table.row_text(i)[4] for i in range(table.row_count)} == {PENDING}  # placeholders meanwhile
        n = len(app.result.tokens)
        await pilot.press("left", "left", "d", "enter")  # keys still work while the labels are pending
        assert pane.position == n - 3 and not pane.hide_dense
        card = str(app.query_one("#spectrum-card", Static).render())
        assert f"promotes: {PENDING}" in card and "on this prompt" in card
        assert threads and threading.main_thread() not in threads
        gate.set()
        await until(pilot, lambda: not pane.labelling and not pane.view().pending())
        shown = [table.row_text(i)[4] for i in range(table.row_count)]
        assert shown and all(label and label != PENDING for label in shown)
        card = str(app.query_one("#spectrum-card", Static).render())
        assert PENDING not in card.split("promotes:")[1].splitlines()[0]


@pytest.mark.asyncio
async def test_one_batched_label_call_per_sae_per_redraw(monkeypatch):
    from tests.core.test_labels import count_lens_calls

    calls = count_lens_calls(monkeypatch)
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt="The capital of France")
    async with app.run_test(size=(140, 45)) as pilot:
        pane, _ = await show_spectrum(pilot)
        await until(pilot, lambda: not pane.labelling and not pane.view().pending())
        rows = pane.view().saes
        assert calls["batch"] == [len(rows["coarse"].rows), len(rows["fine"].rows)]  # one call per SAE
        assert calls["lens"] == 2  # once per SAE
        calls["batch"].clear()
        for _ in range(3):
            pane.draw()  # redraws of what is known compute nothing
        await pilot.press("left")
        await until(pilot, lambda: not pane.labelling and not pane.view().pending())
        assert 1 <= len(calls["batch"]) <= 2 and calls["lens"] == 2  # only the newly shown features
        new = sum(calls["batch"])
        assert new <= sum(len(v.rows) for v in pane.view().saes.values())


@pytest.mark.asyncio
async def test_the_feature_card_shows_density_and_random_firings_from_shipped_labels():
    from spectrascope.tui.widgets.feature_card import sparkline

    session = fake_with_saes()
    session.labels["coarse"].shipped[5] = {
        "promoted": [" Paris"], "snippets": [{"act": 9.5, "text": "in[[ Paris]] today"}],
        "random_snippets": [{"act": 1.25, "text": "the[[ French]] way"}], "max_act": 9.5, "freq": 0.01,
        "range_snippets": [{"act": 0.31, "text": "a[[ Fr]]ank"}],
        "density": [0, 4, 8, 2] + [0] * 11}
    app = SpectrascopeApp(lambda progress: session, prompt="Paris")
    async with app.run_test(size=(140, 45)) as pilot:
        pane, _ = await show_spectrum(pilot)
        pane.select_feature("coarse", 5)
        await pilot.pause()
        card = str(app.query_one("#spectrum-card", Static).render())
        assert "activation density" in card and sparkline([0, 4, 8, 2] + [0] * 11) in card
        assert "random firings" in card and "1.25" in card and "top snippets" in card
        assert "lower activations" in card and "0.31" in card
    assert sparkline([0, 1, 8]) == " ▁█"
