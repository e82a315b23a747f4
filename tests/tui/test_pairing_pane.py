"""The Pairing pane driven by keys on the tiny model with random SAEs (inside a minimal App)."""

from __future__ import annotations

import threading

import pytest
from textual.app import App, ComposeResult
from textual.widgets import ProgressBar, Static

from spectrascope.tui.panes.pairing import PairingPane, heat_strip
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.pilot_helpers import until




class PaneApp(App):
    def __init__(self, session, concept, neutral):
        super().__init__()
        self.session = session
        self._paths = concept, neutral

    def compose(self) -> ComposeResult:
        yield PairingPane(*self._paths, id="pairing")


@pytest.fixture
def sets(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["The Eiffel Tower is in Paris.", "France has cheese.", "Paris is the capital of France.",
               "The capital of France is Paris and the capital of Italy is Rome."]
    neutral = ["A quick brown fox.", "The cat sleeps.", "Language models predict the next token.",
               "A quick brown fox jumps over the lazy dog while the cat sleeps."]
    (tmp_path / "c.txt").write_text("\n".join(concept))
    (tmp_path / "n.txt").write_text("\n".join(neutral))
    return tmp_path / "c.txt", tmp_path / "n.txt"


def text_of(app, selector):
    return str(app.query_one(selector, Static).render())


@pytest.mark.asyncio
async def test_run_tables_plots_and_keys(tiny_sae_session, sets):
    app = PaneApp(tiny_sae_session, *sets)
    async with app.run_test(size=(180, 60)) as pilot:
        pane = app.query_one(PairingPane)
        assert pane.selected_features() == []
        pane.query_one("#pairing-anchors", FastTable).focus()
        await pilot.press("r")
        await until(pilot, lambda: pane.result is not None and not pane.busy)
        res = pane.result
        assert len(res.anchors) == 3
        anchors = pane.query_one("#pairing-anchors", FastTable)
        assert anchors.row_count >= 3
        first = anchors.row_text(0)
        assert first[1] == str(res.contrast.stats["coarse"].ranked(1)[0])
        assert "GO" in text_of(app, "#pairing-verdict")
        assert "cosine of coarse" in text_of(app, "#pairing-hist")
        assert "correlation" in text_of(app, "#pairing-scatter")
        pairs = pane.query_one("#pairing-pairs", FastTable)
        assert pairs.row_count > 0 and pairs.column_names[:4] == ["fine", "cosine", "corr", "class"]
        sel = pane.selected_features()
        assert sel[0] == ("coarse", pane.anchor) and all(role == "fine" for role, _ in sel[1:])
        assert [f for _, f in sel[1:]] == res.pairings[pane.anchor].sub_features()

        # Thresholds reclassify without a model call.
        calls = []
        tiny_sae_session_run = tiny_sae_session.run
        tiny_sae_session.run = lambda *a, **k: calls.append(a)
        try:
            before = res.pairings[pane.anchor].counts()["sub-feature"]
            await pilot.press("O", "O", "O", "O")
            assert pane.settings.corr_threshold == pytest.approx(0.7)
            after = pane.result.pairings[pane.anchor].counts()["sub-feature"]
            assert after <= before and "corr ≥ 0.70" in text_of(app, "#pairing-header")
            await pilot.press("c")
            assert pane.settings.cos_threshold == pytest.approx(0.25)
        finally:
            tiny_sae_session.run = tiny_sae_session_run
        assert calls == []

        # Enter on another anchor shows it; space on a non-anchor candidate adds it.
        await pilot.press("down", "enter")
        await until(pilot, lambda: not pane.busy)
        assert pane.anchor == int(anchors.keys[1])
        await pilot.press("end", "space")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 4)
        assert pane.anchor == int(anchors.keys[anchors.cursor]) or pane.anchor in pane.result.anchors
        await pilot.press("minus")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 2)
        assert pane.settings.n_anchors == 2
        await pilot.press("plus")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 3)

        # A second run is a cache hit.
        await pilot.press("r")
        await until(pilot, lambda: not pane.busy)
        assert pane.result.contrast.cached and "from cache" in text_of(app, "#pairing-status")
        await pilot.press("e")
        assert "Report written" in text_of(app, "#pairing-status")
        paths = pane.export(sets[0].parent / "out")
        assert [p.suffix for p in paths] == [".json", ".md"] and all(p.is_file() for p in paths)

        # Session file round trip (the app collects get_state from every ".pane").
        state = pane.get_state()
        assert state["settings"]["n_anchors"] == 3 and state["anchor"] == pane.anchor
        pane.set_state({**state, "settings": {**state["settings"], "cos_threshold": 0.4}})
        assert pane.settings.cos_threshold == 0.4 and pane.has_class("pane")


@pytest.mark.asyncio
async def test_cancel_keeps_the_app_running(tiny_sae_session, sets, monkeypatch):
    from spectrascope.core import contrast

    started = threading.Event()
    real = contrast.collect_activations

    def slow(session, prompts, batch_size, cancel, progress, *a, **k):
        def wrapped(text, frac):
            started.set()
            cancel.wait(10)  # hold the batch loop until the user cancels
            progress(text, frac)
        return real(session, prompts, 1, cancel, wrapped, *a, **k)

    monkeypatch.setattr(contrast, "collect_activations", slow)
    app = PaneApp(tiny_sae_session, *sets)
    async with app.run_test(size=(160, 50)) as pilot:
        pane = app.query_one(PairingPane)
        pane.use_cache = False
        await pilot.press("r")
        await until(pilot, lambda: started.is_set())
        assert pane.query_one("#pairing-progress", ProgressBar).display
        await pilot.press("x")
        await until(pilot, lambda: not pane.busy)
        assert "Cancelled" in text_of(app, "#pairing-status")
        assert pane.result is None
        assert not pane.query_one("#pairing-progress", ProgressBar).display


@pytest.mark.asyncio
async def test_errors_are_shown_inline(tiny_session, sets, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    app = PaneApp(tiny_session, empty, sets[1])
    async with app.run_test(size=(160, 50)) as pilot:
        pane = app.query_one(PairingPane)
        await pilot.press("r")
        await until(pilot, lambda: not pane.busy)
        assert "empty" in text_of(app, "#pairing-status")
        pane.concept_path = sets[0]
        await pilot.press("r")
        await until(pilot, lambda: not pane.busy)
        assert "needs a coarse SAE" in text_of(app, "#pairing-status")


def test_heat_strip_text():
    t = heat_strip([[0.5, -0.2]], [7], [11, 12])
    assert "11" in t.plain and "0.50" in t.plain and "-0.20" in t.plain
    # Negative cells keep a gap, and 6-digit ids (Gemma Scope 262K) are printed whole.
    wide = heat_strip([[-0.04, -0.05], [0.91, -0.5]], [49, 131072], [262143, 3222])
    header, row1, row2 = wide.plain.splitlines()
    assert "262143" in header and "#131072" in row2
    assert row1.split() == ["#49", "-0.04", "-0.05"] and row2.split() == ["#131072", "0.91", "-0.50"]
    assert len(header) == len(row1) == len(row2)  # columns line up under their ids
