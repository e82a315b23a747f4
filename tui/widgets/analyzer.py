"""A "spectrum analyzer": one bar per band of features, drawn with the Line API.

Each column of the widget is one band (a slice of the shown feature range). Two scales:

* log: the band's strongest activation on a log scale (log1p, like an audio analyzer's dB);
* density: the share of the band's features that fire, against the densest band shown.

At Gemma Scope 262K a column holds ~2,000 features and nearly every column has one that
fires, so the log view reads as a wall; density shows where firing concentrates, and a
zoom (`feature_window`) narrows the range around the selected feature down to one feature
a column. The top row is a caption: the range and the scale.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

_EIGHTHS = " ▁▂▃▄▅▆▇█"
_FLOOR = Style(color="grey23")
_CAPTION = Style(color="grey50")
_COLORS = [Style(color=c) for c in ("#3b82f6", "#22c55e", "#eab308", "#f97316", "#ef4444")]
SCALES = ("log", "density")


def feature_window(width: int, zoom: int, center: int, min_span: int) -> tuple[int, int]:
    """[lo, hi): the `width // zoom` features around `center` (never fewer than `min_span`), inside the axis."""
    span = min(width, max(min_span, width // max(1, zoom)))
    lo = min(max(0, center - span // 2), width - span)
    return lo, lo + span


def band_values(row: np.ndarray, lo: int, hi: int, n_bands: int, scale: str) -> np.ndarray:
    """Per band of row[lo:hi]: the strongest activation (log) or the share of features > 0 (density). # (B,)"""
    seg = np.asarray(row[lo:hi], dtype=np.float32)
    n_bands = max(1, min(n_bands, seg.size))
    starts = np.linspace(0, seg.size, n_bands + 1).astype(np.int64)
    if scale == "density":
        return np.add.reduceat((seg > 0).astype(np.float32), starts[:-1]) / np.diff(starts)
    return np.maximum.reduceat(seg, starts[:-1])


def band_of(feature: int, lo: int, hi: int, n_bands: int) -> int | None:
    """The band of `band_values(row, lo, hi, n_bands, ...)` holding `feature` (None outside [lo, hi))."""
    if not lo <= feature < hi:
        return None
    starts = np.linspace(0, hi - lo, max(1, min(n_bands, hi - lo)) + 1).astype(np.int64)
    return int(np.searchsorted(starts, feature - lo, side="right") - 1)


class Analyzer(Widget):
    """Bars for `values` (one per column); `scale` is the value that fills the height."""

    DEFAULT_CSS = "Analyzer { height: 5; width: 1fr; }"  # 1fr: the space beside the info, not past the edge

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.values = np.zeros(0, dtype=np.float32)
        self.scale = 1.0
        self.marker: int | None = None  # a band to underline (the selected feature's)
        self.log_levels = True  # log1p levels (activations); False: linear (densities)
        self.caption = ""

    def show(self, values: np.ndarray, scale: float, marker: int | None = None, log: bool = True,
             caption: str = "") -> None:
        self.values = np.asarray(values, dtype=np.float32)
        self.scale = float(scale) if scale > 0 else 1.0
        self.marker = marker
        self.log_levels = log
        self.caption = caption
        self.refresh()

    def show_spectrum(self, spectrum, position: int | None, reduce: str, first: int, zoom: int, scale: str,
                      selected: int | None, top: int | None) -> None:
        """One SAE's codes (a `core.engine.codes.Spectrum`) at `position` (None: over the tokens from `first`,
        `reduce`d) as bars over the zoomed feature range on `scale`, captioned with both. The zoom centres on
        the `selected` feature (underlined), else on `top` (the table's strongest, always-on ones hidden)."""
        cols = max(1, self.size.width or 80)
        row = spectrum.row(position, reduce, first).numpy()  # (F,)
        center = next((f for f in (selected, top) if f is not None and 0 <= f < spectrum.width), int(row.argmax()))
        lo, hi = feature_window(spectrum.width, zoom, center, cols)
        values = band_values(row, lo, hi, cols, scale)
        marker = band_of(selected, lo, hi, len(values)) if selected is not None else None
        if scale == "density":
            full = float(values.max()) or 1.0  # the densest band shown fills the height
        else:
            codes = spectrum.codes[first:] if spectrum.n_tokens > first else spectrum.codes
            full = float(codes.max()) or 1.0  # BOS left out: its huge code would flatten every bar
        where = f"all {spectrum.width:,}" if hi - lo == spectrum.width else f"#{lo:,}–{hi - 1:,} of {spectrum.width:,}"
        self.show(values, full, marker, log=scale == "log", caption=f"{where} · {scale}")

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if y == 0 and height > 1:
            text = self.caption[:width]
            return Strip([Segment(" " * (width - len(text))), Segment(text, _CAPTION)]).extend_cell_length(width)
        height -= 1 if self.size.height > 1 else 0  # the bars below the caption
        if width == 0 or self.values.size == 0:
            return Strip.blank(width)
        # Stretch (or cut) the bands to the full width: column x shows band x * n // width.
        values = np.maximum(self.values[np.arange(width) * self.values.size // width], 0)  # (W,)
        # Log scale, like an audio analyzer's dB: one huge feature must not flatten the rest.
        share = np.log1p(values) / np.log1p(self.scale) if self.log_levels else values / self.scale
        levels = np.clip(share, 0, 1) * height * 8  # (W,)
        row_from_bottom = self.size.height - 1 - y
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
