"""Both themes readable (issue 35, item 3): every colour pair the themes define reaches WCAG AA, every
text cell the app draws does too (fixed Rich colours and uncoloured table cells included), fields keep
their borders and labels in the projector theme, and F9 says which theme is on."""

from __future__ import annotations

import pytest
from rich.style import Style
from textual.color import Color

from spectrascope.tui.contrast import (AA_GRAPHICS, AA_TEXT, contrast_ratio, is_text, readable, readable_style,
                                       relative_luminance)
from spectrascope.tui.theme import GRAPHIC_PAIRS, TEXT_PAIRS, THEMES
from tests.tui.pilot_helpers import fake_app, until

ALL_PANES = ["logits", "spectrum", "pairing", "steering", "layers", "anchor"]


def test_wcag_formula_on_known_values():
    white, black = Color.parse("#ffffff"), Color.parse("#000000")
    assert relative_luminance(white) == pytest.approx(1.0) and relative_luminance(black) == 0.0
    assert contrast_ratio(white, black) == pytest.approx(21.0)
    assert contrast_ratio(black, white) == contrast_ratio(white, black)
    assert contrast_ratio(Color.parse("#777777"), white) == pytest.approx(4.48, abs=0.01)  # the classic near miss
    assert contrast_ratio(Color.parse("#767676"), white) == pytest.approx(4.54, abs=0.01)


def _variables(theme) -> dict[str, str]:
    return {**theme.to_color_system().generate(), **theme.variables}  # as App.get_css_variables builds them


def _resolve(expr: str, variables: dict[str, str], under: Color) -> Color:
    """A CSS colour expression ("#hex", "$var", "auto 60%", "$var 30%") as drawn over `under`."""
    name, _, alpha_text = expr.strip().partition(" ")
    alpha = float(alpha_text.rstrip("%")) / 100 if alpha_text else 1.0
    if name.startswith("$"):
        color = _resolve(variables[name[1:]], variables, under)
    elif name == "auto":
        color = under.get_contrast_text(1.0)
    else:
        color = under + Color.parse(name)
    return under + color.with_alpha(alpha)


@pytest.mark.parametrize("theme_name", THEMES)
@pytest.mark.parametrize(("fg", "bg", "where", "minimum"), [(*p, AA_TEXT) for p in TEXT_PAIRS] +
                         [(*p, AA_GRAPHICS) for p in GRAPHIC_PAIRS])
def test_every_pair_the_themes_define_reaches_aa(theme_name, fg, bg, where, minimum):
    variables = _variables(THEMES[theme_name])
    page = Color.parse(variables["background"])
    background = _resolve(bg, variables, page)
    ratio = contrast_ratio(_resolve(fg, variables, background), background)
    assert ratio >= minimum, f"{theme_name}: {fg} on {bg} ({where}) is {ratio:.2f}:1"


def test_the_default_theme_is_textual_dark_made_readable():
    from textual.theme import BUILTIN_THEMES

    theme = THEMES["default"]
    assert theme.name == "textual-dark" and theme.primary == BUILTIN_THEMES["textual-dark"].primary
    before = _variables(BUILTIN_THEMES["textual-dark"])
    page = Color.parse(before["background"])
    surface = Color.parse(before["surface"])
    # What the fixes were for: a field's label (drawn in the border colour), its placeholder, unselected
    # tabs (Textual's $foreground 50%), a notification's error title.
    assert contrast_ratio(_resolve("$border-blurred", before, surface), surface) < 1.5
    assert contrast_ratio(_resolve("$text-disabled", before, surface), surface) < AA_TEXT
    assert contrast_ratio(_resolve("$foreground 50%", before, page), page) < AA_TEXT
    notification = _resolve("$panel-lighten-1", before, page)
    assert contrast_ratio(_resolve("$text-error", before, notification), notification) < AA_TEXT


def test_readable_moves_a_colour_just_far_enough():
    bg = Color.parse("#121212")
    grey30 = Color.parse("#4e4e4e")
    lifted = readable(grey30, bg)
    assert contrast_ratio(lifted, bg) >= AA_TEXT
    assert contrast_ratio(lifted, bg) < AA_TEXT + 0.15  # the least change (one RGB step), not white
    assert readable(Color.parse("#e0e0e0"), bg) == Color.parse("#e0e0e0")  # already fine: untouched
    light = Color.parse("#f0f0f0")
    assert contrast_ratio(readable(Color.parse("#c0c0c0"), light), light) >= AA_TEXT  # darkens on light


