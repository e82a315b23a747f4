"""Leaving never waits on work: ctrl+q with a worker stuck in a call, and `serve` on SIGTERM / SIGKILL
or a browser tab that closes (real processes; the served app gets a model that does not exist, so no
weights load)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "SPECTRASCOPE_CONFIG": str(tmp_path / "none.toml")}  # no user config


def test_ctrl_q_leaves_while_a_worker_is_stuck(tmp_path):
    """The session load below never returns (like a C call that cannot be interrupted). Before the fix
    App.run's asyncio.run joined that worker thread on exit, so this process never ended."""
    script = textwrap.dedent("""
        import sys, threading
        from spectrascope.tui import cli
        from spectrascope.tui.app import SpectrascopeApp

        def stuck_load(args, progress=None):
            threading.Event().wait()

        async def quit_soon(pilot):
            await pilot.pause(0.3)
            await pilot.press("ctrl+q")

        run = SpectrascopeApp.run
        SpectrascopeApp.run = lambda self, **kw: run(self, headless=True, auto_pilot=quit_soon, **kw)
        cli._load_session = stuck_load
        sys.exit(cli.main(["--prompt", "x"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def _session_processes(sid: int) -> dict[int, str]:
    """Live (not zombie) processes of session `sid`: pid -> command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(stat.parent.name)] = cmdline
    return found


def _wait(condition, seconds: float = 15.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


async def _open_tab(port: int):
    """A browser tab: the websocket that makes the server start an app process."""
    import aiohttp

    for _ in range(150):
        http = aiohttp.ClientSession()
        try:
            return http, await http.ws_connect(f"http://127.0.0.1:{port}/ws?width=80&height=24")
        except aiohttp.ClientConnectorError:
            await http.close()
            await asyncio.sleep(0.1)
    raise AssertionError("the server never listened")


@linux_only
@pytest.mark.parametrize("ending", ["sigterm", "sigkill"])
def test_serve_leaves_nothing_running(tmp_path, ending):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "spectrascope.tui.cli", "serve", "--port", str(port),
                               "--model", str(tmp_path / "no-such-model")], env=_env(tmp_path),
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def apps():
            return [cmd for pid, cmd in _session_processes(server.pid).items() if pid != server.pid]

        async def scenario():
            # A tab that closes: its app goes, the server stays.
            http, ws = await _open_tab(port)
            assert await asyncio.to_thread(_wait, lambda: len(apps()) == 1), apps()
            assert "spectrascope.tui.cli" in apps()[0] and not apps()[0].startswith("/bin/sh")  # no shell wrapper
            await ws.close()
            await http.close()
            assert await asyncio.to_thread(_wait, lambda: not apps()), apps()
            assert server.poll() is None
            # A tab still open when the server is stopped.
            http, ws = await _open_tab(port)
            assert await asyncio.to_thread(_wait, lambda: len(apps()) == 1), apps()
            server.send_signal(signal.SIGTERM if ending == "sigterm" else signal.SIGKILL)
            gone = await asyncio.to_thread(_wait, lambda: server.poll() is not None and not apps())
            await http.close()
            return gone

        assert asyncio.run(scenario()), f"still running after {ending}: {_session_processes(server.pid)}"
    finally:
        if _session_processes(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
