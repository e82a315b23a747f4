"""A paste is inert text: parsed from the terminal's raw bytes, it reaches the focused field as
plain text and fires no key binding; on a pane it is ignored. The Pilot tests feed the app what
the terminal driver would post for those bytes (the driver runs `InertPasteParser`)."""

from __future__ import annotations

import unicodedata

import pytest
from textual import events
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.widgets import Input, Static

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.paste import InertPasteParser, inert_text, parse_terminal_input
from tests.tui.fake_session import fake_with_saes
from tests.tui.hostile_text import HOSTILE, PASTE_ESCAPES
from tests.tui.pilot_helpers import PANES, TEXT_FIELDS, pane_home, show_pane, until

PASTES = HOSTILE + PASTE_ESCAPES


def bracketed(text: str) -> str:
    """What a terminal in bracketed-paste mode sends when `text` is pasted."""
    return BRACKETED_PASTE_START + text + BRACKETED_PASTE_END


def controls(text: str) -> set[str]:
    return {ch for ch in text if unicodedata.category(ch) == "Cc"} - {"\n", "\t"}


# ---- the parser, on raw terminal input ---------------------------------------------------------
def test_textual_alone_turns_an_escape_in_a_paste_into_key_presses():
    """Why InertPasteParser exists (Textual 8.2.8): if this fails, Textual fixed it upstream."""
    parser = XTermParser()
    keys = [m.key for m in [*parser.feed(bracketed("\x1b]0;title\x07 the")), *parser.feed("")]
            if isinstance(m, events.Key)]
    assert "ctrl+g" in keys and "t" in keys


@pytest.mark.parametrize("text", PASTES, ids=[f"paste{i}" for i in range(len(PASTES))])
def test_a_paste_is_one_paste_event_of_inert_text(text):
    messages = parse_terminal_input(bracketed(text), "q")  # the key comes a second later, as typed
    assert [type(m) for m in messages] == [events.Paste, events.Key]  # the key after the paste still counts
    pasted = messages[0].text
    assert pasted == inert_text(text) and not controls(pasted) and "\x1b" not in pasted


def test_paste_text_keeps_the_words_and_drops_whole_escape_sequences():
    assert inert_text("\x1b]0;title\x07 the") == " the"
    assert inert_text("\x1b[31mred\x1b[0m text") == "red text"
    assert inert_text("a\r\nb\rc\td") == "a\nb\nc\td"
    assert inert_text("nul\x00 bel\x07 del\x7f c1\x85") == "nul bel del c1"
    assert inert_text("שלום 👩‍👩‍👧‍👦 [bold]") == "שלום 👩‍👩‍👧‍👦 [bold]"  # text, markup included, is kept


def test_a_paste_split_across_reads_is_the_same_paste():
    raw = bracketed("\x1b[31mred\x1b[0m and \x1b]0;title\x07 more") + "x"
    now = [0.0]
    parser = InertPasteParser(clock=lambda: now[0])
    messages = [m for ch in raw[:-1] for m in parser.feed(ch)]  # a paste split into one-byte reads
    now[0] += 1.0  # the "x" is typed a second later
    messages += [*parser.feed(raw[-1]), *parser.feed("")]
    assert [(type(m), getattr(m, "text", None)) for m in messages[:1]] == [(events.Paste, "red and  more")]
    assert [m.key for m in messages[1:]] == ["x"]


# What tmux 3.3a sends for a paste holding its own end marker (it passes the inner ESC[201~ through):
# "hello", a fake end, keys that would move the temperature, screenshot (BEL = ctrl+g) and step, then "world".
NESTED_END = "\x1b[200~hello\x1b[201~ttttT\x07gg\x1b[200~world\x1b[201~"


def test_the_parser_takes_the_drivers_arguments():
    InertPasteParser(False)  # linux_driver: XTermParser(self._debug)
    InertPasteParser(debug=False)  # web_driver


