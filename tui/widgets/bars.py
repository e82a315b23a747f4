"""Tiny horizontal bars for tables, built from eighth-blocks."""

from __future__ import annotations

_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int = 20) -> str:
    """A left-aligned bar filling `fraction` of `width` cells."""
    fraction = 0.0 if fraction != fraction else max(0.0, min(1.0, fraction))  # NaN -> 0
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)
