"""`spectrascope serve`: the TUI in a browser (textual-serve), leaving nothing running behind it.

textual-serve starts one app process per browser tab through a shell. Three things make it clean up:
- `exec` in the command: the shell becomes the app, so no shell wrapper outlives it;
- SIGTERM / SIGINT: textual-serve asks each app to quit while aiohttp shuts down; if that has not
  finished after GRACE_S the server leaves anyway (aiohttp would wait up to 60 s per handler);
- each app asks the kernel for SIGTERM when its server dies (Linux), so even a killed server
  (SIGKILL, a dropped SSH session's SIGHUP) takes its apps with it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

GRACE_S = 3.0  # for the apps to quit on their own; they take well under a second (os._exit in run_tui)


def app_command(argv: list[str]) -> str:
    """The shell command for one app process: `exec`, so the shell is replaced, not kept as a parent."""
    return "exec " + shlex.join([sys.executable, "-m", "spectrascope.tui.cli", *argv])


def serve(argv: list[str], host: str, port: int) -> int:
    try:
        from textual_serve.server import Server
    except ModuleNotFoundError:  # an environment installed before it was a dependency
        raise ValueError("serve needs textual-serve, a dependency since 0.1: pip install -e . (or "
                         "pip install 'textual-serve>=1.1')") from None

    class CleanServer(Server):
        def request_exit(self) -> None:
            import asyncio

            # The timer fires while aiohttp's shutdown runs the loop; a clean shutdown ends first.
            asyncio.get_event_loop().call_later(GRACE_S, _leave_now)
            super().request_exit()

    CleanServer(app_command(argv), host=host, port=port, title="spectrascope").serve()
    return 0


def _leave_now() -> None:
    print("[spectrascope] the apps did not quit in time; leaving (they end with the server)", file=sys.stderr)
    sys.stderr.flush()
    os._exit(0)


def served() -> bool:
    """True inside an app process that textual-serve started (its web driver is in the environment)."""
    return "web_driver" in os.environ.get("TEXTUAL_DRIVER", "")


def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (the server) dies; elsewhere nothing (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the server died before the call: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)
