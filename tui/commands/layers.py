"""`spectrascope lens`: the logit (or tuned) lens at one token, layer by layer (core/views/layers.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--position", type=int, default=-1, help="token index (-1 = last)")
    p.add_argument("--top", type=int, default=5, help="tokens per layer")
    p.add_argument("--tuned", action="store_true",
                   help="the tuned lens: per-layer affine translators (ridge least squares to the last layer's "
                        "residual) fitted once per model on the shipped prompt sets and cached")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.layers import LayersSpec

    return LayersSpec(args.prompt, args.position, args.top, args.tuned)


def text(layers: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    report = layers.report
    target = visible(report.target[1])
    table = Table(title=f"{report.lens} at token {report.position} ({visible(report.tokens[report.position])}) · final "
                        f"top-1 {target} · top-1 from layer {report.commitment} on", title_justify="left")
    for col, justify in (("layer", "right"), (f"rank of {target}", "right"), ("p", "right"), ("entropy", "right"),
                         ("|x|", "right"), ("top-3 dims", "right"), ("top tokens", "left")):
        table.add_column(col, justify=justify)
    for row in report.rows:
        tops = "  ".join(f"{visible(piece)} {p:.2f}" for _, piece, p in row.top)
        table.add_row(row.layer, str(row.target_rank), f"{row.target_prob:.3f}", f"{row.entropy:.2f}",
                      f"{row.norm:.0f}", f"{row.massive_share:.0%}", Text(tops),
                      style="bold" if row.layer == report.commitment else "")
    console.print(table)


COMMANDS = (ViewCommand("lens", "the logit lens: each layer's prediction at one position, and where it settles",
                        "layers", arguments, spec, text, saes=False),)
