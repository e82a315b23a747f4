"""The footer never runs a key under its `^p palette` item: a key that does not fit whole is hidden, with
every key after it, at any width, on every pane, after a resize too (seen in tmux at 80x24:
"n N▏^p palette"). And the tables' cursor row keeps its bar."""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from tests.tui.pilot_helpers import fake_app, show_pane, until


def shown_keys(app):
    footer = app.query_one("FittingFooter")
    palette = footer.query_one(".-command-palette", FooterKey)
    keys = [child for child in footer.children if child is not palette and child.display]
    return footer, palette, keys


def check_fits(app) -> list[str]:
    footer, palette, keys = shown_keys(app)
    assert palette.region.right <= footer.region.right
    for key in keys:
        assert key.region.width > 0, f"{key.key} is shown but not on screen"
        assert key.region.right <= palette.region.x, f"{key.key} runs under the palette item"
    return [key.key for key in keys]


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)])
@pytest.mark.asyncio
async def test_every_shown_key_fits_left_of_the_palette(size):
    app = fake_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.session is not None and app.result is not None)
        for pane in ("logits", "spectrum", "steering"):
            await show_pane(pilot, pane)
            await pilot.pause(0.2)
            keys = check_fits(app)
            assert len(keys) >= 4, f"{pane} at {size}: only {keys}"
            hidden = [child for child in shown_keys(app)[0].children if not child.display]
            if size[0] >= 200:
                assert not hidden or len(keys) >= 10


@pytest.mark.asyncio
async def test_a_resize_shows_again_what_now_fits():
    app = fake_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.session is not None and app.result is not None)
        await pilot.pause(0.2)
        narrow = check_fits(app)
        await pilot.resize_terminal(200, 24)
        await pilot.pause(0.3)
        wide = check_fits(app)
        assert len(wide) > len(narrow) and wide[:len(narrow)] == narrow  # same order: first declared, first shown
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert check_fits(app) == narrow


def test_the_cursor_row_keeps_its_bar_visible():
    """Reverse video paints a "█" in the old background: the selected row's bar (the top token's by default)
    vanished. The cursor row reverses everything but its bars."""
    from rich.segment import Segment
    from rich.style import Style
    from spectrascope.tui.widgets.fast_table import _highlighted
    from textual.strip import Strip

    green = Style(color="green")
    row = _highlighted(Strip([Segment("·the ", Style(bold=True)), Segment("████▍   ", green), Segment(" kept", green)]))
    token, bar, status = list(row)
    assert token.style.reverse and status.style.reverse
    assert bar.style == green and not bar.style.reverse
