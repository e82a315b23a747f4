"""The prompt's tokens in one wrapped line, with visible whitespace and a selectable position."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from spectrascope.core.text import visible


def token_strip_text(pieces: list[str], selected: int | None = None) -> Text:
    """Tokens as alternating-shaded chips; the selected one is reversed. Always plain text."""
    text = Text(no_wrap=False)
    for i, piece in enumerate(pieces):
        style = "reverse bold" if i == selected else ("on grey23" if i % 2 else "on grey35")
        text.append(visible(piece, max_len=24), style=style)
        text.append(" ")
    return text


class TokenStrip(Static):
    """Shows tokens; `select(i)` highlights one position."""

    DEFAULT_CSS = "TokenStrip { height: auto; max-height: 6; }"

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.pieces: list[str] = []
        self.selected: int | None = None

    def show(self, pieces: list[str], selected: int | None = None) -> None:
        self.pieces = pieces
        self.selected = selected
        self.update(token_strip_text(pieces, selected))
