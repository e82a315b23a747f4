"""The Steering pane driven by keys on the fake session: inside a minimal App that hands the session,
the prompt and the Pairing selection down, and inside the real app with the Pairing pane."""

from __future__ import annotations

import time

import pytest
from textual.app import App, ComposeResult
from textual.reactive import reactive
from textual.widgets import Input, Static

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.panes.steering import SteeringPane
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until


class SteerApp(App):
    """No #prompt box and no Pairing pane: the pane works from what is handed down alone."""

    session = reactive(None)
    prompt = reactive("The capital of France is")
    pairing_selection = reactive(())

    def __init__(self, session):
        super().__init__()
        self.set_reactive(SteerApp.session, session)

    def compose(self) -> ComposeResult:
        yield SteeringPane(id="steering").data_bind(SteerApp.session, SteerApp.prompt, SteerApp.pairing_selection)


def text_of(app, selector):
    return str(app.query_one(selector, Static).render())


async def setup(pilot, app, features="coarse:3:2 fine:10:1"):
    pane = app.query_one(SteeringPane)
    pane.tokens, pane.n_seeds, pane.sweep = 3, 2, (0.0, 4.0)
    # The fake's labels have no contexts to take concept words from (see the test below): give some.
    for selector, value in (("#steer-words", "Paris, France"), ("#steer-features", features)):
        box = app.query_one(selector, Input)
        box.focus()
        box.value = value
        await pilot.press("enter")
        await pilot.pause()
    return pane


@pytest.mark.asyncio
async def test_without_words_a_feature_with_no_labelled_contexts_asks_for_them():
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(SteeringPane)
        pane.tokens, pane.n_seeds = 2, 1
        box = app.query_one("#steer-features", Input)
        box.focus()
        box.value = "coarse:3:2"
        await pilot.press("enter")
        await pilot.pause()
        pane.action_generate()
        await until(pilot, lambda: "word list" in text_of(app, "#steer-status"))
        assert not pane.busy


@pytest.mark.asyncio
async def test_generate_side_by_side_with_effect_and_cost():
    app = SteerApp(fake_with_saes())
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
        assert pane.report.spec.method == "add" and pane.report.prompt == "The capital of France is"
        for name, col in [("baseline", "baseline"), ("coarse", "coarse"), ("fine", "fine"),
                          ("coarse+fine", "coarse-fine")]:
            body = text_of(app, f"#steer-col-{col}")
            assert body.startswith(name) and "seed 0:" in body and "seed 1:" in body
            assert "effect: concept act" in body and "concept words" in body and "perplexity" in body
        assert [r.seed for r in pane.report.cell("fine").runs] == [0, 1]
        assert "coarse:3:3" in text_of(app, "#steer-col-coarse")
        assert "1 = act" in " ".join(app.query_one("#steer-feature-table", FastTable).row_text(0))
        steered = {r.token_ids for r in pane.report.cell("coarse+fine").runs}
        assert steered != {r.token_ids for r in pane.report.cell("baseline").runs}  # the edits took effect
        assert not app.query_one("#steer-stale").display


@pytest.mark.asyncio
async def test_a_report_is_marked_stale_when_the_prompt_or_a_setting_changes():
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app)
        await pilot.press("g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        stale = app.query_one("#steer-stale", Static)
        assert not stale.display
        app.prompt = "My favourite place"  # the user types in the app's prompt box
        await pilot.pause()
        assert stale.display and "stale: computed for 'The capital of France is'" in text_of(app, "#steer-stale")
        app.prompt = "The capital of France is"
        await pilot.pause()
        assert not stale.display
        await pilot.press("plus")
        assert stale.display and "stale: computed for coarse:3:2 fine:10:1" in text_of(app, "#steer-stale")
        await pilot.press("minus", "o")
        assert "positions all" in text_of(app, "#steer-stale")
        await pilot.press("o")
        assert not stale.display
        app.prompt = "My favourite place"
        await pilot.press("g")
        await until(pilot, lambda: pane.report.prompt == "My favourite place" and not pane.busy)
        assert not stale.display


@pytest.mark.asyncio
async def test_sweep_plots_and_bad_input():
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app, "coarse:999")
        assert "0..63" in text_of(app, "#steer-status") and pane.features == []
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
async def test_features_from_the_handed_down_selection_and_cancel(monkeypatch):
    fake = fake_with_saes()
    forward = fake.forward

    def slow_forward(ids, **kw):
        time.sleep(0.01)  # long enough to press escape in the middle
        return forward(ids, **kw)

    monkeypatch.setattr(fake, "forward", slow_forward)
    app = SteerApp(fake)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(SteeringPane)
        app.query_one("#steer-feature-table", FastTable).focus()
        await pilot.press("f")
        assert "no features selected" in text_of(app, "#steer-status") and pane.features == []
        app.pairing_selection = (("coarse", 3), ("fine", 10))
        await pilot.pause()
        await pilot.press("f")
        assert [f.label() for f in pane.features] == ["coarse:3:1", "fine:10:1"]
        assert app.query_one("#steer-features", Input).value == "coarse:3:1 fine:10:1"
        pane.tokens, pane.n_seeds = 40, 4
        pane.words = ["Paris"]  # the fake's labels have no contexts to take words from
        await pilot.press("g")
        await until(pilot, lambda: "working" in text_of(app, "#steer-status"))
        await pilot.press("escape")
        await until(pilot, lambda: not pane.busy)
        assert "Cancelled" in text_of(app, "#steer-status") and pane.report is None


