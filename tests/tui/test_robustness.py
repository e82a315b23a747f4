"""Never falls over, loses nothing: hostile text, random keys, help, export, sessions."""

import json
import random

import pytest
from textual.widgets import Input, Static, TabbedContent

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.session_file import load_session_file
from tests.tui.hostile_text import HOSTILE
from tests.tui.pilot_helpers import until


def screen_text(app) -> str:
    return "\n".join(
        str(w.render()) for w in app.query(Static) if w.display
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
async def test_hostile_prompts_render_as_text(tiny_sae_session, text, tmp_path):
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="start", output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app.query_one("#prompt", Input).value = text
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not None and app.result.prompt == text)
        for tab in ("tab-logits", "tab-spectrum"):
            app.query_one(TabbedContent).active = tab
            await pilot.pause()
        shown = screen_text(app)
        assert "\x1b" not in shown and "\x00" not in shown and "\u202e" not in shown
        app.save_screenshot(path=str(pilot.app.output_dir), filename="hostile.svg")  # renders every strip


@pytest.mark.asyncio
async def test_a_thousand_random_keys_across_all_panes(tiny_sae_session, tmp_path):
    rng = random.Random(1234)
    keys = (list("tTkKpPsgbnrahlm0?q") + ["left", "right", "up", "down", "enter", "tab", "shift+tab",
            "escape", "backspace", "f1", "f2", "f3", "f4", "f5", "f9", "ctrl+r", "ctrl+e", "ctrl+l",
            "space", "home", "end", "pageup", "pagedown"])
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="The capital of France", output_dir=tmp_path)
    errors = []
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        logits = app.query_one("#logits")
        logits.n_runs, logits.run_steps = 2, 3  # keep each "n" short: we test robustness, not speed
        for i in range(1000):
            await pilot.press(rng.choice(keys))
            if i % 50 == 0:
                await pilot.pause(0.05)
            if app._exception is not None:
                errors.append(app._exception)
                break
        await pilot.pause(0.5)
        assert app.is_running
    assert errors == [] and app._exception is None


@pytest.mark.asyncio
async def test_help_lists_keys_for_each_pane(tiny_session):
    app = SpectrascopeApp(lambda progress: tiny_session, prompt="x")
    async with app.run_test(size=(120, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f1")
        await pilot.pause()
        from rich.console import Console

        console = Console(width=100, record=True)
        for title, bindings in app.screen.sections:
            from spectrascope.tui.help import bindings_table

            console.print(bindings_table(title, bindings))
        text = console.export_text()
        for section in ("Everywhere", "Logits", "Spectrum"):
            assert section in text
        assert "Sample" in text and "All tokens" in text and "^q" in text
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


@pytest.mark.asyncio
async def test_every_palette_command_runs(tiny_session, tmp_path):
    app = SpectrascopeApp(lambda progress: tiny_session, prompt="x", output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title, action, _ in app.COMMANDS_LIST:
            assert title in titles
            if action not in ("quit", "help"):
                await app.run_action(action)
                await pilot.pause()
        assert app.is_running


@pytest.mark.asyncio
async def test_screenshot_export_and_session_round_trip(tiny_sae_session, tmp_path):
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="The capital of France", output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app.query_one("#logits-table").focus()
        await pilot.press("t", "t", "K", "K", "K")
        await pilot.press("ctrl+g", "ctrl+e", "f3", "ctrl+e", "ctrl+s")
        await pilot.pause(0.2)
        files = sorted(p.suffix for p in tmp_path.rglob("*") if p.is_file())  # exports: in spectrascope-exports/
        assert files.count(".svg") == 1 and ".csv" in files and files.count(".json") == 3
        session_file = next(p for p in tmp_path.iterdir() if p.name.startswith("spectrascope-session"))
        saved = load_session_file(session_file)
        assert saved["panes"]["logits"]["settings"]["top_k"] == 3
        logits_csv = next(tmp_path.glob("spectrascope-exports/spectrascope-logits-*.csv")).read_text()
        assert logits_csv.startswith("rank,token_id,token,logit")
    restored = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="ignored", restore=saved)
    async with restored.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: restored.result is not None)
        assert restored.query_one("#prompt", Input).value == "The capital of France"
        assert restored.query_one("#logits").settings.top_k == 3
        assert restored.query_one("#logits").settings.temperature == pytest.approx(0.8)


def test_bad_session_files_get_clear_messages(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_session_file(bad)
    bad.write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="not a spectrascope session"):
        load_session_file(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_session_file(tmp_path / "missing.json")


@pytest.mark.asyncio
async def test_contrast_theme_toggles(tiny_session):
    app = SpectrascopeApp(lambda progress: tiny_session, prompt="x")
    async with app.run_test() as pilot:
        await pilot.press("f9")
        assert app.theme == "spectrascope-contrast"
        await pilot.press("f9")
        assert app.theme == "textual-dark"
