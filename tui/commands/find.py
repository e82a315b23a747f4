"""`spectrascope find`: the features of both SAEs matching words, or firing on an example (core/views/find.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", nargs="?", default="", help="words to find in the features' labels, snippets and "
                   "promoted tokens (\"Japan\", \"python code\")")
    p.add_argument("--role", choices=["coarse", "fine", "both"], default="both", help="which SAE to search")
    p.add_argument("--top", type=int, default=20, help="hits in all")
    p.add_argument("--example", default="", metavar="PHRASE",
                   help="find by example instead: the features most active on PHRASE relative to their usual max")
    p.add_argument("--positions", default="", metavar="I,J",
                   help="with --example: the token indices to read (default: every token but BOS)")
    p.add_argument("--labels", default="", metavar="[ROLE=]FILE",
                   help="a Neuronpedia feature-explanations export (JSON or JSON lines, objects with \"index\" and "
                        "\"description\"): its explanations become searchable; ROLE= says which SAE it is for")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.find import FindSpec

    try:
        positions = tuple(int(p) for p in args.positions.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"--positions takes comma-separated token indices, not {args.positions!r}.") from None
    if positions and not args.example:
        raise ValueError("--positions needs --example.")
    return FindSpec(args.query, args.role, args.top, args.example, positions, args.labels)


def text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text
    from spectrascope.core.text import visible

    if report.mode == "text":
        title = f"features matching {report.spec.query!r}"
    else:
        chosen = "".join(report.tokens[p] for p in report.positions)
        title = f"features most active on {visible(chosen, 60)!s} relative to their usual max"
    for note in report.notes:
        console.print(Text(note, style="yellow"))
    table = Table(title=title, title_justify="left")
    for col, justify in (("sae", "left"), ("feature", "right"), ("score", "right"), ("freq", "right"),
                         ("label", "left"), ("why", "left")):
        table.add_column(col, justify=justify)
    for h in report.hits:
        table.add_row(h.role, str(h.feature), f"{h.score:.2f}", "–" if h.freq is None else f"{h.freq:.3%}",
                      Text(visible(h.label, max_len=60, mark_spaces=False)), Text(visible(h.why, max_len=90,
                                                                                          mark_spaces=False)))
    console.print(table if report.hits else Text("Nothing matched.", style="yellow"))


COMMANDS = (ViewCommand("find", "find a feature: by words in its labels, snippets and promoted tokens, or by example",
                        "find", arguments, spec, text, markdown=True, named_errors=True),)