def test_readable_style_fills_missing_colours_and_leaves_graphics_alone():
    bg, fg = Color.parse("#000000"), Color.parse("#ffffff")
    filled = readable_style(Style(bold=True), bg, fg, True)
    assert filled.color.triplet == fg.rich_color.triplet and filled.bgcolor.triplet == bg.rich_color.triplet
    dim_bar = readable_style(Style.parse("#262626"), bg, fg, is_text("▁▂▃"))
    assert dim_bar.color.triplet == Color.parse("#262626").rich_color.triplet  # a chart's floor keeps its colour
    dim_text = readable_style(Style.parse("#262626"), bg, fg, is_text("seed 0"))
    assert contrast_ratio(Color(*dim_text.color.triplet), bg) >= AA_TEXT
    reverse = readable_style(Style.parse("reverse #4e4e4e"), bg, fg, True)  # shows black text on grey30
    assert contrast_ratio(Color(*reverse.bgcolor.triplet), Color(*reverse.color.triplet)) >= AA_TEXT


def _unreadable_cells(app) -> list[str]:
    """Each text segment on screen below 4.5:1 or without colours (the terminal's would show)."""
    bad = []
    update = app.screen._compositor.render_update(full=True)  # the strips as the terminal gets them
    for y, line in enumerate(update.strips):
        for strip in line:
            for segment in strip:
                if segment.control or not is_text(segment.text):
                    continue
                style = segment.style or Style()
                if style.color is None or style.bgcolor is None:
                    bad.append(f"line {y}: {segment.text.strip()!r} has no colour ({style})")
                    continue
                fg, bg = Color(*style.color.triplet), Color(*style.bgcolor.triplet)
                if style.reverse:
                    fg, bg = bg, fg
                if contrast_ratio(fg, bg) < AA_TEXT:
                    bad.append(f"line {y}: {segment.text.strip()!r} {contrast_ratio(fg, bg):.2f}:1 ({style})")
    return bad


@pytest.mark.asyncio
@pytest.mark.parametrize("projector", [False, True])
async def test_every_text_cell_on_every_pane_is_readable(projector):
    app = fake_app()
    async with app.run_test(size=(130, 42)) as pilot:
        await until(pilot, lambda: app.result is not None)
        if projector:
            await pilot.press("f9")
        for pane in ALL_PANES:
            app.action_show_pane(pane)
            await pilot.pause(0.3)
            assert _unreadable_cells(app) == [], (pane, app.theme)
        app.query_one("#prompt").focus()  # a focused field: label and border in the focus colours
        await pilot.pause(0.2)
        assert _unreadable_cells(app) == [], ("prompt focused", app.theme)


def _field_top_line(app, selector: str) -> tuple[str, list]:
    """The text and segments of a field's top border line (where its label is)."""
    field = app.query_one(selector)
    region = field.region
    update = app.screen._compositor.render_update(full=True)
    segments = [s for strip in update.strips[region.y] for s in strip]
    text = "".join(s.text for s in segments)
    return text[region.x:region.right], segments


def _fields_keep_borders_and_labels(app) -> None:
    page = Color.parse(app.theme_variables["background"])
    for selector, label in (("#prompt", "prompt"), ("#logits-system", "system prompt")):
        text, segments = _field_top_line(app, selector)
        assert label in text, (app.theme, selector, text)
        label_segment = next(s for s in segments if label in s.text)
        fg, bg = Color(*label_segment.style.color.triplet), Color(*label_segment.style.bgcolor.triplet)
        assert contrast_ratio(fg, bg) >= AA_TEXT, (app.theme, selector)
        border = next(s for s in segments if "▔" in s.text)  # the border itself stands out from the page
        assert contrast_ratio(Color(*border.style.color.triplet), page) >= AA_GRAPHICS, (app.theme, selector)


@pytest.mark.asyncio
async def test_f9_keeps_field_borders_and_labels_and_says_which_theme_is_on():
    app = fake_app()
    async with app.run_test(size=(130, 42)) as pilot:
        await until(pilot, lambda: app.result is not None)
        # The readable default is in force from the start, not only after F9 twice.
        assert app.theme_variables["border-blurred"] == THEMES["default"].variables["border-blurred"]
        _fields_keep_borders_and_labels(app)
        await pilot.press("f9")
        await pilot.pause(0.2)
        assert app.theme == "spectrascope-contrast"
        assert any("Projector theme on" in str(n.message) for n in app._notifications)
        _fields_keep_borders_and_labels(app)
        await pilot.press("f9")
        await pilot.pause(0.1)
        assert app.theme == "textual-dark"
        assert any("Default theme on" in str(n.message) for n in app._notifications)
