"""Help, footer and palette speak keys as printed on the keyboard, and the palette lists each command once."""

from __future__ import annotations

import re

import pytest
from textual.binding import Binding

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.help import key_name
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

RAW = re.compile(r"question_mark|equals_sign|square_bracket|\bplus\b|\bminus\b|\bslash\b")


def test_key_names_read_as_keys():
    assert key_name("plus,equals_sign") == "+, ="
    assert key_name("right_square_bracket") == "]"
    assert key_name("ctrl+l,slash") == "^l, /"


@pytest.mark.asyncio
async def test_every_binding_and_palette_command_has_a_readable_key_and_a_unique_title():
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt="The capital of France is")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        bindings = list(app.BINDINGS) + [b for pane in app.query(".pane") for b in pane.BINDINGS]
        for b in bindings:
            b = b if isinstance(b, Binding) else Binding(*b)
            assert not RAW.search(key_name(b.key)), b.key
        assert any(b.description == "High contrast" for b in app.BINDINGS)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
        assert "Screenshot" not in titles and titles.count("Quit") == 1
        for command in titles + [h for _, _, h in app.COMMANDS_LIST]:
            assert not RAW.search(command), command
