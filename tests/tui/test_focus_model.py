"""One focus model (help's "Focus and typing"): keys act on the focused pane; a text field takes
keys only once entered (/, ^l, Tab, a click); Esc always leaves a field for its pane; no focus
stop is invisible; entering a field keeps its text; every field is labelled."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
from textual.widgets import Input

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.help import HelpScreen
from spectrascope.tui.widgets.text_field import TextField
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import PANES, TEXT_FIELDS, pane_home, show_pane, until

PROMPT = "The capital of France is"


def make_app():
    session = fake_with_saes()
    return SpectrascopeApp(lambda progress: session, prompt=PROMPT)


@asynccontextmanager
async def answered(size=(120, 40)):
    """The app under Pilot, once it has shown the first result."""
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.result is not None)
        yield pilot


def screen_text(app) -> str:
    """What the terminal shows now, as lines of text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.asyncio
async def test_question_mark_at_startup_opens_help_and_the_prompt_is_untouched():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")  # before the model has even loaded
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert app.query_one("#prompt", Input).value == PROMPT
        await pilot.press("escape")
        await until(pilot, lambda: app.result is not None)
        assert app.focused is pane_home(app, "logits")


@pytest.mark.asyncio
@pytest.mark.parametrize("field", list(TEXT_FIELDS))
async def test_escape_leaves_every_field_and_the_next_key_acts_on_the_pane(field):
    async with answered() as pilot:
        app = pilot.app
        pane = TEXT_FIELDS[field]
        await show_pane(pilot, pane)
        box = app.query_one(field, Input)
        box.focus()
        await pilot.press(*" xy")
        typed = box.value
        assert typed.endswith(" xy")
        await pilot.press("escape")
        assert app.focused is pane_home(app, pane)
        if pane == "logits":
            await pilot.press("t")  # temperature down: the pane's key, not a letter in the field
            assert app.query_one("#logits").settings.temperature == pytest.approx(0.9)
        elif pane == "anchor":
            await pilot.press("d")  # drift: it starts, or asks for the system prompt first
            status = str(app.query_one("#anchor-status").render())
            assert "drift:" in status or "system prompt first" in status
        elif pane == "attribution":
            await pilot.press("e")  # into the target field: the pane's key, not a letter
            assert app.focused is app.query_one("#attr-target", Input)
        elif pane == "find":
            await pilot.press("r")  # which SAE: both -> coarse
            assert app.query_one("#find").role == "coarse"
        else:
            await pilot.press("m")  # add -> clamp
            assert app.query_one("#steering").method == "clamp"
        assert box.value == typed
        await pilot.pause(0.3)  # a debounced run, if any, has started by now
        assert app.query_one("#prompt", Input).value == (PROMPT + " xy" if field == "#prompt" else PROMPT)


@pytest.mark.asyncio
async def test_slash_enters_the_prompt_and_enter_runs_it():
    async with answered() as pilot:
        app = pilot.app
        await pilot.press("slash")
        assert app.focused is app.query_one("#prompt")
        await pilot.press(*" Paris", "enter")
        await until(pilot, lambda: app.result.prompt == PROMPT + " Paris")


@pytest.mark.asyncio
async def test_the_first_tab_lands_in_the_prompt_and_the_letter_with_it():
    async with answered() as pilot:
        app = pilot.app
        await pilot.press("tab", "x")  # not an invisible tab strip that swallows the x
        assert app.focused is app.query_one("#prompt") and app.focused.value == PROMPT + "x"


@pytest.mark.asyncio
@pytest.mark.parametrize("pane", PANES)
async def test_every_focus_stop_is_a_field_or_part_of_the_pane_and_on_screen(pane):
    async with answered() as pilot:
        app = pilot.app
        await show_pane(pilot, pane)
        shown = app.query_one(f"#{pane}")
        for _ in range(len(app.screen.focus_chain)):  # once round the Tab cycle
            await pilot.press("tab")
            widget = app.focused
            assert isinstance(widget, TextField) or shown in widget.ancestors, widget
            assert widget.region.area > 0, widget  # on screen: a stop that shows nothing would swallow keys
        assert app.focused is pane_home(app, pane)


@pytest.mark.asyncio
async def test_entering_a_field_keeps_its_text_one_key_adds_one_character():
    async with answered() as pilot:
        app = pilot.app
        await show_pane(pilot, "steering")
        words = app.query_one("#steer-words", Input)
        words.value = "Paris, Lyon, Marseille"
        await pilot.press("shift+tab")  # from the table back to the concept-words field
        assert app.focused is words and words.selection.is_empty
        await pilot.press("x")
        assert words.value.replace("x", "", 1) == "Paris, Lyon, Marseille"
        await pilot.press("escape", "shift+tab", "shift+tab")  # the features field, entered the same way
        assert app.focused is app.query_one("#steer-features") and app.focused.selection.is_empty


@pytest.mark.asyncio
async def test_every_field_has_a_visible_label():
    async with answered() as pilot:
        app = pilot.app
        fields = list(app.query(Input))
        assert {f"#{f.id}" for f in fields} == set(TEXT_FIELDS)
        for field in fields:
            assert isinstance(field, TextField) and field.border_title, field.id
        for pane, label in [("logits", "prompt"), ("logits", "system prompt"), ("steering", "concept words"),
                            ("steering", "features to steer")]:
            app.action_show_pane(pane)
            await pilot.pause()
            assert label in screen_text(app), label  # drawn on the field's border, text or not


@pytest.mark.asyncio
async def test_help_explains_the_focus_model():
    async with answered(size=(120, 50)) as pilot:
        app = pilot.app
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = " ".join(screen_text(app).split())
        for words in ("Focus and typing", "leaves any text field", "never read as keys"):
            assert words in shown, words
