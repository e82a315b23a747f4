"""The command palette lists every action (issue 35, item 8): each binding of the app, each pane's show
line and PANES commands, and each key every pane declares; a pane's line runs its action from anywhere."""

from __future__ import annotations

from functools import partial

import pytest
from textual.binding import Binding

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.panes import PANES
from tests.tui.pilot_helpers import fake_app, until


def _palette(app) -> tuple[set[str], set[tuple[str, str]], list[str]]:
    """(app actions, (pane, action) pairs, titles) of what the palette offers."""
    app_actions, pane_actions, titles = set(), set(), []
    for command in app.get_system_commands(app.screen):
        titles.append(command.title)
        callback = command.callback
        if isinstance(callback, partial) and callback.func == app.run_action:
            app_actions.add(callback.args[0])
        elif isinstance(callback, partial) and callback.func == app.action_pane_action:
            pane_actions.add(callback.args)
    return app_actions, pane_actions, titles


def _bindings(owner) -> list[Binding]:
    return [b if isinstance(b, Binding) else Binding(*b) for b in owner.BINDINGS]


@pytest.mark.asyncio
async def test_every_binding_and_pane_command_has_a_palette_entry():
    app = fake_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app_actions, pane_actions, titles = _palette(app)
        missing = [b.action for b in _bindings(SpectrascopeApp) if b.action not in app_actions]
        for entry in PANES:
            if f"show_pane('{entry.name}')" not in app_actions:
                missing.append(f"show {entry.name}")
            for _, action, _ in entry.commands:
                if f"pane_action('{entry.name}', '{action}')" not in app_actions:
                    missing.append(f"{entry.name}: {action}")
            listed = {action for _, action, _ in entry.commands}
            for binding in _bindings(entry.pane_class()):
                if binding.action not in listed and (entry.name, binding.action) not in pane_actions:
                    missing.append(f"{entry.name}: {binding.action} ({binding.key})")
        assert missing == []
        assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
        assert "Layers: Tuned lens" in titles  # found by "tuned" from any pane (it was not, outside Layers)


@pytest.mark.asyncio
async def test_a_pane_line_runs_its_action_from_another_pane():
    app = fake_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        logits = app.pane("logits")
        before = logits.settings.temperature
        app.action_show_pane("spectrum")
        await pilot.pause()
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Logits: T+")
        command.callback()  # what choosing the line in the palette runs
        await until(pilot, lambda: logits.settings.temperature == pytest.approx(before + 0.1))
        assert app.query_one("TabbedContent").active == "tab-logits"
