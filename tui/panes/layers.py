"""The Layers pane (F6): the logit lens at one token of the prompt, layer by layer, and where each
position's prediction settles (core/views/layers.py; `spectrascope lens` prints the same report). The table
shows first; the settled grid, the costly part, follows from the same forward (bench/bench_lens.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.fast_table import Column, FastTable

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
    focus_target = "#layers-table"
    export_kind = "lens"
    BINDINGS = [
        Binding("left,h", "position(-1)", "◀ token"),
        Binding("right,l", "position(1)", "token ▶"),
        Binding("u", "tuned", "Tuned lens"),
    ]

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
        self._wanted: tuple[str, int, bool] | None = None  # (prompt, position, tuned) of the newest table asked for
        # The table comes first; the grid (every layer x token through the unembedding, the costly
        # part) follows from the same forward's stream, once per prompt, and stays for ←/→.
        self._stream: Any = None  # core.analysis.lens.Stream of the shown prompt
        self._grid_prompt: tuple[str, bool] | None = None  # (prompt, tuned) whose grid is computed or on its way
        self._grid: Any = None
        # `u`: read each layer through fitted translators (core/analysis/tuned_lens.py) instead of as it is.
        self.tuned_on = False
        self._tuned: Any = None  # core.analysis.tuned_lens.TunedLens for this session's model, once fitted

    def compose(self) -> ComposeResult:
        yield Static("", id="layers-header")
        yield FastTable(id="layers-table")
        yield Static("", id="layers-strip")

    def on_mount(self) -> None:
        self._set_columns(7)
        self._header("The logit lens appears here after a prompt runs.", "grey50")

    def _set_columns(self, settled_width: int) -> None:
        self.query_one("#layers-table", FastTable).set_columns([
            Column("layer", 5, True), Column("rank", 6, True), Column("p", 6, True), Column("entropy", 7, True),
            Column("|x|", 7, True), Column("top-3 dims", 10, True), Column("settled", settled_width),
            Column("top tokens", 60)])

    def _header(self, text: str, style: str) -> None:
        self.query_one("#layers-header", Static).update(Text(text, style=style))

    def watch_session(self) -> None:
        self._stream, self._grid_prompt, self._grid = None, None, None  # another model: read it again
        self._tuned = None

    # ---- session file and export ------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"position": self.position, "tuned": self.tuned_on}

    def set_state(self, state: dict) -> None:
        self.position = int(state.get("position", -1))
        self.tuned_on = bool(state.get("tuned", False))

    def export_doc(self) -> tuple[dict, None, str] | None:
        """The shown lens report, the same as `spectrascope lens --json`; None while the grid is on its way."""
        if self.report is None:
            return None
        prompt = self.result.prompt if self.result is not None else ""
        return self.report.to_dict(), None, f"{prompt} pos {self.report.position}"

    # ---- inputs ---------------------------------------------------------------------------------
    def show_result(self, result) -> None:
        """A new prompt: read it layer by layer when this pane is on screen (the lens costs a forward)."""
        self.result = result
        if self.position != -1:
            self.position = min(self.position, len(result.tokens) - 1)
        if self.is_on_screen:
            self.refresh_lens()

    def shown(self) -> None:
        self.refresh_lens()  # the lens costs a forward: it runs only when on screen

    def refresh_lens(self) -> None:
        from spectrascope.core.views import layers

        if self.result is None or self.session is None:
            return
        if self.tuned_on and self._tuned is None:
            self._fit_tuned_lens()
            return
        key = (self.result.prompt, self.position, self.tuned_on)
        if self.table is not None and key == self._wanted:
            return
        self._wanted = key
        self._header("reading every layer…", "grey50")
        stream = self._stream if self._stream is not None and self._stream.prompt == key[0] else None
        self.run_job("table", layers.table, self.session, key[0], key[1], self._tuned if key[2] else None, stream)

    def action_tuned(self) -> None:
        self.tuned_on = not self.tuned_on
        self.refresh_lens()

    def _fit_tuned_lens(self) -> None:
        from spectrascope.core.views import layers

        if self.job_running("tuned") or self.session is None:
            return
        self._header("fitting the tuned lens on the shipped prompt sets (once per model, then cached)… "
                     "u: back to the logit lens", "grey50")
        self.run_job("tuned", layers.fit_tuned, self.session)

    def action_position(self, delta: int) -> None:
        if self.result is None:
            return
        n = len(self.result.tokens)
        pos = (self.position % n) + delta
        self.position = max(1 if n > 1 else 0, min(n - 1, pos))
        if self.position == n - 1:
            self.position = -1  # at the end again: follow the typing
        self.refresh_lens()

    # ---- jobs' outcomes ---------------------------------------------------------------------------
    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        if name == "tuned" and self.tuned_on and self._tuned is None:
            self._header(f"{text}… u: back to the logit lens", "grey50")

    def job_failed(self, name: str, error: BaseException) -> None:
        why = one_line(describe(error), 300)
        if name == "tuned":  # the logit lens still works
            self.tuned_on = False
            self._header("tuned lens: " + why, "bold red")
        elif name == "table":
            self.table = self.report = None
            self._header(why, "bold red")
        else:
            self._grid_prompt = None  # the next table tries again
            self.query_one("#layers-strip", Static).update(Text("settled grid: " + why, style="bold red"))

    def job_done(self, name: str, value: Any) -> None:
        if name == "tuned":
            self._tuned = value
            if self.tuned_on:
                self.refresh_lens()
        elif name == "table":
            self._show_table(*value)
        else:  # the grid of `_grid_prompt`: an older one's run was dropped
            self._grid = value
            if self.table is not None and (self.table.prompt, self._wanted[2]) == self._grid_prompt:
                self.report = replace(self.table, settled=value)
            self._draw_table()

    def _show_table(self, rep: Any, stream: Any) -> None:
        from spectrascope.core.views import layers

        tuned = self._wanted[2]
        self._stream = stream
        if self._grid_prompt != (stream.prompt, tuned):  # a new prompt or lens: its grid, once, after this table
            self._grid_prompt, self._grid = (stream.prompt, tuned), None
            if self.session is not None:
                self.run_job("grid", layers.grid, self.session, stream, self._tuned if tuned else None)
        self.table = rep
        self.report = None if self._grid is None else replace(rep, settled=self._grid)
        target = visible(rep.target[1])
        through = ("each layer's translator + " if tuned else "") + "final norm + unembedding"
        self._header(f"{rep.lens} · token {rep.position} {visible(rep.tokens[rep.position])!s} · final top-1 {target} "
                     f"· top-1 from layer {rep.commitment} on · ←/→ token · rank/p of {target} via {through}", "bold")
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