@pytest.mark.asyncio
async def test_the_pairing_selection_reaches_steering_through_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    fake = fake_with_saes()
    app = SpectrascopeApp(lambda progress: fake, prompt="The capital of France is", output_dir=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        pairing = app.query_one("#pairing")
        await pilot.press("f4", "r")
        await until(pilot, lambda: pairing.result is not None and not pairing.busy)
        await until(pilot, lambda: app.pairing_selection == tuple(pairing.selected_features()))
        await pilot.press("f5")
        steering = app.query_one(SteeringPane)
        # Wait for what a person waits for: the pane shown, its table focused, the selection bound.
        await until(pilot, lambda: steering.pairing_selection == app.pairing_selection)
        assert steering.prompt == "The capital of France is" and steering.session is fake
        # The action behind `f` (its key is tested above): after the 1,000-random-keys test in the
        # same process, F5 did not always focus the Steering table (an open question, see the note).
        steering.action_from_pairing()
        await pilot.pause()
        assert [(f.role, f.id) for f in steering.features] == pairing.selected_features()


@pytest.mark.asyncio
@pytest.mark.parametrize("typed", ["coarse:3:1e308", "coarse:3:1e-320", "coarse:3:-101"])
async def test_out_of_range_strengths_are_rejected_at_input_with_the_range(typed):
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app, typed)
        status = text_of(app, "#steer-status")
        assert "out of range" in status and "0.001 to 100" in status and pane.features == []


@pytest.mark.asyncio
async def test_strengths_print_short_and_every_feature_has_a_visible_row():
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app, "coarse:1:0.123456 coarse:2 coarse:3 coarse:4 fine:5 fine:6 fine:6")
        table = app.query_one("#steer-feature-table", FastTable)
        assert len(pane.features) == 6 and "6 features ·" in text_of(app, "#steer-status")
        assert table.row_count == 6 and table.size.height == 7  # a header and all six rows on screen
        assert table.row_text(0)[2] == "0.1235"
        await pilot.press(*["plus"] * 200)  # + stops at the documented maximum
        assert pane.features[0].strength <= 100 and "within ±100" in text_of(app, "#steer-status")


@pytest.mark.asyncio
async def test_sweep_legend_reads_without_colour_and_cost_is_on_a_log_scale():
    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(160, 45)) as pilot:
        pane = await setup(pilot, app)
        await pilot.press("w")
        await until(pilot, lambda: pane.sweep_report is not None and not pane.busy)
        effect, cost = text_of(app, "#steer-plot-effect"), text_of(app, "#steer-plot-cost")
        assert all(glyph in effect for glyph in ("o coarse", "x fine", "+ coarse+fine", "· baseline"))
        assert "cost: perplexity (log scale)" in cost


def test_a_chart_after_the_drift_grid_is_drawn_alone():
    """CI once showed the Anchor pane's 1x3 drift grid inside the Steering plots: plotext's global figure
    kept the grid, and clf() cleared only its last cell."""
    from types import SimpleNamespace

    from spectrascope.tui.widgets.anchor_plots import plot_drift
    from spectrascope.tui.widgets.steering_columns import plot_curves

    point = SimpleNamespace(tokens=10, turns=1, kl=0.5, attention_share=0.2, target_rank=3)
    drift = SimpleNamespace(points=[point], restated=[point], halving_turns=1, target=(5, " Paris"))
    assert "attention → system" in plot_drift(drift, 90, 12)
    cell = SimpleNamespace(strength=1.0, perplexity=12.0)
    base = SimpleNamespace(strength=0.0, perplexity=10.0)
    report = SimpleNamespace(configs=["coarse", "baseline"], curve=lambda name: [cell], cell=lambda name: base,
                             cells=[cell])
    chart = plot_curves(report, "perplexity", 60, 12)
    assert "cost: perplexity (log scale)" in chart and "attention → system" not in chart


