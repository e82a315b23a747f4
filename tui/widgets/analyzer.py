"""A "spectrum analyzer": one bar per band of features, drawn with the Line API.

Each column of the widget is one band (a slice of the feature axis); its height
is the strongest activation in that band on a log scale (log1p, like an audio
analyzer's dB), in eighth-blocks. Flat bands stay dark, so a sparse code reads
at a glance.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

_EIGHTHS = " ▁▂▃▄▅▆▇█"
_FLOOR = Style(color="grey23")
_COLORS = [Style(color=c) for c in ("#3b82f6", "#22c55e", "#eab308", "#f97316", "#ef4444")]


class Analyzer(Widget):
    """Bars for `values` (one per column); `scale` is the activation that fills the height."""

    DEFAULT_CSS = "Analyzer { height: 5; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.values = np.zeros(0, dtype=np.float32)
        self.scale = 1.0
        self.marker: int | None = None  # a band to underline (the selected feature's)

    def show(self, values: np.ndarray, scale: float, marker: int | None = None) -> None:
        self.values = np.asarray(values, dtype=np.float32)
        self.scale = float(scale) if scale > 0 else 1.0
        self.marker = marker
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if width == 0 or self.values.size == 0:
            return Strip.blank(width)
        # Stretch (or cut) the bands to the full width: column x shows band x * n // width.
        values = self.values[np.arange(width) * self.values.size // width]  # (W,)
        # Log scale, like an audio analyzer's dB: one huge feature must not flatten the rest.
        levels = np.clip(np.log1p(np.maximum(values, 0)) / np.log1p(self.scale), 0, 1) * height * 8  # (W,)
        row_from_bottom = height - 1 - y
        fill = np.clip(levels - row_from_bottom * 8, 0, 8).round().astype(int)  # (W,)
        color = _COLORS[min(len(_COLORS) - 1, row_from_bottom * len(_COLORS) // max(1, height))]
        segments = []
        for x, eighths in enumerate(fill.tolist()):
            if eighths:
                ch, style = _EIGHTHS[eighths], color
            else:
                ch, style = ("▁" if row_from_bottom == 0 else " "), _FLOOR
            if self.marker is not None and x * self.values.size // width == self.marker and row_from_bottom == 0:
                style = style + Style(underline=True, bold=True)
            segments.append(Segment(ch, style))
        return Strip(segments, len(segments)).extend_cell_length(width)
