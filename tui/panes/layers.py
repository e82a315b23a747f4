"""The Layers pane (F6): the logit lens at one token of the prompt, layer by layer, and where each
position's prediction settles (core/lens.py; `spectrascope lens` prints the same report). The table
shows first; the settled grid, the costly part, follows from the same forward (bench/bench_lens.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.fast_table import Column, FastTable

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI


@dataclass
class LensReady(Message):
    key: tuple[str, int, bool]  # (prompt, position, tuned) the report is for
    report: Any = None  # core.lens.LensReport, its grid still empty
    stream: Any = None  # core.lens.Stream it was read from, kept for the grid and other tokens
    error: BaseException | None = None


@dataclass
class TunedReady(Message):
    lens: Any = None  # core.tuned_lens.TunedLens
    error: BaseException | None = None


@dataclass
class TunedProgress(Message):
    text: str


@dataclass
class GridReady(Message):
    prompt: tuple[str, bool]  # (prompt, tuned) the grid is for
    grid: Any = None  # layers x positions, core.lens.lens_grid
    error: BaseException | None = None


SETTLED_WIDTH = 32  # tokens the settled column shows at most: a window around the selected one


def settled_window(n: int, position: int, width: int = SETTLED_WIDTH) -> range:
    """The positions the settled column shows: all of them, or `width` around `position`."""
    if n <= width:
        return range(n)
    start = max(0, min(position - width // 2, n - width))
    return range(start, start + width)


def settled_spans(settled: tuple[bool, ...], shown: range, position: int) -> tuple[tuple[str, str], ...]:
    """One layer's row of the settled grid as cell spans: █ where that token's final top-1 is already
    top-1 here, · where not; the selected token yellow."""
    return tuple(("█" if settled[i] else "·",
                  "bold yellow" if i == position else ("green" if settled[i] else "grey30")) for i in shown)


class LayersPane(Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#layers-table"
    pane_title = "Layers"
    BINDINGS = [
        Binding("left,h", "position(-1)", "◀ token"),
        Binding("right,l", "position(1)", "token ▶"),
        Binding("u", "tuned", "Tuned lens"),
    ]
    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # from the app

    DEFAULT_CSS = """
    LayersPane { height: 1fr; }
    #layers-header { height: auto; }
    #layers-body { height: 1fr; }
    #layers-table { height: 1fr; }
    #layers-strip { height: auto; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result: Any = None
        self.position = -1  # -1 follows the last token
        self.table: Any = None  # the shown LensReport, its grid () until it arrives
        self.report: Any = None  # the whole report (table and grid) once both are in: what export writes
        self._wanted: tuple[str, int] | None = None
        # The table comes first; the grid (every layer x token through the unembedding, the costly
        # part) follows from the same forward's stream, once per prompt, and stays for ←/→.
        self._stream: Any = None  # core.lens.Stream of the shown prompt
        self._grid_prompt: tuple[str, bool] | None = None  # (prompt, tuned) whose grid is computed or on its way
        self._grid: Any = None
        # `u`: read each layer through fitted translators (core/tuned_lens.py) instead of as it is.
        self.tuned_on = False
        self._tuned: Any = None  # core.tuned_lens.TunedLens for this session's model, once fitted
        self._fitting = False

    def compose(self) -> ComposeResult:
        yield Static("", id="layers-header")
        yield FastTable(id="layers-table")
        yield Static("", id="layers-strip")

    def on_mount(self) -> None:
        self._set_columns(7)
        self.query_one("#layers-header", Static).update(Text("The logit lens appears here after a prompt runs.",
                                                             style="grey50"))

    def _set_columns(self, settled_width: int) -> None:
        self.query_one("#layers-table", FastTable).set_columns([
            Column("layer", 5, True), Column("rank", 6, True), Column("p", 6, True), Column("entropy", 7, True),
            Column("|x|", 7, True), Column("top-3 dims", 10, True), Column("settled", settled_width),
            Column("top tokens", 60)])

    def watch_session(self) -> None:
        self._stream, self._grid_prompt, self._grid = None, None, None  # another model: read it again
        self._tuned = None

    # ---- session file and export (app conventions) ------------------------------------------------
    def get_state(self) -> dict:
        return {"position": self.position, "tuned": self.tuned_on}

    def set_state(self, state: dict) -> None:
        self.position = int(state.get("position", -1))
        self.tuned_on = bool(state.get("tuned", False))

    def export(self, folder) -> list:
        """The shown lens report as JSON (ctrl+e), the same as `spectrascope lens --json`."""
        if self.report is None:
            return []  # the grid is still on its way (or nothing ran)
        from spectrascope.tui.export import export_files, new_stem

        prompt = self.result.prompt if self.result is not None else ""
        return export_files(new_stem(folder, "lens", f"{prompt} pos {self.report.position}"), self.report.to_dict())

    # ---- inputs ---------------------------------------------------------------------------------
    def show_result(self, result) -> None:
        """A new prompt: read it layer by layer when this pane is on screen (the lens costs a forward)."""
        self.result = result
        if self.position != -1:
            self.position = min(self.position, len(result.tokens) - 1)
        if self.is_on_screen:
            self.refresh_lens()

    @property
    def is_on_screen(self) -> bool:
        # An inactive tab's pane (or an ancestor) has display off; no need to ask the app.
        return self.is_mounted and all(node.display for node in self.ancestors_with_self if hasattr(node, "display"))

    def shown(self) -> None:
        self.refresh_lens()  # the lens costs a forward: it runs only when on screen

    def refresh_lens(self) -> None:
        if self.result is None or self.session is None:
            return
        if self.tuned_on and self._tuned is None:
            self._fit_tuned_lens()
            return
        key = (self.result.prompt, self.position, self.tuned_on)
        if self.table is not None and key == self._wanted:
            return
        self._wanted = key
        self.query_one("#layers-header", Static).update(Text("reading every layer…", style="grey50"))
        stream = self._stream if self._stream is not None and self._stream.prompt == key[0] else None
        self._lens(self.session, key, stream, self._tuned if self.tuned_on else None)

    def action_tuned(self) -> None:
        self.tuned_on = not self.tuned_on
        self.refresh_lens()

    def _fit_tuned_lens(self) -> None:
        if self._fitting or self.session is None:
            return
        self._fitting = True
        self.query_one("#layers-header", Static).update(Text(
            "fitting the tuned lens on the shipped prompt sets (once per model, then cached)… u: back to the logit lens",
            style="grey50"))
        self._tuned_worker(self.session)

    @work(thread=True, exclusive=True, exit_on_error=False, group="layers-tuned")
    def _tuned_worker(self, session: SessionAPI) -> None:
        from spectrascope.core.analysis.tuned_lens import tuned_lens

        def say(text: str, frac: float | None) -> None:
            self.post_message(TunedProgress(text))  # post_message is thread-safe

        try:
            self.post_message(TunedReady(tuned_lens(session, progress=say)))
        except Exception as exc:  # noqa: BLE001 - shown in the header; the logit lens still works
            self.post_message(TunedReady(error=exc))

    def on_tuned_progress(self, message: TunedProgress) -> None:
        if self.tuned_on and self._tuned is None:
            self.query_one("#layers-header", Static).update(
                Text(f"{message.text}… u: back to the logit lens", style="grey50"))

    def on_tuned_ready(self, message: TunedReady) -> None:
        self._fitting = False
        if message.error is not None:
            self.tuned_on = False
            self.query_one("#layers-header", Static).update(
                Text("tuned lens: " + one_line(describe(message.error), 300), style="bold red"))
            return
        self._tuned = message.lens
        if self.tuned_on:
            self.refresh_lens()

    def action_position(self, delta: int) -> None:
        if self.result is None:
            return
        n = len(self.result.tokens)
        pos = (self.position % n) + delta
        self.position = max(1 if n > 1 else 0, min(n - 1, pos))
        if self.position == n - 1:
            self.position = -1  # at the end again: follow the typing
        self.refresh_lens()

    @work(thread=True, exclusive=True, exit_on_error=False, group="layers")
    def _lens(self, session: SessionAPI, key: tuple[str, int, bool], stream: Any = None, tuned: Any = None) -> None:
        """The table at one token: a forward unless this prompt's stream is kept."""
        from spectrascope.core.analysis.lens import lens_table, read_stream

        try:
            stream = stream or read_stream(session, key[0])
            report = lens_table(session, stream, key[1], tuned=tuned)
        except Exception as exc:  # noqa: BLE001 - shown in the header; the pane keeps running
            self.post_message(LensReady(key, error=exc))
            return
        self.post_message(LensReady(key, report, stream))

    @work(thread=True, exclusive=True, exit_on_error=False, group="layers-grid")
    def _settled(self, session: SessionAPI, stream: Any, tuned: Any = None) -> None:
        from spectrascope.core.analysis.lens import lens_grid

        key = (stream.prompt, tuned is not None)
        try:
            self.post_message(GridReady(key, lens_grid(session, stream, tuned)))
        except Exception as exc:  # noqa: BLE001 - shown under the table
            self.post_message(GridReady(key, error=exc))

    def on_lens_ready(self, message: LensReady) -> None:
        if message.key != self._wanted:
            return  # a newer prompt or position was asked for
        header = self.query_one("#layers-header", Static)
        if message.error is not None:
            self.table = self.report = None
            header.update(Text(one_line(describe(message.error), 300), style="bold red"))
            return
        self._stream = message.stream
        grid_key = (message.stream.prompt, message.key[2])
        if self._grid_prompt != grid_key:  # a new prompt or lens: its grid, once, after this table
            self._grid_prompt, self._grid = grid_key, None
            if self.session is not None:
                self._settled(self.session, message.stream, self._tuned if message.key[2] else None)
        self.table = rep = message.report
        self.report = None if self._grid is None else replace(rep, settled=self._grid)
        target = visible(rep.target[1])
        through = ("each layer's translator + " if message.key[2] else "") + "final norm + unembedding"
        header.update(Text(
            f"{rep.lens} · token {rep.position} {visible(rep.tokens[rep.position])!s} · final top-1 {target} · top-1 "
            f"from layer {rep.commitment} on · ←/→ token · rank/p of {target} via {through}", style="bold"))
        self._draw_table()

    def on_grid_ready(self, message: GridReady) -> None:
        if message.prompt != self._grid_prompt:
            return  # an older prompt's grid
        if message.error is not None:
            self._grid_prompt = None  # the next table tries again
            self.query_one("#layers-strip", Static).update(
                Text("settled grid: " + one_line(describe(message.error), 300), style="bold red"))
            return
        self._grid = message.grid
        if self.table is not None and (self.table.prompt, self._wanted[2]) == message.prompt:
            self.report = replace(self.table, settled=message.grid)
        self._draw_table()

    def _draw_table(self) -> None:
        """The table rows, each with its layer's row of the settled grid once the grid is in."""
        rep, note = self.table, self.query_one("#layers-strip", Static)
        if rep is None:
            return
        grid = self.report.settled if self.report is not None else None
        shown = settled_window(len(rep.tokens), rep.position)
        table = self.query_one("#layers-table", FastTable)
        cursor = table.cursor
        width = max(len("settled"), len(shown))
        if table.columns[table.column_names.index("settled")].width != width:
            self._set_columns(width)
        cells = []
        for layer, row in enumerate(rep.rows):
            style = "bold green" if row.target_rank == 1 else ""
            tops = "  ".join(f"{visible(piece, 16)} {p:.2f}" for _, piece, p in row.top)
            settled = settled_spans(grid[layer], shown, rep.position) if grid else (("…", "grey50"),)
            cells.append([(row.layer, "bold" if row.layer == rep.commitment else ""), (str(row.target_rank), style),
                          (f"{row.target_prob:.3f}", style), (f"{row.entropy:.2f}", ""), (f"{row.norm:.0f}", ""),
                          (f"{row.massive_share:.0%}", "grey62"), (settled, ""), (tops, "")])
        table.set_rows(cells, [r.layer for r in rep.rows])
        table.cursor = min(cursor, max(0, table.row_count - 1))
        where = "" if len(shown) == len(rep.tokens) else f"; tokens {shown.start}–{shown.stop - 1} of {len(rep.tokens)}"
        note.update(Text(
            "settled: is each token's final top-1 already top-1 at this layer? █ yes, · no (yellow: this token"
            f"{where})" if grid else "settled: reading every layer × token through the unembedding…", style="grey50"))
