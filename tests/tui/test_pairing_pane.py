"""The Pairing pane driven by keys on the fake session with random SAEs (inside a minimal App that
hands the session down, as the real app does)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from spectrascope.core.analysis import pairing
from spectrascope.tui.panes.pairing import PairingPane
from spectrascope.tui.widgets.pairing_render import decomposition_tree, heat_strip
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import FakeSession, fake_with_saes
from tests.tui.pilot_helpers import until


class PaneApp(App):
    session = reactive(None)

    def __init__(self, session, concept, neutral):
        super().__init__()
        self.set_reactive(PaneApp.session, session)
        self._paths = concept, neutral
        self.selections = []  # what the pane told the app

    def compose(self) -> ComposeResult:
        yield PairingPane(*self._paths, id="pairing").data_bind(PaneApp.session)

    def on_pairing_pane_selection_changed(self, message: PairingPane.SelectionChanged) -> None:
        self.selections.append(message.features)

    def on_pairing_pane_show_screen(self, message: PairingPane.ShowScreen) -> None:
        self.push_screen(message.screen)


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


def rendered(renderable) -> str:
    from rich.console import Console

    console = Console(width=160, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def same_pairing(a, b) -> bool:
    return a.anchors == b.anchors and all(
        np.array_equal(a.pairings[x].classes, b.pairings[x].classes)
        and np.allclose(a.pairings[x].cosine, b.pairings[x].cosine) for x in a.anchors)


async def run_pairing(pilot) -> PairingPane:
    """Focus the candidates, press r and wait for the finished run."""
    pane = pilot.app.query_one(PairingPane)
    pane.query_one("#pairing-anchors", FastTable).focus()
    await pilot.press("r")
    await until(pilot, lambda: pane.result is not None and not pane.busy)
    return pane


@pytest.mark.asyncio
async def test_run_tables_plots_and_keys(sets):
    fake = fake_with_saes()
    app = PaneApp(fake, *sets)
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
        # The decomposition beside the scatter: anchor -> its sub-features, one branch each.
        tree = rendered(decomposition_tree(pane.anchor, "x", res.pairings[pane.anchor], str))
        assert f"coarse #{pane.anchor}" in tree
        assert all(f"#{f} corr" in tree for f in res.pairings[pane.anchor].sub_features()[:5])
        assert "correlation" in text_of(app, "#pairing-scatter")
        pairs = pane.query_one("#pairing-pairs", FastTable)
        assert pairs.row_count > 0 and pairs.column_names[:4] == ["fine", "cosine", "corr", "class"]
        sel = pane.selected_features()
        assert sel[0] == ("coarse", pane.anchor) and all(role == "fine" for role, _ in sel[1:])
        assert [f for _, f in sel[1:]] == res.pairings[pane.anchor].sub_features()
        await until(pilot, lambda: app.selections and app.selections[-1] == tuple(sel))  # told the app

        # Thresholds reclassify without a model call.
        forwards = fake.forwards
        before = res.pairings[pane.anchor].counts()["sub-feature"]
        await pilot.press("O", "O", "O", "O")
        assert pane.settings.corr_threshold == pytest.approx(0.7)
        after = pane.result.pairings[pane.anchor].counts()["sub-feature"]
        assert after <= before and "corr ≥ 0.70" in text_of(app, "#pairing-header")
        await pilot.press("c")
        assert pane.settings.cos_threshold == pytest.approx(0.25)

        # Enter on another anchor shows it; space on a non-anchor candidate adds it; +/- re-pair.
        # All of it is core.pairing.repair on the finished run: no model forward.
        await pilot.press("down", "enter")
        await until(pilot, lambda: not pane.busy)
        assert pane.anchor == int(anchors.keys[1])
        previous = pane.result
        await pilot.press("end", "space")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 4)
        added = int(anchors.keys[anchors.cursor])
        assert pane.anchor == added and pane.result.anchors == previous.anchors + [added]
        assert same_pairing(pane.result, pairing.repair(fake, previous, pane.settings, previous.anchors + [added]))
        assert pane.result.labels["coarse"][added]  # labelled on the way
        await pilot.press("minus")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 2)
        assert pane.settings.n_anchors == 2
        assert pane.result.anchors == pane.result.contrast.stats["coarse"].ranked(2)
        await pilot.press("plus")
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 3)
        assert fake.forwards == forwards

        # A second run is a cache hit.
        await pilot.press("r")
        await until(pilot, lambda: not pane.busy)
        assert pane.result.contrast.cached and "from cache" in text_of(app, "#pairing-status")
        size = pane.result.contrast.cache_text()  # the compact cache file's size, as the CLI prints it
        assert size.startswith("cache file ") and size in text_of(app, "#pairing-status")
        paths = pane.export(sets[0].parent / "out")
        assert [p.suffix for p in paths] == [".csv", ".json", ".md"] and all(p.is_file() for p in paths)

        # Session file round trip (the app collects get_state from every ".pane").
        state = pane.get_state()
        assert state["settings"]["n_anchors"] == 3 and state["anchor"] == pane.anchor
        pane.set_state({**state, "settings": {**state["settings"], "cos_threshold": 0.4}})
        assert pane.settings.cos_threshold == 0.4 and pane.has_class("pane")


@pytest.mark.asyncio
async def test_thresholds_moved_during_a_re_pairing_apply_to_its_result(sets, monkeypatch):
    fake = fake_with_saes()
    app = PaneApp(fake, *sets)
    async with app.run_test(size=(180, 60)) as pilot:
        pane = await run_pairing(pilot)
        gate, held = threading.Event(), threading.Event()
        real = pairing.repair

        def held_repair(*a, **k):
            held.set()
            gate.wait(10)
            return real(*a, **k)

        monkeypatch.setattr(pairing, "repair", held_repair)
        await pilot.press("minus")
        await until(pilot, held.is_set)
        await pilot.press("O", "O")  # while the re-pairing runs
        gate.set()
        await until(pilot, lambda: not pane.busy and len(pane.result.anchors) == 2)
        assert pane.result.settings == pane.settings and pane.settings.corr_threshold == pytest.approx(0.6)


@pytest.mark.asyncio
async def test_cancel_keeps_the_app_running(sets, monkeypatch):
    from spectrascope.core.analysis import contrast

    started = threading.Event()
    real = contrast.collect_activations

    def slow(session, prompts, batch_size, cancel, progress, *a, **k):
        def wrapped(text, frac):
            started.set()
            cancel.wait(10)  # hold the batch loop until the user cancels
            progress(text, frac)
        return real(session, prompts, 1, cancel, wrapped, *a, **k)

    monkeypatch.setattr(contrast, "collect_activations", slow)
    app = PaneApp(fake_with_saes(), *sets)
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
async def test_errors_are_shown_inline(sets, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    app = PaneApp(FakeSession(), empty, sets[1])
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


@pytest.mark.asyncio
async def test_rows_listed_by_a_threshold_change_get_labels_from_a_worker(sets):
    from spectrascope.core.engine.labels import PENDING
    from tests.tui.fake_session import block_labels

    fake = fake_with_saes()
    app = PaneApp(fake, *sets)
    async with app.run_test(size=(180, 60)) as pilot:
        pane = await run_pairing(pilot)
        gate, threads = threading.Event(), []
        block_labels(fake, gate, threads)
        pairs = pane.query_one("#pairing-pairs", FastTable)
        await pilot.press(*"cccccccooooooo")  # lower thresholds: more fine rows listed
        await until(pilot, lambda: pane.labelling)
        new = [i for i in range(pairs.row_count) if int(pairs.row_text(i)[0]) not in pane.result.labels["fine"]]
        assert new and all(pairs.row_text(i)[-1] == PENDING for i in new)  # placeholders, not blanks
        await pilot.press("C")  # keys still work while they are computed
        assert pane.settings.cos_threshold == pytest.approx(0.0)
        assert threads and threading.main_thread() not in threads
        gate.set()
        await until(pilot, lambda: not pane.labelling and not pairing.unlabelled(pane.result))
        labels = [pairs.row_text(i)[-1] for i in range(pairs.row_count)]
        assert labels and all(label and label != PENDING for label in labels)


@pytest.mark.asyncio
async def test_s_cycles_through_the_shipped_concept_sets(sets):
    from spectrascope.core.analysis.concept_sets import CONCEPT_SETS

    app = PaneApp(fake_with_saes(), *sets)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(PairingPane)
        pane.query_one("#pairing-anchors", FastTable).focus()
        names = []
        for _ in range(len(CONCEPT_SETS) + 1):
            await pilot.press("s")
            names.append(next(c.name for c in CONCEPT_SETS.values() if c.concept == pane.concept_path))
            assert pane.neutral_path == CONCEPT_SETS[names[-1]].neutral
            assert f"concept {pane.concept_path.name}" in text_of(app, "#pairing-header")
        assert names == [*CONCEPT_SETS, "france"]  # from a custom set to the first shipped one, then around
        await pilot.press("r")  # and the chosen set runs
        await until(pilot, lambda: pane.result is not None and not pane.busy)
        assert pane.result.contrast.n_concept == 200


@pytest.mark.asyncio
async def test_v_shows_the_feature_token_by_token(sets):
    from spectrascope.tui.token_view import TokenViewScreen

    app = PaneApp(fake_with_saes(), *sets)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await run_pairing(pilot)
        feature = int(pane.query_one("#pairing-anchors", FastTable).keys[0])
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, TokenViewScreen))
        screen = app.screen
        assert screen.title_text.startswith(f"coarse #{feature} token by token")
        assert [p.set_name for p in screen.view].count("neutral") == 4
        shown = " ".join(str(w.render()) for w in screen.query(Static))
        assert "false positives" in shown and "max " in shown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TokenViewScreen))


@pytest.mark.asyncio
async def test_pane_report_and_cli_print_the_same_statistics(sets, capsys, monkeypatch):
    """One rendering (FeatureStats.cells) behind the pane's candidates, the Markdown report and the
    `contrast` CLI: every anchor's mean, firing rates and selectivity read the same on all three."""
    from spectrascope.core.analysis.contrast import RATE_DEFINITION
    from spectrascope.tui.commands.pairing import print_tables
    from spectrascope.tui.console import headless_console

    app = PaneApp(fake_with_saes(), *sets)
    async with app.run_test(size=(160, 50)) as pilot:
        pane = await run_pairing(pilot)
        table = pane.query_one("#pairing-anchors", FastTable)
        assert table.column_names[4] == "fires c/n"
        shown = {int(table.row_text(i)[1]): table.row_text(i)[2:6] for i in range(table.row_count)}
        result, shown_report = pane.result, pane.report
    report = pairing.to_markdown(result)
    assert RATE_DEFINITION[1:] in report
    monkeypatch.setenv("COLUMNS", "200")  # rich's console: wide enough for whole rows
    print_tables(shown_report, headless_console())
    cli_text = capsys.readouterr().out
    assert RATE_DEFINITION in cli_text
    for a in result.anchors:
        mean_c, mean_n, rates, sel = shown[a]
        assert f"| {a} | {mean_c} | {mean_n} | {rates} | {sel} |" in report
        cli_row = next(line for line in cli_text.splitlines() if line.startswith("│") and
                       line.split("│")[1].strip() == str(a))
        assert [c.strip() for c in cli_row.split("│")[2:6]] == [mean_c, mean_n, rates, sel]


