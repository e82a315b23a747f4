"""`spectrascope contrast`: the Pairing pane's analysis headless, as a table, JSON or Markdown.

Wired in tui/cli.py like every subcommand: `add_parser(sub, model_args)`, then `run(args, load_session)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Callable


def add_parser(subparsers: Any, model_args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "contrast",
        help="concept vs neutral prompt sets -> selective coarse features, their fine sub-features, GO/NO-GO",
        description="Run both prompt sets through the model and both SAEs, rank coarse features by "
                    "selectivity, pair the anchors with fine features (decoder cosine x activation "
                    "correlation) and print the verdict. Results are cached on disk.",
    )
    p.add_argument("--concept", default=None, help="file or folder of concept prompts (default: shipped France set)")
    p.add_argument("--neutral", default=None, help="file or folder of neutral prompts (default: shipped neutral set)")
    p.add_argument("--anchors", type=int, default=3, help="how many coarse anchors to pair (default 3)")
    p.add_argument("--anchor", type=int, action="append", default=None,
                   help="pair this coarse feature (repeatable; overrides --anchors)")
    p.add_argument("--cos", type=float, default=0.3, help="decoder-cosine threshold (default 0.3)")
    p.add_argument("--corr", type=float, default=0.5, help="activation-correlation threshold (default 0.5)")
    p.add_argument("--min-sub", type=int, default=3, help="sub-features an anchor needs for GO (default 3)")
    p.add_argument("--aggregate", choices=("max", "mean"), default="max", help="per-prompt summary (default max)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-cache", action="store_true", help="recompute even if a cached run exists")
    p.add_argument("--output", "-o", default=None, help="also write the report here (.json or .md)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    model_args(p)
    return p


def run(args: argparse.Namespace, load_session: Callable[[argparse.Namespace], Any]) -> int:
    from spectrascope.core.analysis.contrast import ContrastSettings, PromptSetError, default_sets, load_prompts
    from spectrascope.core.analysis import pairing

    default_c, default_n = default_sets()
    try:
        concept = load_prompts(args.concept or default_c)
        neutral = load_prompts(args.neutral or default_n)
        settings = pairing.PairingSettings(n_anchors=args.anchors, cos_threshold=args.cos,
                                           corr_threshold=args.corr, min_subfeatures=args.min_sub)
        csettings = ContrastSettings(aggregate=args.aggregate, batch_size=args.batch_size)
    except (PromptSetError, ValueError) as exc:
        print(f"spectrascope contrast: {exc}", file=sys.stderr)
        return 2
    session = load_session(args)
    missing = [r for r in ("coarse", "fine") if r not in session.saes]
    if missing:
        why = "; ".join(f"{r}: {session.sae_errors.get(r, 'not configured')}" for r in missing)
        print(f"spectrascope contrast: needs a coarse and a fine SAE ({why}).", file=sys.stderr)
        return 2

    last = [-1]

    def progress(text: str, fraction: float | None) -> None:
        pct = int((fraction or 0) * 100)
        if pct // 10 != last[0] // 10 or fraction == 1.0:
            last[0] = pct
            print(f"[spectrascope] contrast: {text}", file=sys.stderr, flush=True)

    try:
        result = pairing.analyse(session, concept, neutral, csettings, settings, threading.Event(), progress,
                                 use_cache=not args.no_cache, anchors=args.anchor)
    except IndexError as exc:
        print(f"spectrascope contrast: {exc}", file=sys.stderr)
        return 2
    if args.output:
        pairing.export(result, args.output)
    if args.json:
        print(json.dumps(pairing.to_dict(result), indent=1, ensure_ascii=False))
    elif args.markdown:
        print(pairing.to_markdown(result), end="")
    else:
        print_tables(result)
    return 0


def print_tables(result: Any) -> None:
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.analysis.contrast import RATE_DEFINITION
    from spectrascope.core.text import one_line

    console = headless_console()
    c = result.contrast
    stats = c.stats["coarse"]
    lab = result.labels
    cached = " (cached)" if c.cached else f" in {c.info.get('seconds', 0):.1f} s"
    if c.cache_bytes is not None:
        cached += f", {c.cache_text()}"
    console.print(Text(f"{c.n_concept} concept / {c.n_neutral} neutral prompts{cached} · per-prompt "
                       f"{c.settings.aggregate} activation · cos >= {result.settings.cos_threshold} · "
                       f"corr >= {result.settings.corr_threshold}", style="dim"))
    t = Table(title="coarse anchors", title_justify="left")
    for col in ("feature", "mean concept", "mean neutral", "fires c/n", "selectivity", "sub", "label"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for a in result.anchors:
        cells = stats.cells(a)  # the pane's and the report's text for the same numbers
        t.add_row(str(a), cells["mean_concept"], cells["mean_neutral"], cells["rates"], cells["selectivity"],
                  str(len(result.pairings[a].sub_features())), Text(one_line(lab.get("coarse", {}).get(a, ""), 60)))
    console.print(t)
    console.print(Text(RATE_DEFINITION, style="dim"))
    for a in result.anchors:
        t = Table(title=f"coarse #{a}: fine features", title_justify="left")
        for col in ("fine", "cosine", "corr", "class", "label"):
            t.add_column(col, justify="left" if col in ("class", "label") else "right")
        for p in result.pairings[a].pairs(15):
            style = {"sub-feature": "green", "partial overlap": "yellow", "co-occurring": "cyan"}[p.cls]
            t.add_row(str(p.fine), f"{p.cosine:.3f}", f"{p.correlation:.3f}", Text(p.cls, style=style),
                      Text(one_line(lab.get("fine", {}).get(p.fine, ""), 60)))
        console.print(t)
    v = result.verdict
    console.print(Text(v.text, style="bold green" if v.go else "bold red"))
    for line in result.confounds:
        console.print(Text(f"⚠ {line}", style="yellow"))
    for role, base in result.neuronpedia.items():
        console.print(Text(f"Neuronpedia ({role}): {base}/<feature>", style="grey62"))
