"""Readable text in every theme: WCAG contrast, and a render filter that holds every text cell to it.

The themes (tui/theme.py) set their own colours to at least 4.5:1, but panes also draw with fixed
Rich colours ("grey50", "red") and the Line-API tables leave cells uncoloured (the terminal's own
colours show through, whatever they are). `ReadableText` runs on every rendered line, after
Textual's own filters: a cell without a colour gets the theme's foreground / the widget's background,
and a text cell below 4.5:1 is moved towards white or black just far enough. Block, box and braille
glyphs are graphics (bars, plots, borders), not text, and keep their colours.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Callable

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.color import BLACK, WHITE, Color
from textual.filter import LineFilter

AA_TEXT = 4.5  # WCAG 2 AA, normal text
AA_GRAPHICS = 3.0  # WCAG 2 AA, non-text (borders)


def relative_luminance(color: Color) -> float:
    """WCAG 2 relative luminance of an sRGB colour (alpha ignored: blend it first)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast_ratio(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio, 1 (same) to 21 (black on white); symmetric."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable(fg: Color, bg: Color, minimum: float = AA_TEXT) -> Color:
    """`fg` if it reaches `minimum` against `bg`, else the least change towards white or black that does
    (bisection: luminance rises monotonically along the blend); black or white, whichever is better, when
    neither reaches it."""
    if contrast_ratio(fg, bg) >= minimum:
        return fg
    best: tuple[float, Color] | None = None
    for target in (WHITE, BLACK):
        if contrast_ratio(target, bg) < minimum:
            continue
        lo, hi = 0.0, 1.0
        for _ in range(16):
            mid = (lo + hi) / 2
            if contrast_ratio(fg.blend(target, mid), bg) >= minimum:
                hi = mid
            else:
                lo = mid
        if best is None or hi < best[0]:
            best = (hi, fg.blend(target, hi))
    if best is None:
        return max((WHITE, BLACK), key=lambda c: contrast_ratio(c, bg))
    return best[1]


def _graphic(ch: str) -> bool:
    code = ord(ch)
    return 0x2500 <= code <= 0x259F or 0x2800 <= code <= 0x28FF or 0x1FB00 <= code <= 0x1FBFF


@lru_cache(4096)
def is_text(text: str) -> bool:
    """Whether a segment holds something read as text (letters, digits, punctuation, symbols)."""
    return any(not ch.isspace() and not _graphic(ch) and unicodedata.category(ch)[0] in "LNPS" for ch in text)


def _known(color: RichColor | None) -> Color | None:
    if color is None or color.is_default or color.triplet is None:
        return None  # a named ANSI colour: the terminal's palette decides, unknown here
    return Color(*color.triplet)


@lru_cache(4096)
def readable_style(style: Style, background: Color, foreground: Color, text: bool) -> Style:
    """`style` with its missing colours filled in and, for text, its foreground lifted to 4.5:1."""
    fill = Style(color=None if style.color is not None and not style.color.is_default else foreground.rich_color,
                 bgcolor=None if style.bgcolor is not None and not style.bgcolor.is_default else background.rich_color)
    style = style + fill if (fill.color or fill.bgcolor) else style
    if not text:
        return style
    fg, bg = _known(style.color), _known(style.bgcolor)
    if fg is None or bg is None:
        return style
    if style.reverse:  # the cell shows bgcolor as text on color
        lifted = readable(bg, fg)
        return style if lifted == bg else style + Style(bgcolor=lifted.rich_color)
    lifted = readable(fg, bg)
    return style if lifted == fg else style + Style(color=lifted.rich_color)


class ReadableText(LineFilter):
    """Every text cell at least 4.5:1 against its background, in whatever theme (see the module doc)."""

    def __init__(self, foreground: Callable[[], Color], enabled: bool = True):
        super().__init__(enabled=enabled)
        self._foreground = foreground  # the theme's text colour, read at render time (themes switch)

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if background.a < 1:
            background = BLACK + background
        foreground = self._foreground()
        return [segment if segment.control else
                Segment(segment.text, readable_style(segment.style or Style(), background, foreground,
                                                     is_text(segment.text)))
                for segment in segments]
