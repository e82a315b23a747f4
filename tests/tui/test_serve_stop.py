"""`serve` (issue 35, item 8): SIGTERM ends it cleanly and without the "did not quit in time" warning
(the time itself: bench/bench_serve_stop.py), and --prompt/--session/--demo reach each tab's app as
`spectrascope` takes them. Real processes; the served app gets a model that does not exist, so no
weights load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from spectrascope.tui import cli

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
def test_sigterm_with_a_tab_open_ends_cleanly_without_the_warning(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_serve_stop import _free_port, _session_pids, _tab_drawn

    port = _free_port()
    env = {**os.environ, "SPECTRASCOPE_CONFIG": str(tmp_path / "none.toml")}
    server = subprocess.Popen([sys.executable, "-m", "spectrascope.tui.cli", "serve", "--port", str(port),
                               "--model", str(tmp_path / "no-such-model")], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        async def scenario():
            http, ws, reader = await _tab_drawn(port, 60)  # a tab that reads on, as a browser does
            assert len(_session_pids(server.pid)) == 2  # the server and the tab's app
            server.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.wait, 30)
            reader.cancel()
            await http.close()

        asyncio.run(scenario())
        stderr = server.stderr.read()
        assert server.returncode == 0, stderr
        assert "did not quit in time" not in stderr  # the clean path, not the GRACE_S fallback
        assert _session_pids(server.pid) == []  # the app went with it
    finally:
        if _session_pids(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(tmp_path / "none.toml"))
    demo = tmp_path / "talk.demo"
    demo.write_text("type Paris is\nwait-result\n")
    session = tmp_path / "saved.json"
    session.write_text(json.dumps({"version": 2, "prompt": "Rome is", "model": None, "panes": {}}))
    return demo, session


def _served_argv(monkeypatch, argv: list[str]) -> list[str]:
    """What each tab's app would be started with, without serving."""
    import spectrascope.tui.serve as serve

    got = []
    monkeypatch.setattr(serve, "serve", lambda app_argv, host, port: got.append(app_argv) or 0)
    assert cli.main(argv) == 0
    return got[0]


@pytest.mark.parametrize("order", ["after", "before"])
def test_serve_passes_prompt_session_and_demo_to_each_app(files, monkeypatch, tmp_path, order):
    demo, session = files
    flags = ["--prompt", "Paris is", "--session", str(session), "--demo", str(demo),
             "--output-dir", str(tmp_path / "out")]
    argv = _served_argv(monkeypatch, ["serve", *flags] if order == "after" else [*flags, "serve"])
    pairs = dict(zip(argv[::2], argv[1::2]))
    assert pairs["--prompt"] == "Paris is"
    assert pairs["--session"] == str(session.resolve()) and pairs["--demo"] == str(demo.resolve())
    assert pairs["--output-dir"] == str((tmp_path / "out").resolve())
    # The app process parses them as the main command does.
    args = cli.parse_args(argv)
    assert (args.command, args.initial_prompt, args.session, args.demo) == (None, "Paris is", str(session.resolve()),
                                                                            str(demo.resolve()))


def test_serve_without_them_passes_none(files, monkeypatch):
    argv = _served_argv(monkeypatch, ["serve"])
    assert not {"--prompt", "--session", "--demo", "--output-dir", "--export-dir"} & set(argv)


def test_a_relative_demo_path_is_made_absolute(files, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    argv = _served_argv(monkeypatch, ["serve", "--demo", "talk.demo"])
    assert argv[argv.index("--demo") + 1] == str(tmp_path / "talk.demo")


@pytest.mark.parametrize("flag, content, message", [
    ("--demo", None, "Cannot read demo script"),
    ("--session", "{not json", "not valid JSON"),
])
def test_a_bad_file_is_one_line_before_serving(files, monkeypatch, tmp_path, capsys, flag, content, message):
    import spectrascope.tui.serve as serve

    monkeypatch.setattr(serve, "serve", lambda *a: pytest.fail("served despite a bad file"))
    path = tmp_path / "bad"
    if content is not None:
        path.write_text(content)
    assert cli.main(["serve", flag, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spectrascope: ") and len(err.splitlines()) == 1 and message in err, err


def test_a_flag_given_on_both_sides_differently_is_refused(files, capsys):
    assert cli.main(["--prompt", "a", "serve", "--prompt", "b"]) == 2
    assert "--prompt given twice" in capsys.readouterr().err
