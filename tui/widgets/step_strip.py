"""The strip under the Logits pane's generated text: per generated token, how surprising the pick
was and its strongest SAE feature.

It draws `core.step_record.TokenRecord`s, the report `spectrascope logits --features` prints, so
the numbers are the same. Two lines, one cell per token: the token with its probability at T=1
and rank (coloured by surprise), and under it the top feature; the newest steps are kept when
they do not all fit.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text

from spectrascope.core.text import visible

MAX_CELL = 18  # characters a token's cell takes at most
# Probability at T=1 -> colour: an expected pick green, then yellow, orange, a long shot red (hex: terminals
# map the named yellow and orange to one colour).
SURPRISE = ((0.5, "#5fd75f"), (0.1, "#e5e510"), (0.01, "#ff8700"), (0.0, "#ff5f5f"))


def surprise_style(p: float) -> str:
    return next(style for floor, style in SURPRISE if p >= floor)


def p_text(p: float) -> str:
    """A probability in at most 4 characters: 1, .23, 4e-3."""
    if p >= 0.995:
        return "1"
    return f"{p:.2f}"[1:] if p >= 0.01 else f"{p:.0e}".replace("e-0", "e-")


def top_hit(record) -> str:
    """The strongest feature of the first SAE that has one, as `c12 label` (role initial, id)."""
    for role, hits in record.features.items():
        if hits:
            hit = hits[0]
            return f"{role[0]}{hit.feature} {hit.label.removeprefix('fires on: ')}".rstrip()  # the strip is narrow
    return "–"


def cell(record) -> tuple[str, str]:
    """(token p #rank, top feature) of one generated token."""
    token = visible(record.token, 10)  # spaces marked, as in the table: a word start shows
    return f"{token} {p_text(record.prob)} #{record.rank}", visible(top_hit(record), MAX_CELL, mark_spaces=False)


def step_strip_text(records: Sequence, width: int, earlier: int = 0) -> Text:
    """The strip at `width` columns: the newest records that fit, "◀N" for the `earlier` ones and
    those that did not fit; the newest (the stepper's current token) reversed."""
    cells = [cell(r) for r in records]
    widths = [min(MAX_CELL, max(len(a), len(b))) for a, b in cells]
    shown, used = 0, 0
    for w in reversed(widths):
        more = earlier + len(cells) - shown - 1  # cells left of this one
        need = w + 1 + (len(f"◀{more} ") if more else 0)
        if shown and used + need > width:
            break
        used += w + 1
        shown += 1
    first = len(cells) - shown
    top, bottom = Text(no_wrap=True, overflow="crop"), Text(no_wrap=True, overflow="crop")
    hidden = earlier + first
    if hidden:
        mark = f"◀{hidden} "
        top.append(mark, style="grey50")
        bottom.append(" " * len(mark))
    for i in range(first, len(cells)):
        (a, b), w, rec = cells[i], widths[i], records[i]
        newest = " reverse" if i == len(cells) - 1 else ""
        top.append(a[:w].ljust(w), style=f"bold {surprise_style(rec.prob)}{newest}")
        bottom.append(b[:w].ljust(w), style=f"grey70{newest}")
        top.append(" ")
        bottom.append(" ")
    return top + Text("\n") + bottom
