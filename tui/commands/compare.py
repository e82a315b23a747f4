"""`spectrascope compare SPEC_A SPEC_B`: two SAEs at one hook on the same tokens (core/views/compare.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand

ROWS = (("width", "{:,}"), ("L0", "{:.1f}", "l0"), ("EV (centred)", "{:.4f}", "explained_variance"),
        ("EV without the massive dims", "{:.4f}", "explained_variance_without_massive"),
        ("ΔCE, nats (95% CI)", None, None), ("dead (never fired on these tokens)", "{:.2%}", "dead"),
        ("dense (> 20% of tokens)", "{:.2%}", "dense"), ("decoder match in the other", None, None),
        ("training tokens seen (card)", None, None))


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="SPEC_A", help="an SAE: a preset, a sae-lens release/sae_id, or a folder")
    p.add_argument("b", metavar="SPEC_B", help="another SAE at the same hook")
    p.add_argument("--text", default="", metavar="FILE",
                   help="text lines to measure on [the shipped prompt sets]")
    p.add_argument("--sequences", type=int, default=64, help="rows the CE increase is averaged over [64]")
    p.add_argument("--tokens", type=int, default=64, help="tokens per row, BOS included [64]")
    p.add_argument("--match-cos", type=float, default=0.7, help="decoder cosine that counts as a match [0.7]")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.engine.saes import parse_sae_spec
    from spectrascope.core.views.compare import CompareSpec

    for text in (args.a, args.b):
        parse_sae_spec(text)  # an unknown preset, release or folder is refused before the model loads
    return CompareSpec(args.a, args.b, args.text, args.sequences, args.tokens, args.match_cos)


def cell(q: Any, row: tuple) -> str:
    label, fmt, *field = row
    if label.startswith("ΔCE"):
        return f"{q.ce_increase:+.4f} ± {q.ce_increase_ci95:.4f}"
    if label.startswith("decoder"):
        return f"{q.matched:,} ({q.matched_share:.1%})"
    if label.startswith("training"):
        return q.budget_text
    return fmt.format(getattr(q, field[0] if field else label))


def text(report: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"same {report.n_tokens:,} tokens at {report.a.hook} ({report.source}) · CE clean "
                        f"{report.ce_clean:.4f} nats · massive dims {list(report.massive_dims)} · a match is decoder "
                        f"cosine >= {report.match_cos}", title_justify="left")
    table.add_column("")
    table.add_column(f"A: {report.a.spec}", justify="right")
    table.add_column(f"B: {report.b.spec}", justify="right")
    for row in ROWS:
        table.add_row(row[0], cell(report.a, row), cell(report.b, row))
    console.print(table)
    console.print(report.budgets_line, style="dim")


COMMANDS = (ViewCommand("compare", "two SAEs at one hook on the same tokens: EV, ΔCE with its CI, L0, dead, dense, "
                        "decoder matches", "compare", arguments, spec, text, markdown=True, saes=False),)
