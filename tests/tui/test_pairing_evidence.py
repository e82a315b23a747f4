"""The Pairing pane shows what weighs its verdict: the permutation p and the threshold grid."""

from __future__ import annotations

import pytest

from tests.tui.fake_session import fake_with_saes
from tests.tui.test_pairing_pane import PaneApp, run_pairing, text_of


@pytest.fixture
def prompt_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "c.txt").write_text("The Eiffel Tower is in Paris.\nFrance has cheese.\nParis is in France.")
    (tmp_path / "n.txt").write_text("A quick brown fox.\nThe cat sleeps.\nLanguage models predict tokens.")
    return tmp_path / "c.txt", tmp_path / "n.txt"


@pytest.mark.asyncio
async def test_pane_shows_the_permutation_p_and_the_threshold_grid(prompt_files):
    app = PaneApp(fake_with_saes(), *prompt_files)
    async with app.run_test(size=(200, 50)) as pilot:
        pane = await run_pairing(pilot)
        v = pane.result.verdict
        assert v.permutation is not None
        verdict = text_of(app, "#pairing-verdict")
        assert f"permutation p = {v.permutation.p_value:.3f}" in verdict and "threshold settings" in verdict
        heat = text_of(app, "#pairing-heat")
        assert f"GO over thresholds: {v.grid.go_share:.0%} of 60" in heat and "cos\\corr" in heat
        assert f"[{v.grid.best[1][2]}]" in heat  # the current thresholds (0.30, 0.50) marked
        await pilot.press("o")  # corr 0.45: the mark moves, the grid stays
        await pilot.pause()
        assert pane.result.verdict.grid == v.grid
        assert f"[{v.grid.best[1][1]}]" in text_of(app, "#pairing-heat")
