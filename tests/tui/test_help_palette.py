"""Help, footer and palette speak keys as printed on the keyboard, and the palette lists each command once."""

from __future__ import annotations

import re

import pytest
from textual.binding import Binding

from spectrascope.tui.help import key_name
from tests.tui.pilot_helpers import fake_app, until

RAW = re.compile(r"question_mark|equals_sign|square_bracket|\bplus\b|\bminus\b|\bslash\b")


def test_key_names_read_as_keys():
    assert key_name("plus,equals_sign") == "+, ="
    assert key_name("right_square_bracket") == "]"
    assert key_name("ctrl+l,slash") == "^l, /"


@pytest.mark.asyncio
async def test_every_binding_and_palette_command_has_a_readable_key_and_a_unique_title():
    app = fake_app()
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


@pytest.mark.asyncio
async def test_every_key_a_pane_reacts_to_is_in_its_help_enter_included():
    import inspect
    import io

    from rich.console import Console
    from rich.table import Table
    from textual.widgets import Static

    from spectrascope.tui.help import HelpScreen, key_name

    app = fake_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app.query_one("#logits-table").focus()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
        shown = {}
        for static in app.screen.query(Static):
            if isinstance(static.content, Table) and static.content.title:
                console.print(static.content)
                shown[str(static.content.title)] = console.export_text()
        owners = [("Everywhere", app)] + [(pane.pane_title, pane) for pane in app.query(".pane")]
        with_enter = set()
        for title, owner in owners:
            text = shown[title]
            for b in owner.BINDINGS:
                b = b if isinstance(b, Binding) else Binding(*b)
                if b.description:
                    row = rf"^ *{re.escape(key_name(b.key))} +{re.escape(b.description)}"
                    assert re.search(row, text, re.M), (title, b.key)
            # Read from the source, not from the help's own check: a field or table handler means enter acts.
            source = inspect.getsource(type(owner))
            if "Input.Submitted" in source or "FastTable.Selected" in source:
                with_enter.add(title)
                assert re.search(r"^ *enter +\S", text, re.M), f"{title}: enter is missing from its help"
            else:
                assert not re.search(r"^ *enter +", text, re.M), f"{title}: enter listed but does nothing"
        assert {"Everywhere", "Logits", "Spectrum", "Pairing", "Steering", "Anchor"} <= with_enter
