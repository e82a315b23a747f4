"""Files where they belong (issue 35, item 5): sessions, screenshots and exports go to the per-user data
folder unless --output-dir / --export-dir or the config say otherwise, never to the working directory;
each path is said in full; the Pairing export is named after its prompt sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from spectrascope.tui import cli
from spectrascope.tui.folders import default_output_dir, output_dir
from tests.tui.pilot_helpers import fake_app, show_pane, until


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """XDG_DATA_HOME in tmp_path, and a working directory that must stay empty."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "data"


def test_the_default_is_the_per_user_data_folder(data_home):
    assert default_output_dir() == data_home / "spectrascope"
    assert output_dir(None, {}) == data_home / "spectrascope"
    assert output_dir(None, {"export": {"output_dir": "~/talk"}}) == Path("~/talk").expanduser().resolve()
    assert output_dir("out", {"export": {"output_dir": "~/talk"}}) == Path("out").resolve()  # the flag wins


@pytest.mark.asyncio
async def test_ctrl_s_g_e_write_to_the_data_folder_and_say_where(data_home, tmp_path):
    folder = data_home / "spectrascope"
    app = fake_app()  # no output_dir, as `spectrascope` without flags
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await show_pane(pilot, "logits")
        for key, pattern in (("ctrl+s", "spectrascope-session-*.json"), ("ctrl+g", "spectrascope-logits-*.svg"),
                             ("ctrl+e", "spectrascope-exports/spectrascope-logits-*.json")):
            await pilot.press(key)
            await until(pilot, lambda: any(folder.glob(pattern)))
            path = next(folder.glob(pattern))
            messages = [str(n.message) for n in app._notifications]
            assert any(str(path.with_suffix("")) in m for m in messages), (key, messages)  # export: stem (+ .json)
        status = str(app.query_one("#status", Static).render())
        assert "Exported" in status
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing in the working directory


@pytest.mark.asyncio
async def test_a_path_with_markup_characters_is_shown_as_it_is(tmp_path):
    odd = tmp_path / "[bold]talk"
    app = fake_app(output_dir=odd)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any(odd.glob("spectrascope-session-*.json")))
        assert any("[bold]talk" in str(n.message) for n in app._notifications)


class Recorder:
    """Stands in for SpectrascopeApp in `cli.main`: records what the app would get, runs nothing."""

    made: list[dict] = []
    return_code = 0

    def __init__(self, factory, **kwargs):
        Recorder.made.append(kwargs)

    def run(self, loop=None):
        pass


@pytest.fixture
def recorder(monkeypatch):
    import spectrascope.tui.app as app_module

    Recorder.made = []
    monkeypatch.setattr(app_module, "SpectrascopeApp", Recorder)
    return Recorder.made


def test_cli_default_config_and_flags_choose_the_folders(data_home, tmp_path, monkeypatch, recorder):
    assert cli.main([]) == 0
    assert recorder[-1]["output_dir"] == data_home / "spectrascope" and recorder[-1]["export_dir"] is None
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[export]\noutput_dir = "{tmp_path / "from-config"}"\nfolder = "{tmp_path / "exports"}"\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    assert cli.main([]) == 0
    assert recorder[-1]["output_dir"] == tmp_path / "from-config"
    assert recorder[-1]["export_dir"] == str(tmp_path / "exports")
    assert cli.main(["--output-dir", str(tmp_path / "flag"), "--export-dir", str(tmp_path / "flag-exports")]) == 0
    assert recorder[-1]["output_dir"] == tmp_path / "flag"
    assert recorder[-1]["export_dir"] == str(tmp_path / "flag-exports")


def test_the_config_rejects_an_empty_output_dir(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[export]\noutput_dir = ""\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    assert cli.main([]) == 2
    assert "[export] output_dir" in capsys.readouterr().err


def test_the_pairing_export_is_named_after_its_prompt_sets():
    from spectrascope.core.views.pairing import PairingReport

    report = PairingReport(result=None, sets=("/x/assets/prompts/france.txt", "/x/assets/prompts/france-neutral.txt"))
    assert report.sets_name == "france-vs-france-neutral"
    assert PairingReport(result=None).sets_name == "run"


@pytest.mark.asyncio
async def test_pairing_ctrl_e_file_names_its_prompt_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept, neutral = tmp_path / "cheese.txt", tmp_path / "plain.txt"
    concept.write_text("France has cheese.\nParis is the capital of France.\nThe Eiffel Tower is in Paris.\n")
    neutral.write_text("A quick brown fox.\nThe cat sleeps.\nLanguage models predict the next token.\n")
    app = fake_app(output_dir=tmp_path / "out")
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await show_pane(pilot, "pairing")
        pane = app.query_one("#pairing")
        pane.set_state({"concept": str(concept), "neutral": str(neutral)})
        await pilot.press("r")
        await until(pilot, lambda: pane.report is not None and not pane.busy, timeout=120)
        await pilot.press("ctrl+e")
        folder = tmp_path / "out" / "spectrascope-exports"
        await until(pilot, lambda: any(folder.glob("*.json")))
    names = sorted(p.name for p in folder.iterdir())
    assert names and all(n.startswith("spectrascope-pairing-cheese-vs-plain-") for n in names), names
