"""How long `spectrascope serve` takes to end after SIGTERM with a browser tab open, and whether it
warns; against stock textual-serve serving the same app command, in the same run.

    .venv/bin/python bench/bench_serve_stop.py [--repeats 3] [--model gemma-3-270m]

A tab is a websocket to /ws that reads everything the server sends, as a browser does; the app process
must have drawn its first frame, then idles --settle seconds, before the signal. Without --model the app
gets a model that does not exist (no weights load: it shows the error and idles); with --model each tab
loads that model (`--model gemma-3-270m --settle 30`: time for its load, 16-18 s on 2 cores per the review).

Measured on a shared 2-core CPU box, --repeats 3: before (HEAD) ours 3.08-3.14 s, warned 3/3 (the GRACE_S
fallback); after 0.73-0.92 s, warned 0/3; stock textual-serve 15-20 s (its 15 s websocket heartbeat).
With the embedded model loaded (--repeats 1): ours 0.65 s, stock 23.7 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARNING = "did not quit in time"

STOCK = """
import sys
from textual_serve.server import Server
from spectrascope.tui.serve import app_command
Server(app_command(sys.argv[2:]), port=int(sys.argv[1]), title="stock").serve()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


async def _tab_drawn(port: int, timeout: float):
    """Open a tab and wait for the app's first frame; then it reads on, as a browser does (and so answers
    the server's close frame). Returns (http session, websocket, reader task)."""
    import aiohttp

    end = time.monotonic() + timeout
    while True:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30")
            break
        except aiohttp.ClientConnectorError:
            await http.close()
            if time.monotonic() > end:
                raise TimeoutError("the server never listened") from None
            await asyncio.sleep(0.1)
    received = 0
    while received < 2000:  # a first frame is several KB of escape codes
        msg = await asyncio.wait_for(ws.receive(), max(0.1, end - time.monotonic()))
        received += len(msg.data) if isinstance(msg.data, (bytes, str)) else 0

    async def read_on():
        async for _ in ws:
            pass

    return http, ws, asyncio.create_task(read_on())


def one_stop(kind: str, model: str, settle: float, load_timeout: float) -> tuple[float, bool, int]:
    """(seconds from SIGTERM until every process of the server's session is gone, warned?, exit code)."""
    port = _free_port()
    env = {**os.environ, "SPECTRASCOPE_CONFIG": os.devnull + ".absent"}
    app_flags = ["--model", model]
    if kind == "ours":
        argv = [sys.executable, "-m", "spectrascope.tui.cli", "serve", "--port", str(port), *app_flags]
    else:
        argv = [sys.executable, "-c", STOCK, str(port), *app_flags]
    with tempfile.TemporaryFile() as err:
        server = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
        try:
            async def scenario():
                http, ws, reader = await _tab_drawn(port, load_timeout)
                await asyncio.sleep(settle)  # the app idles (its model loaded, or its load failed)
                t0 = time.perf_counter()
                server.send_signal(signal.SIGTERM)
                while _session_pids(server.pid) or server.poll() is None:
                    await asyncio.sleep(0.01)
                    if time.perf_counter() - t0 > 90:
                        break
                seconds = time.perf_counter() - t0
                reader.cancel()
                await http.close()
                return seconds

            seconds = asyncio.run(scenario())
        finally:
            if _session_pids(server.pid):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        err.seek(0)
        return seconds, WARNING in err.read().decode(errors="replace"), server.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=None, help="a real model for each tab [a missing one: nothing loads]")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds the app idles before the signal")
    args = ap.parse_args()
    model = args.model or str(Path(tempfile.gettempdir()) / "no-such-model")
    load_timeout = 600 if args.model else 60
    results = {}
    for kind in ("ours", "stock"):
        runs = [one_stop(kind, model, args.settle, load_timeout) for _ in range(args.repeats)]
        results[kind] = runs
        times = sorted(r[0] for r in runs)
        print(f"{kind:>5}: SIGTERM -> all gone in {', '.join(f'{t:.2f}' for t in times)} s (median {times[len(times) // 2]:.2f}); "
              f"warned {sum(r[1] for r in runs)}/{len(runs)}; exit codes {sorted({r[2] for r in runs})}", flush=True)
    ours = sorted(r[0] for r in results["ours"])[args.repeats // 2]
    stock = sorted(r[0] for r in results["stock"])[args.repeats // 2]
    print(f"stock / ours (median): {stock / ours:.1f}x")


if __name__ == "__main__":
    main()
