"""Every pane at 80x24 (stacks or scrolls, never overlaps, tables keep rows), 100x30 and 130x42 (the talk's
terminal) and at 200x50 (spreads out); at every size no table's label column is cut below a readable width.

Snapshots on the deterministic fake session; each pane is filled first (seeded runs, a pairing run, a
steering comparison, a system prompt) so the picture shows the pane in use, not empty.
"""

import pytest
from textual.widgets import Input

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.pilot import until
from tests.tui.fake_session import fake_with_saes

SIZES = {"80x24": (80, 24), "100x30": (100, 30), "130x42": (130, 42), "200x50": (200, 50)}
READABLE_LABEL = 20  # cells a label column shows at least: "fires on: " and a word (the rehearsal saw "fires on: Fr")


def fake_app(tmp_path):
    session = fake_with_saes()
    return SpectrascopeApp(lambda progress: session, prompt="The capital of France is", output_dir=tmp_path)


async def loaded(pilot):
    await until(pilot, lambda: pilot.app.result is not None)


async def still(pilot):
    """No blinking cursor and nothing left to draw."""
    for inp in pilot.app.query(Input):
        inp.cursor_blink = False
    await pilot.pause(0.2)


async def fill_logits(pilot):
    pilot.app.query_one("#logits-table").focus()
    await pilot.press("n")  # seeded runs: a second table under (or beside) the distribution
    pane = pilot.app.query_one("#logits")
    await until(pilot, lambda: pane.runs is not None and not pane.busy)


async def fill_spectrum(pilot):
    await pilot.press("f3")
    pane = pilot.app.query_one("#spectrum")
    await until(pilot, lambda: not pane.labelling and not pane.view().pending())


async def fill_pairing(pilot):
    await pilot.press("f4")
    pane = pilot.app.query_one("#pairing")
    await pilot.press("r")
    await until(pilot, lambda: pane.result is not None and not pane.busy, timeout=30)


async def fill_steering(pilot):
    await pilot.press("f5")
    pane = pilot.app.query_one("#steering")
    pane.tokens, pane.n_seeds = 4, 2
    for selector, value in (("#steer-words", "Paris, France"), ("#steer-features", "coarse:3:2 fine:10:1")):
        box = pilot.app.query_one(selector, Input)
        box.focus()
        box.value = value
        await pilot.press("enter")
    await pilot.press("g")
    await until(pilot, lambda: pane.report is not None and not pane.busy, timeout=30)


async def fill_layers(pilot):
    await pilot.press("f6")
    pane = pilot.app.query_one("#layers")
    await until(pilot, lambda: pane.report is not None)


async def fill_anchor(pilot):
    pilot.app.query_one("#logits-system", Input).value = "You are a helpful assistant who loves France."
    await pilot.press("f8")
    pane = pilot.app.query_one("#anchor")
    await until(pilot, lambda: pane.report is not None and pane.navigator is not None)
    pane.query_one("#anchor-table").focus()


PANES = {"logits": fill_logits, "spectrum": fill_spectrum, "pairing": fill_pairing, "steering": fill_steering,
         "layers": fill_layers, "anchor": fill_anchor}


class FrozenClock:
    """`time` with perf_counter stopped: "done in 0.0 s" on every machine, however loaded."""

    @staticmethod
    def perf_counter() -> float:
        return 0.0

    def __getattr__(self, name):
        import time

        return getattr(time, name)


@pytest.fixture(autouse=True)
def cache_and_clock(tmp_path, monkeypatch):
    from spectrascope.core.analysis import contrast; from spectrascope.core.analysis import steering

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    for module in (contrast, steering):  # the two reports that time themselves for the status line
        monkeypatch.setattr(module, "time", FrozenClock())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("pane", PANES)
def test_pane_at_size(snap_compare, tmp_path, pane, size):
    async def run_before(pilot):
        await loaded(pilot)
        await PANES[pane](pilot)
        await still(pilot)

    assert snap_compare(fake_app(tmp_path), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.asyncio
@pytest.mark.parametrize("pane", PANES)
async def test_at_80x24_no_widget_overlaps_another_and_tables_keep_rows(tmp_path, pane):
    """What the snapshots show, as a check that names the widget: siblings never share a cell."""
    from textual.containers import Horizontal, Vertical

    from spectrascope.tui.widgets.fast_table import FastTable

    app = fake_app(tmp_path)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await loaded(pilot)
        await PANES[pane](pilot)
        await pilot.pause(0.2)
        shown = app.query_one(f"#{pane}")
        for box in shown.query("Horizontal, Vertical").results():
            if not isinstance(box, (Horizontal, Vertical)) or not box.display:
                continue
            kids = [w for w in box.children if w.display and w.region.area]
            for i, a in enumerate(kids):
                for b in kids[i + 1:]:
                    assert not a.region.overlaps(b.region), f"{a} overlaps {b} in {box}"
        for table in shown.query(FastTable).results():
            if table.display and table.row_count:  # a header and 3 rows, or all of them
                want = min(4, table.row_count + 1)
                assert table.size.height >= want, f"{table.id} has {table.size.height} lines at 80x24"


def label_widths(pane) -> dict[str, int]:
    """Each shown table's label column (by its header: "label…") and the cells of it on screen."""
    from spectrascope.tui.widgets.fast_table import FastTable

    out = {}
    for table in pane.query(FastTable).results():
        if not (table.display and table.row_count and table.region.area):
            continue
        x = 0
        for col in table.columns:
            if col.name.startswith("label"):
                out[f"{table.id}.{col.name}"] = min(col.width, table.size.width - x)
            x += col.width + 1
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("pane", PANES)
async def test_no_table_label_is_cut_below_a_readable_width(tmp_path, pane, size):
    app = fake_app(tmp_path)
    async with app.run_test(size=SIZES[size]) as pilot:
        await loaded(pilot)
        await PANES[pane](pilot)
        await pilot.pause(0.2)
        for column, width in label_widths(app.query_one(f"#{pane}")).items():
            assert width >= READABLE_LABEL, f"{column} shows {width} cells at {size} (at least {READABLE_LABEL})"


@pytest.mark.asyncio
@pytest.mark.parametrize("size", ["80x24", "130x42"])
async def test_the_layers_table_takes_every_line_the_header_and_note_leave(tmp_path, size):
    """The rehearsal saw 6 rows over 6 empty lines at 80x24 (the note under the table shared the height)."""
    app = fake_app(tmp_path)
    async with app.run_test(size=SIZES[size]) as pilot:
        await loaded(pilot)
        await fill_layers(pilot)
        await pilot.pause(0.2)
        pane = app.query_one("#layers")
        header, table, note = (pane.query_one(f"#layers-{part}") for part in ("header", "table", "strip"))
        assert note.size.height <= 2  # the note's own lines, no blank ones under them
        assert table.size.height == pane.size.height - header.size.height - note.size.height
