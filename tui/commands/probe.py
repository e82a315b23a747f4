"""`spectrascope probe`: a prompt's tokens and its top next tokens (core/views/probe.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--layer", type=int, default=None, help="residual stream layer to report")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.probe import ProbeSpec

    return ProbeSpec(args.prompt, args.top, args.layer)


def text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    tokens = Text()
    for i, tok in enumerate(report.tokens):
        tokens.append(visible(tok.text), style="on grey23" if i % 2 else "on grey35")
        tokens.append(" ")
    console.print(Text(f"{report.model} · {len(report.tokens)} tokens", style="bold"))
    console.print(tokens)
    table = Table(title=f"top {len(report.top)} next tokens", title_justify="left")
    for col, justify in (("#", "right"), ("id", "right"), ("token", "left"), ("logit", "right"), ("p", "right")):
        table.add_column(col, justify=justify)
    for row in report.top:
        table.add_row(str(row.rank), str(row.id), Text(visible(row.token)), f"{row.logit:.3f}", f"{row.prob:.4f}")
    console.print(table)
    console.print(Text(f"residual at {report.resid.hook}: norm at last token {report.resid.last_norm:.2f}",
                       style="dim"))


COMMANDS = (ViewCommand("probe", "tokens and the top next tokens of a prompt", "probe", arguments, spec, text,
                        saes=False),)