def test_input_in_the_same_burst_as_a_paste_end_is_pasted_text():
    messages = parse_terminal_input(NESTED_END)  # one read, as tmux delivers it
    assert [(type(m), m.text) for m in messages] == [(events.Paste, "hello"), (events.Paste, "ttttTggworld")]
    head, tail, last = NESTED_END.partition("ttttT")[0], "ttttT\x07gg", "\x1b[200~world\x1b[201~"
    fast = parse_terminal_input(head, tail, last, gap=0.002)  # three reads, 2 ms apart: still the paste
    assert all(isinstance(m, events.Paste) for m in fast) and "".join(m.text for m in fast) == "hellottttTggworld"
    slow = parse_terminal_input(head, "t", gap=0.2)  # a key 200 ms after a paste is typed
    assert [type(m) for m in slow] == [events.Paste, events.Key] and slow[1].key == "t"


def test_keys_and_escape_outside_a_paste_are_unchanged():
    assert [m.key for m in parse_terminal_input("a\x1b[Ab")] == ["a", "up", "b"]
    assert [m.key for m in parse_terminal_input("\x1b")] == ["escape"]


def test_the_app_drivers_read_input_with_the_inert_paste_parser(monkeypatch):
    from textual import constants
    from textual.drivers import linux_driver

    SpectrascopeApp(lambda progress: None)
    assert linux_driver.XTermParser is InertPasteParser  # the terminal
    monkeypatch.setattr(constants, "DRIVER", "textual.drivers.web_driver:WebDriver")  # what `serve` sets
    SpectrascopeApp(lambda progress: None)
    from textual.drivers import web_driver

    assert web_driver.XTermParser is InertPasteParser


# ---- the app: every field and every pane --------------------------------------------------------
async def started(pilot):
    app = pilot.app
    await until(pilot, lambda: app.result is not None)
    actions: list[str] = []  # every key binding runs through App.run_action: record them
    run_action = app.run_action

    async def recording(action, *args, **kwargs):
        actions.append(str(action))
        return await run_action(action, *args, **kwargs)

    app.run_action = recording
    return actions


async def paste(pilot, text: str, raw: str | None = None) -> None:
    for message in parse_terminal_input(raw or bracketed(text)):
        pilot.app.post_message(message)  # as the driver does
    await pilot.pause()


@pytest.mark.asyncio
@pytest.mark.parametrize("field", list(TEXT_FIELDS))
async def test_a_paste_lands_in_the_field_as_text_and_fires_nothing(field, tmp_path):
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="The capital of France is", output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        actions = await started(pilot)
        await show_pane(pilot, TEXT_FIELDS[field])
        box = app.query_one(field, Input)
        box.focus()
        settings = app.query_one("#logits").settings
        for text in PASTES:
            box.value = ""
            await paste(pilot, text)
            assert box.value == (inert_text(text).splitlines() or [""])[0], repr(text)
            assert not controls(box.value) and app.focused is box
        assert actions == [] and list(tmp_path.iterdir()) == []  # no binding ran: no ^g screenshot
        assert app.query_one("#logits").settings == settings


@pytest.mark.asyncio
@pytest.mark.parametrize("pane", PANES)
async def test_a_paste_on_a_pane_is_ignored_and_fires_nothing(pane, tmp_path):
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="The capital of France is", output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        actions = await started(pilot)
        await show_pane(pilot, pane)
        actions.clear()
        logits, steering = app.query_one("#logits"), app.query_one("#steering")
        before = (logits.settings, steering.method, steering.positions, app.query_one("#prompt", Input).value)
        for text in PASTES:
            await paste(pilot, text)
        await paste(pilot, "", raw=NESTED_END)  # a paste carrying its own end marker, as tmux sends it
        assert actions == [] and list(tmp_path.iterdir()) == []
        assert (logits.settings, steering.method, steering.positions, app.query_one("#prompt", Input).value) == before
        assert app.focused is pane_home(app, pane)
        assert "Paste ignored" in str(app.query_one("#status", Static).render())
