"""The Spectrum pane's analyzer at a 262K-wide fake SAE: zoom around the selected feature, log/density scale."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Static

from spectrascope.core.engine.session import resid_hook
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.analyzer import Analyzer, band_of, band_values, feature_window
from tests.tui.fake_session import FakeSession
from tests.tui.pilot_helpers import until
from tests.tui.test_spectrum_pane import show_spectrum

WIDE = 262_144


def reference_bands(row: np.ndarray, lo: int, hi: int, n: int, scale: str) -> np.ndarray:
    """One band at a time, as a person would write it: n near-equal slices of row[lo:hi]."""
    out = []
    for b in range(n):
        piece = row[lo + (b * (hi - lo)) // n: lo + ((b + 1) * (hi - lo)) // n]
        out.append((piece > 0).mean() if scale == "density" else piece.max())
    return np.array(out, np.float32)


@pytest.mark.parametrize("lo, hi, n", [(0, 1000, 7), (300, 1000, 64), (5, 29, 24), (0, 10, 80)])
def test_bands_and_marker_against_a_loop(lo, hi, n):
    rng = np.random.default_rng(0)
    row = np.where(rng.random(1000) < 0.1, rng.exponential(1.0, 1000), 0).astype(np.float32)
    n_used = min(n, hi - lo)
    for scale in ("log", "density"):
        np.testing.assert_allclose(band_values(row, lo, hi, n, scale), reference_bands(row, lo, hi, n_used, scale),
                                   rtol=1e-6)
    for f in range(lo, hi):
        band = band_of(f, lo, hi, n)
        assert lo + (band * (hi - lo)) // n_used <= f < lo + ((band + 1) * (hi - lo)) // n_used
    assert band_of(hi, lo, hi, n) is None and band_of(lo - 1, lo, hi, n) is None


def test_feature_window_stays_on_the_axis():
    assert feature_window(WIDE, 1, 5, 100) == (0, WIDE)
    assert feature_window(WIDE, 8, 100_000, 100) == (100_000 - WIDE // 16, 100_000 + WIDE // 16)
    assert feature_window(WIDE, 8, 3, 100) == (0, WIDE // 8)  # clamped at the ends, same span
    assert feature_window(WIDE, 8, WIDE - 1, 100) == (WIDE - WIDE // 8, WIDE)
    assert feature_window(WIDE, 1 << 20, 1234, 100) == (1184, 1284)  # never fewer features than columns
    assert feature_window(50, 4, 10, 100) == (0, 50)


def wide_fake() -> FakeSession:
    from tests.conftest import make_tiny_sae

    return FakeSession(saes={"coarse": make_tiny_sae(8, 64, resid_hook(1), "topk", k=6, seed=3),
                             "fine": make_tiny_sae(8, WIDE, resid_hook(1), "topk", k=400, seed=4)})


def caption(app, role: str) -> str:
    return app.query_one(f"#spectrum-{role}", Analyzer).caption


@pytest.mark.asyncio
async def test_zoom_and_scale_at_262k():
    session = wide_fake()
    app = SpectrascopeApp(lambda progress: session, prompt="The capital of France is")
    async with app.run_test(size=(120, 40)) as pilot:
        pane, _ = await show_spectrum(pilot)
        fine = app.query_one("#spectrum-fine", Analyzer)
        cols = len(fine.values)  # the first draw may precede the layout (80 bands, stretched)
        spec = app.result.spectra["fine"]
        row = spec.codes[-1].numpy()  # the newest token is selected while typing
        assert caption(app, "fine") == f"all {WIDE:,} · log" and caption(app, "coarse") == "all 64 · log"
        np.testing.assert_allclose(fine.values, reference_bands(row, 0, WIDE, cols, "log"))
        assert np.count_nonzero(fine.values) > cols * 0.9  # the wall: nearly every column lit

        # Nothing selected: the zoom centres on the table's strongest fine feature.
        await pilot.press("z")
        await pilot.pause()
        strongest = next(r.feature for r in pane.view().rows() if r.role == "fine")
        lo, hi = feature_window(WIDE, 2, strongest, fine.size.width)
        assert caption(app, "fine") == f"#{lo:,}–{hi - 1:,} of {WIDE:,} · log" and fine.marker is None
        await pilot.press("Z")

        fid = int(np.flatnonzero(row)[len(np.flatnonzero(row)) // 2])  # a firing feature mid-axis
        pane.select_feature("fine", fid)
        await pilot.press("z", "z", "z")
        await pilot.pause()
        cols = fine.size.width
        assert len(fine.values) == cols
        lo, hi = feature_window(WIDE, 8, fid, cols)
        assert pane.zoom == 8 and hi - lo == WIDE // 8 and lo <= fid < hi
        assert caption(app, "fine") == f"#{lo:,}–{hi - 1:,} of {WIDE:,} · log"
        assert caption(app, "coarse") == "all 64 · log"  # 64 features: already one a column
        np.testing.assert_allclose(fine.values, reference_bands(row, lo, hi, cols, "log"))
        assert fine.marker == band_of(fid, lo, hi, cols) and fine.values[fine.marker] >= row[fid] > 0

        await pilot.press("s")
        await pilot.pause()
        assert pane.scale == "density" and caption(app, "fine").endswith(" · density") and not fine.log_levels
        np.testing.assert_allclose(fine.values, reference_bands(row, lo, hi, cols, "density"), rtol=1e-6)
        assert fine.scale == pytest.approx(fine.values.max())

        for _ in range(20):  # zoom stops at one feature a column
            await pilot.press("z")
        await pilot.pause()
        lo, hi = feature_window(WIDE, pane.zoom, fid, cols)
        assert hi - lo == cols and pane.zoom == 1 << int(np.ceil(np.log2(WIDE / cols)))
        np.testing.assert_array_equal(fine.values, (row[lo:hi] > 0).astype(np.float32))
        await pilot.press("s")
        await pilot.pause()
        np.testing.assert_array_equal(fine.values, row[lo:hi])  # log at one feature a column: the codes

        for _ in range(20):
            await pilot.press("Z")
        await pilot.pause()
        assert pane.zoom == 1 and caption(app, "fine") == f"all {WIDE:,} · log"

        await pilot.press("question_mark")
        await pilot.pause()
        console = Console(width=100, record=True)
        for static in app.screen.query(Static):
            console.print(static.content)
        text = console.export_text()
        assert "Analyzer: zoom in around the selected feature" in text and "log / density scale" in text
