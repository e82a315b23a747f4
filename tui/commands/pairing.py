"""`spectrascope contrast`: the Pairing pane's analysis headless (core/views/pairing.py), as tables, JSON or
Markdown, and `--output FILE` besides."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Run both prompt sets through the model and both SAEs, rank coarse features by "
                     "selectivity, pair the anchors with fine features (decoder cosine x activation "
                     "correlation) and print the verdict. Results are cached on disk.")
    p.add_argument("--concept", default=None, help="file or folder of concept prompts (default: shipped France set)")
    p.add_argument("--neutral", default=None, help="file or folder of neutral prompts (default: shipped neutral set)")
    p.add_argument("--anchors", type=int, default=3, help="how many coarse anchors to pair (default 3)")
    p.add_argument("--anchor", type=int, action="append", default=None,
                   help="pair this coarse feature (repeatable; overrides --anchors)")
    p.add_argument("--cos", type=float, default=0.3, help="decoder-cosine threshold (default 0.3)")
    p.add_argument("--corr", type=float, default=0.5, help="activation-correlation threshold (default 0.5)")
    p.add_argument("--min-sub", type=int, default=3, help="sub-features an anchor needs for GO (default 3)")
    p.add_argument("--permutations", type=int, default=200,
                   help="label shuffles of the verdict's permutation test (default 200; 0 skips it)")
    p.add_argument("--aggregate", choices=("max", "mean"), default="max", help="per-prompt summary (default max)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-cache", action="store_true", help="recompute even if a cached run exists")
    p.add_argument("--output", "-o", default=None, help="also write the report here (.json or .md)")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.pairing import PairingSpec

    made = PairingSpec(args.concept, args.neutral, args.anchors, tuple(args.anchor) if args.anchor else None,
                       args.cos, args.corr, args.min_sub, aggregate=args.aggregate, batch_size=args.batch_size,
                       use_cache=not args.no_cache, n_permutations=args.permutations)
    made.prompt_sets()  # a missing or empty set is refused before the model loads
    return made


def tenths(args: argparse.Namespace) -> Callable[[str, float | None], None]:
    """Progress on stderr at every tenth of the run (a line per batch would flood it)."""
    last = [-1]

    def progress(text: str, fraction: float | None = None) -> None:
        pct = int((fraction or 0) * 100)
        if pct // 10 != last[0] // 10 or fraction == 1.0:
            last[0] = pct
            print(f"[spectrascope] contrast: {text}", file=sys.stderr, flush=True)

    return progress


def write_output(report: Any, args: argparse.Namespace) -> None:
    if args.output:
        from spectrascope.core.analysis.pairing import export

        export(report.result, args.output)


def print_tables(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.analysis.contrast import RATE_DEFINITION
    from spectrascope.core.text import one_line
    from spectrascope.tui.widgets.pairing_render import CLASS_COLOR, grid_heat

    result = report.result
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
            t.add_row(str(p.fine), f"{p.cosine:.3f}", f"{p.correlation:.3f}", Text(p.cls, style=CLASS_COLOR[p.cls]),
                      Text(one_line(lab.get("fine", {}).get(p.fine, ""), 60)))
        console.print(t)
    v = result.verdict
    console.print(Text(v.text, style="bold green" if v.go else "bold red"))
    if v.grid is not None:
        console.print(grid_heat(v.grid, result.settings))
    for line in result.confounds:
        console.print(Text(f"⚠ {line}", style="yellow"))
    for role, base in result.neuronpedia.items():
        console.print(Text(f"Neuronpedia ({role}): {base}/<feature>", style="grey62"))


COMMANDS = (
    ViewCommand("contrast", "concept vs neutral prompt sets -> selective coarse features, their fine sub-features, "
                "GO/NO-GO", "pairing", arguments, spec, print_tables, markdown=True, progress=tenths,
                after=write_output, named_errors=True),
)
