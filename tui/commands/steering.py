"""`spectrascope steer`: multi-resolution steering from the command line (same core calls as the pane).

    spectrascope steer "The weather today is" --feature coarse:123:4 --feature fine:77:2 \\
        --sweep 0,2,4,8 --seeds 20 --tokens 20 [--method add|clamp] [--positions all|generated] [--json]

Each feature is ROLE:ID[:STRENGTH]; STRENGTH is in the feature's unit (see core/steering.py:
by default multiples of its max activation) and defaults to 1. A sweep multiplies every
feature's own strength by each value. Configurations: baseline, coarse, fine, coarse+fine, all
with the same seeds. Every effect and cost comes with a 95% bootstrap interval over the seeds,
and "matched cost" compares coarse+fine with coarse alone, each at its strongest strength within
1.5x the baseline perplexity, paired by seed. Concept words default to the words the concept
feature fires on most (its label's top contexts) and its whole-word promoted tokens; a word also
counts its country/demonym relatives and plural (French: France, Frenchmen). Bad ids, roles or strengths: a one-line
message and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from spectrascope.tui.commands import ViewCommand, at_least


def _strengths(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep wants numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"--sweep wants finite numbers, got {text!r}")
    from spectrascope.core.analysis.steering import SteeringError, check_strength

    try:
        return [check_strength(v, "--sweep multiplier") for v in values]
    except SteeringError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arguments(p: argparse.ArgumentParser) -> None:
    p.description, p.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter  # the long help above
    p.add_argument("prompt")
    p.add_argument("--feature", action="append", default=[], metavar="ROLE:ID[:STRENGTH]",
                   help="a feature to steer with (repeatable), e.g. coarse:123:4")
    p.add_argument("--sweep", type=_strengths, default=None, metavar="S1,S2,…",
                   help="strength multipliers, e.g. 0,2,4,8 (default: the features' own strengths once)")
    p.add_argument("--seeds", type=at_least(1), default=20,
                   help="runs per configuration (seeds 0..N-1 + --seed); the intervals need many")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--tokens", type=at_least(1), default=20, help="tokens to generate per run")
    p.add_argument("--method", choices=["add", "clamp"], default="add")
    p.add_argument("--positions", choices=["all", "generated"], default="all")
    p.add_argument("--unit", choices=["max_act", "resid_norm"], default="max_act",
                   help="what strength 1 means (see core/steering.py)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--concept", default=None, metavar="ROLE:ID",
                   help="feature read back as the concept (default: the first coarse feature)")
    p.add_argument("--words", default=None, metavar="FILE",
                   help="concept words, one per line (default: the words the concept feature fires on "
                        "most and its whole-word promoted tokens; e.g. assets/prompts/concept_words/france.txt)")


def _spec(args: argparse.Namespace) -> Any:
    """The view's Spec; everything that needs no model (features, concept, knobs, the words file) is
    checked here, before the slow load."""
    from spectrascope.core.analysis.steering import SteeringError, load_concept_words, parse_feature
    from spectrascope.core.stats.knobs import SamplingSettings
    from spectrascope.core.views.steering import SteeringSpec

    if not args.feature:
        raise SteeringError("give at least one --feature ROLE:ID[:STRENGTH], e.g. --feature coarse:123:4")
    features = tuple(parse_feature(text) for text in args.feature)
    concept = parse_feature(args.concept) if args.concept else None
    settings = SamplingSettings(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    try:
        words = load_concept_words(args.words) if args.words else None
    except OSError as exc:  # a one-line message and exit status 2, like every bad value
        raise SteeringError(str(exc)) from None
    return SteeringSpec(args.prompt, features, args.sweep, args.seeds, args.tokens, args.method, args.positions,
                        args.unit, settings, concept, words)


def _terminal_progress(args: argparse.Namespace) -> Callable[[str, float | None], None]:
    """The token count on one stderr line, rewritten in place, on a terminal and without --json only."""
    def progress(text: str, fraction: float | None = None) -> None:
        if not args.json and fraction is not None and sys.stderr.isatty():
            print(f"\r[steer] {text}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)

    return progress


def fired_most_on(run: Any, n: int = 3) -> str:
    """The pieces of a run where the concept feature fired most (unsteered readback), strongest first:
    "' France' 4.1 · ' French' 2.0"; "-" where it never fired or there is no concept."""
    from spectrascope.core.text import one_line

    trace = run.piece_trace()
    best = sorted((i for i, v in enumerate(trace) if v > 0), key=lambda i: -trace[i])[:n]
    return " · ".join(f"{one_line(repr(run.pieces[i].text), 16)} {trace[i]:.2f}" for i in best) or "-"


def print_report(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line

    spec = report.spec
    console.print(Text(f"steer · {spec.method} · positions {spec.positions} · {len(report.seeds)} seeds × "
                       f"{report.tokens} tokens · {report.seconds:.1f} s", style="bold"))
    console.print(Text("prompt: ") + Text(one_line(report.prompt, 200), style="dim"))
    for u in report.units.values():
        console.print(Text(f"  {u.role}:{u.id}  strength 1 = {u.scale:.2f} resid norm along its direction "
                           f"(typical act {u.typical_act:.2f}, {u.basis})", style="dim"))
    concept = f"{report.concept[0]}:{report.concept[1]}" if report.concept else "none"
    table = Table(title=f"effect (concept act of {concept}, concept-word share) vs cost (perplexity)",
                  title_justify="left")
    for col, justify in (("config", "left"), ("×", "right"), ("concept act [95% CI]", "right"),
                         ("words [95% CI]", "right"), ("ppl [95% CI]", "right"), ("first run", "left"),
                         ("fired most on (first run)", "left")):
        table.add_column(col, justify=justify)
    for c in report.cells:
        table.add_row(c.config, f"{c.strength:g}", _with_ci(c.concept_act, c.ci("concept_act"), "{:.3f}"),
                      _with_ci(c.concept_share, c.ci("concept_share"), "{:.0%}"),
                      _with_ci(c.perplexity, c.ci("perplexity"), "{:.1f}"), Text(one_line(c.runs[0].text, 60)),
                      Text(fired_most_on(c.runs[0])))
    console.print(table)
    console.print(Text(f"concept words ({report.words_source}): {', '.join(report.words) or 'none'}", style="dim"))
    if len(report.strengths) > 1 or report.strengths[0] != 0:
        console.print(Text("targeting: strongest concept activation with perplexity <= 1.5x baseline", style="bold"))
        for row in report.targeting(1.5):
            if row["strength"] is None:
                console.print(Text(f"  {row['config']:<12} every strength costs more than that", style="dim"))
            else:
                console.print(Text(f"  {row['config']:<12} ×{row['strength']:g}: act {row['concept_act']:.3f} · "
                                   f"words {row['concept_share']:.0%} · ppl {row['perplexity']:.1f}"))
    m = report.matched_cost()
    if m is not None:
        console.print(Text(f"matched cost (ppl <= 1.5x baseline, {m['n_seeds']} paired seeds): "
                           f"{m['b']} ×{m['strength_b']:g} vs {m['a']} ×{m['strength_a']:g}", style="bold"))
        console.print(Text(f"  concept act {_with_ci(m['delta_concept_act'], m['delta_concept_act_ci95'], '{:+.3f}')} · "
                           f"words {_with_ci(m['delta_concept_share'], m['delta_concept_share_ci95'], '{:+.0%}')} · "
                           f"ppl ×{_with_ci(m['perplexity_ratio'], m['perplexity_ratio_ci95'], '{:.2f}')}"))


def _with_ci(value: float | None, ci: tuple[float, float] | None, fmt: str) -> str:
    """`value [lo, hi]` (or just the value with one seed; "–" when there is none)."""
    if value is None:
        return "–"
    return fmt.format(value) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


COMMANDS = (
    ViewCommand(name="steer", help="steer generation with SAE features; effect vs cost per configuration",
                view="steering", arguments=_arguments, spec=_spec, text=print_report, progress=_terminal_progress,
                named_errors=True),
)
