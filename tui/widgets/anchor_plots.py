"""The Anchor pane's charts, drawn with plotext as text: the navigator picture (system prompts as arrows
on the reference plane) and the drift curves (KL, attention share and the target's rank vs context)."""

from __future__ import annotations

from typing import Any

from spectrascope.core.text import one_line, visible
from spectrascope.tui.plots import blank_figure


def plot_navigator(nav: Any, width: int, height: int) -> str:
    """The reference cloud, the prompt alone (white) and an arrow to each system prompt's point."""
    with blank_figure(max(20, width), max(8, height)) as plt:
        return _draw_navigator(plt, nav)


def _draw_navigator(plt: Any, nav: Any) -> str:
    plt.scatter([p[0] for p in nav.reference], [p[1] for p in nav.reference], marker="dot", color="gray",
                label="reference prompts")
    alone = nav.points[0]
    colors = ["cyan", "magenta", "yellow", "green", "orange", "blue"]
    for i, pt in enumerate(nav.points[1:]):
        color = colors[i % len(colors)]
        plt.plot([alone.x, pt.x], [alone.y, pt.y], color=color, marker="braille")
        plt.scatter([pt.x], [pt.y], marker="●", color=color, label=f"{i + 1}: {one_line(pt.system, 24)}")
    plt.scatter([alone.x], [alone.y], marker="○", color="white", label="no system prompt")
    plt.title(f"navigator: last token on PC1 ({nav.explained[0]:.0%}) × PC2 ({nav.explained[1]:.0%})")
    return plt.build()


def plot_drift(rep: Any, width: int, height: int) -> str:
    """KL, attention share and the target's rank vs context tokens, plain and restated; halving marked."""
    with blank_figure(max(30, width), max(8, height)) as plt:
        return _draw_drift(plt, rep)


def _draw_drift(plt: Any, rep: Any) -> str:
    plt.subplots(1, 3)
    series = (("KL", lambda p: p.kl), ("attention → system", lambda p: p.attention_share),
              (f"rank of {visible(rep.target[1], 10)}", lambda p: p.target_rank))
    half = next((p.tokens for p in rep.points if p.turns == rep.halving_turns), None)
    for col, (title, value) in enumerate(series, start=1):
        plt.subplot(1, col)
        plt.theme("clear")
        plt.plot([p.tokens for p in rep.points], [value(p) for p in rep.points], label="plain", color="cyan",
                 marker="hd")
        plt.plot([p.tokens for p in rep.restated], [value(p) for p in rep.restated], label="restated",
                 color="yellow", marker="hd")
        if half is not None:
            plt.vline(half, "red")
        plt.title(title + (" (red: halves)" if col == 1 and half is not None else ""))
        plt.xlabel("context tokens")
    return plt.build()
