"""One way to start a plotext chart: plotext keeps a single global figure, so each chart starts from a blank one."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

_LOCK = threading.Lock()  # panes draw from the UI thread and from workers; one chart at a time


@contextmanager
def blank_figure(width: int, height: int) -> Iterator[object]:
    """Yield plotext reset to its master figure (no subplots left over from another pane), themed and sized.

    Without `main()` a `clf()` clears only the active subplot, so a pane drawn after a 1x3 grid
    (the Anchor drift plot) drew into the grid's last cell and showed the other pane's charts.
    """
    import plotext as plt

    with _LOCK:
        plt.main()
        plt.clf()
        plt.theme("clear")
        plt.plotsize(width, height)
        yield plt
