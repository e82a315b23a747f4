"""The headless commands' console: a terminal's width on a terminal, room for every column in a file or pipe."""

from __future__ import annotations

import sys

PIPE_WIDTH = 200  # rich would squeeze tables to 80 columns off a terminal and cut numbers to "0.1…"


def headless_console():
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