def column_lines(widget):
    """A steering column as it is on screen, one string per line of its content (no rule, no padding)."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


def assert_whole_units(lines, start, units):
    """`units` fill lines[start:] in order, each on one line (a continued line may drop a unit's
    leading space): no unit is split across a line break."""
    row, pos = start, 0
    for unit in units:
        line = lines[row]
        if not line[pos:].startswith(unit):
            assert not line[pos:].strip(), f"{unit!r} split or misplaced at line {row}: {line!r}"
            row, pos = row + 1, 0
            line = lines[row]
            unit = unit if line.startswith(unit) else unit.lstrip(" ")
            assert line.startswith(unit), f"{unit!r} does not start line {row}: {line!r}"
        pos += len(unit)
    assert not lines[row][pos:].strip()


@pytest.mark.asyncio
@pytest.mark.parametrize("width", [80, 200])
async def test_special_tokens_are_marked_counted_and_no_token_splits_across_lines(width):
    from spectrascope.core.text import visible
    from spectrascope.tui.widgets.steering_columns import RunColumn, run_units
    from tests.tui.fake_session import VOCAB

    fake = fake_with_saes()
    fake.special_ids = frozenset(range(0, len(VOCAB), 3))  # every third token is a control token
    app = SteerApp(fake)
    async with app.run_test(size=(width, 60)) as pilot:
        pane = await setup(pilot, app)
        pane.tokens = 16
        await pilot.press("g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        await pilot.pause()
        for name in pane.report.configs:
            cell = pane.report.cell(name)
            widget = app.query_one(f"#steer-col-{name.replace('+', '-')}", RunColumn)
            lines = column_lines(widget)
            sampled = [[i for i in run.token_ids if i in fake.special_ids] for run in cell.runs]
            total = sum(map(len, sampled))
            header = " ".join(lines[:2])  # a narrow column wraps the header at its spaces
            assert total and header.startswith(f"{name} · ") and f"{total} special token" in header
            for run, ids in zip(cell.runs, sampled):
                start = next(r for r, line in enumerate(lines) if line.startswith(f"seed {run.seed}: "))
                units = [f"seed {run.seed}: ", *(u.text for u in run_units(run))]
                if run.concept_words:
                    units.append(" [" + ", ".join(run.concept_words) + "]")
                assert_whole_units(lines, start, units)
                body = "".join(lines[start:])
                assert all(f"⟨{visible(VOCAB[i])}⟩" in body for i in ids)
                assert not {VOCAB[i] for i in ids} & {u.text for u in run_units(run)}  # never as plain text


def test_token_wrap_breaks_only_between_units_unless_one_is_wider_than_the_line():
    import random

    from rich.cells import cell_len

    from spectrascope.tui.token_wrap import Unit, wrap_units

    rng = random.Random(0)
    alphabet = ["a", "b", "é", "東", " ", "⟨x⟩"]
    for _ in range(300):
        units = [Unit("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))), alone=rng.random() < 0.2)
                 for _ in range(rng.randint(1, 20))]
        width = rng.randint(2, 30)
        lines = wrap_units(units, width)
        assert all(sum(cell_len(u.text) for u in line) <= width for line in lines)
        pieces = [u for line in lines for u in line]
        # Every unit that fits a line comes out whole (bar a leading space dropped at a line start).
        whole = [u for u in units if cell_len(u.text) <= width]
        shown = {u.text for u in pieces} | {u.text.lstrip(" ") for u in pieces}
        assert all(u.text in shown or u.text.lstrip(" ") in shown for u in whole)
        assert "".join(u.text for u in pieces).replace(" ", "") == "".join(u.text for u in units).replace(" ", "")


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)])
async def test_column_rules_run_the_full_height_at_every_size(size):
    """Each column's rule is drawn on every line of the columns' row, however short its text, and
    effect and cost stay on screen even where the texts are cropped."""
    from spectrascope.tui.widgets.steering_columns import RunColumn

    app = SteerApp(fake_with_saes())
    async with app.run_test(size=size) as pilot:
        pane = await setup(pilot, app)
        pane.tokens = 16
        await pilot.press("g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        await pilot.pause()
        screen = [strip.text for strip in app.screen._compositor.render_strips()]
        row = app.query_one("#steer-columns").region
        columns = [c for c in app.query(RunColumn) if c.display]
        assert len(columns) == 4 and row.height >= 3
        for col in columns:
            x = col.region.x  # the rule is the column's left edge
            assert all(screen[y][x] == "│" for y in range(row.y, row.bottom)), (col.id, x)
            shown = [screen[y][x:col.region.right] for y in range(row.y, row.bottom)]
            assert any("perplexity" in line or "ppl" in line for line in shown), (col.id, shown)


@pytest.mark.asyncio
async def test_tokens_are_marked_where_the_concept_feature_fired_most():
    """The strongest marks sit on the pieces with the largest unsteered readback of the concept
    feature (its per-token trace), on screen; silent tokens carry no mark; the header names it."""
    from rich.color import Color

    from spectrascope.core.text import visible
    from spectrascope.tui.widgets.steering_columns import MARK_STYLES, RunColumn, run_units
    from rich.style import Style

    app = SteerApp(fake_with_saes())
    async with app.run_test(size=(200, 60)) as pilot:
        pane = await setup(pilot, app, "coarse:44:2 fine:10:1")  # coarse 44 fires on some generated tokens
        pane.tokens = 6
        await pilot.press("g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        await pilot.pause()
        strongest = Style.parse(MARK_STYLES[-1]).bgcolor
        marked_cells = 0
        for name in pane.report.configs:
            cell = pane.report.cell(name)
            widget = app.query_one(f"#steer-col-{name.replace('+', '-')}", RunColumn)
            lines = column_lines(widget)
            assert "concept feature coarse #44, unsteered readback" in " ".join(lines[:8])  # it may wrap
            top = max(v for run in cell.runs for v in run.concept_trace)
            if top <= 0:
                continue
            marked_cells += 1
            on_screen = "".join(seg.text for y in range(widget.size.height) for seg in widget.render_line(y)
                                if seg.style is not None and seg.style.bgcolor == strongest)
            for run in cell.runs:
                trace = run.piece_trace()
                styles = [u.style for u in run_units(run, top)]  # no special tokens here: one unit per piece
                strong = [t for t, s in zip(trace, styles) if s == MARK_STYLES[-1]]
                weaker = [t for t, s in zip(trace, styles) if s != MARK_STYLES[-1]]
                assert all(t >= 2 / 3 * top for t in strong) and all(t < 2 / 3 * top for t in weaker)
                assert all(s == "" for t, s in zip(trace, styles) if t == 0)
                for piece, t in zip(run.pieces, trace):
                    if t == top:  # the column's largest firing is marked strongest, on screen
                        assert visible(piece.text, mark_spaces=False).strip() in on_screen
        assert marked_cells >= 2
        assert Color.parse("#5fd75f") == strongest


@pytest.mark.asyncio
async def test_the_concept_words_are_the_features_own_shown_in_the_field_and_editable():
    """Issue 35: the words come from the concept feature (top contexts, whole-word promoted tokens), show in the
    field before any run, count every form (Japanese: Japan too), and words the user types stay theirs."""
    from spectrascope.core.engine.labels import FeatureLabel

    session = fake_with_saes()
    label = FeatureLabel(3, (" w1", " Tokyo"), ((9.0, "in [[ Kyoto]] and"), (8.0, "the[[ Japanese]] garden")))
    session.labels["coarse"].get = lambda feature: label
    app = SteerApp(session)
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(SteeringPane)
        pane.tokens, pane.n_seeds = 2, 1
        words = app.query_one("#steer-words", Input)
        box = app.query_one("#steer-features", Input)
        box.focus()
        box.value = "coarse:3:2"
        await pilot.press("enter")
        await until(pilot, lambda: words.value == "Kyoto, Japanese, Tokyo")
        status = text_of(app, "#steer-status")
        assert "coarse:3's top contexts and promoted tokens" in status and "Japan" in status
        assert pane.words is None  # still the feature's own: the Spec says "from the concept feature"
        await pilot.press("g")
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        assert pane.report.words == ("Kyoto", "Japanese", "Tokyo")
        assert pane.report.words_source == "coarse:3's top contexts and promoted tokens"

        words.focus()  # the user's own list: kept, and used
        words.value = "Kyoto, Osaka"
        await pilot.press("enter")
        assert pane.words == ["Kyoto", "Osaka"] and pane.get_state()["words"] == ["Kyoto", "Osaka"]
        box.focus()
        box.value = "coarse:3:1"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert words.value == "Kyoto, Osaka" and pane.words == ["Kyoto", "Osaka"]
        words.focus()
        words.value = "Kyoto, Japanese, Tokyo"  # the offered list again: the feature's own once more
        await pilot.press("enter")
        assert pane.words is None
