"""`spectrascope serve`: the TUI in a browser (textual-serve), leaving nothing running behind it.

textual-serve starts one app process per browser tab through a shell. Three things make it clean up:
- `exec` in the command: the shell becomes the app, so no shell wrapper outlives it;
- SIGTERM / SIGINT: aiohttp stops listening, then waits (up to 60 s) for every open tab's handler, and
  a handler only ends when its browser goes (stock textual-serve: 15-19 s, its websocket heartbeat).
  Our shutdown hook cancels each tab's handler instead, which makes textual-serve tell that app to quit
  and wait for it (and for the browser to answer the close): 0.8 s in all on a 2-core box, against 3.1 s
  and a warning before (bench/bench_serve_stop.py). Should an app or a browser still hang, the server
  leaves after GRACE_S anyway, saying so;
- each app asks the kernel for SIGTERM when its server dies (Linux), so even a killed server
  (SIGKILL, a dropped SSH session's SIGHUP) takes its apps with it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys

GRACE_S = 3.0  # a last resort: the apps quit in well under a second once told (os._exit in run_tui)


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
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.tabs: set[asyncio.Task] = set()  # the handler of each open browser tab

        async def handle_websocket(self, request):
            tab = asyncio.current_task()
            self.tabs.add(tab)
            try:
                return await super().handle_websocket(request)
            finally:
                self.tabs.discard(tab)

        async def on_shutdown(self, app) -> None:
            # Cancelled, a tab's handler tells its app to quit and waits for it (AppService.stop).
            tabs = [tab for tab in self.tabs if tab is not asyncio.current_task()]
            for tab in tabs:
                tab.cancel()
            if tabs:
                await asyncio.wait(tabs, timeout=GRACE_S)

        def request_exit(self) -> None:
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
