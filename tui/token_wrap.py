"""Generated text laid out token by token: lines break between tokens, never inside one.

Rich and Textual wrap at spaces and fold any longer run of characters wherever the width ends, so
`<start_of_image><start_of_image>…` or a long sub-word chain was cut mid-token across lines. Here
a line breaks before a word (a unit starting with a space, or a unit marked `alone`) that does not
fit; a word wider than the line breaks between its units; only a single unit wider than the whole
line is cut.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from rich.cells import cell_len
from rich.text import Text

SPECIAL_STYLE = "dim reverse"


class Unit(NamedTuple):
    text: str
    style: str = ""
    alone: bool = False  # a word by itself (a marker, a prefix): lines may break on either side


def marker(name: str, repeat: int = 1) -> Unit:
    """A control token as one distinct unit, `<start_of_image>` -> `⟨start_of_image⟩` (×n when repeated)."""
    if len(name) > 2 and name[0] + name[-1] in ("<>", "[]"):
        name = name[1:-1]
    return Unit(f"⟨{name}⟩" + (f"×{repeat}" if repeat > 1 else ""), SPECIAL_STYLE, True)


def _words(units: Sequence[Unit]) -> list[list[Unit]]:
    words: list[list[Unit]] = []
    for i, u in enumerate(units):
        starts = not words or u.alone or units[i - 1].alone or u.text[:1].isspace()
        if starts:
            words.append([u])
        else:
            words[-1].append(u)
    return words


def _cut(text: str, width: int) -> tuple[str, str]:
    """The longest head of `text` within `width` cells (at least one character), and the rest."""
    n = 1
    while n < len(text) and cell_len(text[: n + 1]) <= width:
        n += 1
    return text[:n], text[n:]


def wrap_units(units: Sequence[Unit], width: int) -> list[list[Unit]]:
    """`units` as lines of at most `width` cells, broken between words, else between units."""
    width = max(1, width)
    lines: list[list[Unit]] = [[]]
    used = 0

    def new_line() -> None:
        nonlocal used
        lines.append([])
        used = 0

    for word in _words(units):
        if used and used + sum(cell_len(u.text) for u in word) > width:
            new_line()
        for u in word:
            text = u.text
            if used and used + cell_len(text) > width:
                new_line()
            if not used and lines[:-1]:  # a continued line does not start with the word's space
                text = text.lstrip(" ") or text
            while cell_len(text) > width:  # only a unit wider than a whole line is cut (used is 0 here)
                head, text = _cut(text, width)
                lines[-1].append(u._replace(text=head))
                new_line()
            lines[-1].append(u._replace(text=text))
            used += cell_len(text)
    return lines


def wrapped_text(units: Sequence[Unit], width: int) -> Text:
    """`wrap_units` as one Text with hard line breaks (each line fits, so nothing re-wraps it)."""
    out = Text()
    for i, line in enumerate(wrap_units(units, width)):
        if i:
            out.append("\n")
        for u in line:
            out.append(u.text, style=u.style)
    return out
