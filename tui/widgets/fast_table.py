"""A small read-only table drawn with Textual's Line API.

DataTable renders every cell through Rich's Text/Padding pipeline, which costs
~0.3 ms a cell: a 20 x 8 table took longer than a frame to repaint after a knob
change. Here each row is one pre-built Strip of Segments, so a redraw is a few
string joins. Cell text must already be display-safe (see core.text.visible);
it is cut and padded by terminal cell width, so wide characters never shift
the columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

Cell = tuple[str, str]  # (text, rich style string); text may instead be a tuple of (text, style) spans


@dataclass(frozen=True)
class Column:
    name: str
    width: int
    right: bool = False


_style_cache: dict[str, Style] = {}


def _style(spec: str) -> Style:
    style = _style_cache.get(spec)
    if style is None:
        style = _style_cache[spec] = Style.parse(spec) if spec else Style()
    return style


_BAR_GLYPHS = frozenset("█▉▊▋▌▍▎▏ ")


def _highlighted(strip: Strip) -> Strip:
    """The cursor row in reverse video, except its bars: a reversed "█" paints the cell in the old
    background, so the selected row's bar (the top token's, by default) would vanish."""
    reverse = Style(reverse=True)
    return Strip([seg if seg.text.strip() and _BAR_GLYPHS.issuperset(seg.text) else
                  Segment(seg.text, (seg.style or Style()) + reverse, seg.control) for seg in strip])


def _fit(text: str, width: int, right: bool) -> str:
    """Cut or pad `text` to exactly `width` terminal cells."""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width)
    pad = " " * (width - n)
    return pad + text if right else text + pad


def _fit_spans(spans, width: int) -> list[Segment]:
    """(text, style) spans cut or padded on the right to exactly `width` cells: one cell, many styles."""
    out, used = [], 0
    for text, style in spans:
        text = _fit(text, min(cell_len(text), width - used), False)
        if text:
            out.append(Segment(text, _style(style)))
            used += cell_len(text)
    return out + ([Segment(" " * (width - used))] if used < width else [])


class FastTable(Widget, can_focus=True):
    """Header + rows; a cursor row moved with the arrow keys; enter posts `Selected`."""

    DEFAULT_CSS = """
    FastTable { height: 1fr; }
    FastTable:focus { background-tint: $foreground 4%; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-10)", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("home", "move(-100000)", show=False),
        Binding("end", "move(100000)", show=False),
        Binding("enter", "select", "Choose row", show=False),
    ]

    cursor = reactive(0)

    @dataclass
    class Selected(Message):
        table: "FastTable"
        index: int
        key: str | None

        @property
        def control(self) -> "FastTable":  # lets @on(FastTable.Selected, "#id") match
            return self.table

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.columns: list[Column] = []
        self.keys: list[str | None] = []
        self._rows: list[list[Cell]] = []
        self._strips: list[Strip] = []
        self._header = Strip([])
        self._top = 0  # first row shown, so the cursor stays visible in a short pane

    # ---- data -------------------------------------------------------------------------------
    def set_columns(self, columns: list[Column]) -> None:
        self.columns = columns
        self._header = self._strip([(c.name, "bold") for c in columns])
        self.set_rows([], [])

    def set_rows(self, rows: list[list[Cell]], keys: list[str | None] | None = None) -> None:
        self._rows = rows
        self.keys = list(keys) if keys is not None else [None] * len(rows)
        self._strips = [self._strip(row) for row in rows]
        self.cursor = min(self.cursor, max(0, len(rows) - 1))
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def row_text(self, index: int) -> list[str]:
        return [text if isinstance(text, str) else "".join(t for t, _ in text) for text, _ in self._rows[index]]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def _strip(self, cells: list[Cell]) -> Strip:
        segments = []
        for col, (text, style) in zip(self.columns, cells):
            if isinstance(text, str):
                segments.append(Segment(_fit(text, col.width, col.right), _style(style)))
            else:
                segments.extend(_fit_spans(text, col.width))
            segments.append(Segment(" "))
        return Strip(segments)

    # ---- drawing (Line API) -------------------------------------------------------------------
    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._rows) + 1

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._header.crop_extend(0, width, self.rich_style)
        visible_rows = max(1, self.size.height - 1)
        self._top = max(0, min(self._top, len(self._strips) - visible_rows))  # grown taller: no blank rows below
        if self.cursor < self._top:
            self._top = self.cursor
        elif self.cursor >= self._top + visible_rows:
            self._top = self.cursor - visible_rows + 1
        index = self._top + y - 1
        if index >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        strip = self._strips[index]
        if index == self.cursor and self.has_focus:
            strip = _highlighted(strip)
        elif index == self.cursor:
            strip = strip.apply_style(Style(underline=True))
        return strip.crop_extend(0, width, self.rich_style)

    # ---- keys -------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        if self._rows:
            self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))

    def watch_cursor(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_select(self) -> None:
        if self._rows:
            self.post_message(self.Selected(self, self.cursor, self.keys[self.cursor]))