@pytest.mark.asyncio
async def test_r_shows_a_progress_line_at_once_before_the_first_prompt_finishes(sets):
    fake = fake_with_saes()
    forward, gate, finished = fake.forward, threading.Event(), []

    def held_forward(ids, **kw):
        assert gate.wait(30), "the test never let the model run"
        out = forward(ids, **kw)
        finished.append(1)
        return out

    fake.forward = held_forward
    app = PaneApp(fake, *sets)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PairingPane)
        pane.query_one("#pairing-anchors", FastTable).focus()
        await pilot.press("r")
        await pilot.pause()  # the first refresh after the key
        status = app.query_one("#pairing-status", Static)
        bar = app.query_one("#pairing-progress", ProgressBar)
        assert not finished and pane.busy  # no prompt has gone through the model yet
        line = text_of(app, "#pairing-status")
        assert "first batch of prompts" in line and "x cancels" in line
        assert bar.display and bar.region.width > 0 and status.region.height >= 1  # on screen, not just set
        assert len(line) <= status.region.width  # the whole line, even at 80 columns
        gate.set()
        await until(pilot, lambda: "prompts" in text_of(app, "#pairing-status") and bar.percentage is not None
                    or pane.result is not None)
        await until(pilot, lambda: pane.result is not None and not pane.busy)
        assert not bar.display
