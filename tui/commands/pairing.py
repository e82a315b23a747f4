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
    p.add_argument("--match-neutral", action="store_true",
                   help="build the neutral set from the concept set: its enriched words swapped for same-kind words "
                        "(other countries, topics: assets/prompts/same_kind.tsv), so only the concept differs")
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

    if args.match_neutral and args.neutral:
        raise ValueError("--match-neutral builds the neutral set from --concept: leave out --neutral.")
    made = PairingSpec(args.concept, args.neutral, args.anchors, tuple(args.anchor) if args.anchor else None,
                       args.cos, args.corr, args.min_sub, aggregate=args.aggregate, batch_size=args.batch_size,
                       use_cache=not args.no_cache, n_permutations=args.permutations, match_neutral=args.match_neutral)
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
    from spectrascope.core.analysis.pairing import budgets, rate_interval_note
    from spectrascope.core.analysis.sae_info import budgets_line
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
    console.print(Text(budgets_line(budgets(result)), style="dim"))
    if report.matched is not None:
        console.print(Text(f"{report.matched.text} (written to {report.sets[1]})", style="dim"))
    t = Table(title="coarse anchors", title_justify="left")
    for col in ("feature", "mean concept", "mean neutral", "fires c/n", "selectivity", "95% CI", "concept", "sub",
                "label"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for a in result.anchors:
        cells = stats.cells(a)  # the pane's and the report's text for the same numbers
        checked = result.checks.cells(a) if result.checks is not None else ("–", "–")
        t.add_row(str(a), cells["mean_concept"], cells["mean_neutral"], cells["rates"], cells["selectivity"],
                  *checked, str(len(result.pairings[a].sub_features())),
                  Text(one_line(lab.get("coarse", {}).get(a, ""), 60)))
    console.print(t)
    console.print(Text(f"{RATE_DEFINITION}. {rate_interval_note(c.n_concept, c.n_neutral)}", style="dim"))
    for a in result.anchors:
        t = Table(title=f"coarse #{a}: fine features", title_justify="left")
        for col in ("fine", "cosine", "corr", "class", "label"):
            t.add_column(col, justify="left" if col in ("class", "label") else "right")
        for p in result.pairings[a].pairs(15):
            t.add_row(str(p.fine), f"{p.cosine:.3f}", f"{p.correlation:.3f}", Text(p.cls, style=CLASS_COLOR[p.cls]),
                      Text(one_line(lab.get("fine", {}).get(p.fine, ""), 60)))
        console.print(t)
    print_top_fine(result, console)
    v = result.verdict
    console.print(Text(v.text, style="bold yellow" if v.withheld else "bold green" if v.go else "bold red"))
    if v.grid is not None:
        console.print(grid_heat(v.grid, result.settings))
    for line in result.confounds:
        console.print(Text(f"⚠ {line}", style="yellow"))
    if result.checks is not None:
        print_checks(result.checks, console)
    for role, base in result.neuronpedia.items():
        console.print(Text(f"Neuronpedia ({role}): {base}/<feature>", style="grey62"))


def print_top_fine(result: Any, console: Any, n: int = 10) -> None:
    """The fine SAE's most selective features, paired or not, and the always-on latents left out."""
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line

    fine = result.contrast.stats["fine"]
    t = Table(title="most selective fine features", title_justify="left")
    for col in ("fine", "fires c/n", "selectivity", "label"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for f in fine.ranked(n, "out"):
        cells = fine.cells(f)
        t.add_row(str(f), cells["rates"], cells["selectivity"], Text(one_line(result.labels.get("fine", {}).get(f, ""), 60)))
    console.print(t)
    for role, stats in result.contrast.stats.items():
        if stats.always_on.any():
            console.print(Text(f"⚑ {int(stats.always_on.sum())} always-on {role} latents (fire on >= 90% of the prompts) "
                               f"left out of the rankings; pair one with --anchor", style="grey62"))


def print_checks(checks: Any, console: Any) -> None:
    """Each anchor's concept check and the concept words, then every set check with both sets' numbers."""
    from rich.table import Table
    from rich.text import Text

    for line in checks.lines():
        console.print(Text(line, style="grey62"))
    t = Table(title="set checks (⚠ flagged)", title_justify="left")
    for col in ("check", "concept", "neutral", ""):
        t.add_column(col)
    for c in checks.sets.checks:
        t.add_row(c.name, *c.cells(), "⚠" if c.flagged else "")
    t.add_row("prompts", str(checks.sets.n_concept), str(checks.sets.n_neutral), "⚠" if checks.sets.too_small else "")
    console.print(t)


COMMANDS = (
    ViewCommand("contrast", "concept vs neutral prompt sets -> selective coarse features, their fine sub-features, "
                "GO/NO-GO", "pairing", arguments, spec, print_tables, markdown=True, progress=tenths,
                after=write_output, named_errors=True),
)
