"""`spectrascope anchor` and `spectrascope drift`: a system prompt in activation space (core/views/anchor.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from spectrascope.tui.commands import ViewCommand


def anchor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="the user's text")
    p.add_argument("--system", action="append", required=True, help="a system prompt (repeatable)")
    p.add_argument("--top", type=int, default=10, help="features per SAE")
    p.add_argument("--navigator", action="store_true",
                   help="also the last-token residuals on the 2 principal directions of 40 neutral prompts")


def anchor_spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.anchor import AnchorSpec

    return AnchorSpec(args.prompt, tuple(args.system), args.top, args.navigator)


def anchor_text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line, visible

    for rep in report.reports:
        console.print(Text(f"system: {one_line(rep.system, 120)}", style="bold"))
        console.print(Text(f"  over the user's {len(rep.shared_tokens)} tokens (the shared suffix): residual moved "
                           f"{rep.resid_shift_last:.1f} at the last token (|x| {rep.resid_norm_last:.1f}, cosine "
                           f"{rep.cosine_last:.3f}), {rep.resid_shift_mean:.1f} on average", style="grey50"))
        for role, rows in rep.features.items():
            table = Table(title=f"{role}: largest changes, summed over the user's tokens", title_justify="left")
            for col, justify in (("feature", "right"), ("", "left"), ("without", "right"), ("with", "right"),
                                 ("last token", "right"), ("label", "left")):
                table.add_column(col, justify=justify)
            for r in rows:
                table.add_row(str(r.feature), r.kind, f"{r.before:.1f}", f"{r.after:.1f}",
                              f"{r.before_last:.1f} → {r.after_last:.1f}",
                              Text(visible(r.label, 60, mark_spaces=False)))
            console.print(table)
    nav = report.navigator
    if nav is not None:
        table = Table(title=f"navigator: last token on the reference plane at {nav.hook} (PC1 {nav.explained[0]:.0%}, "
                            f"PC2 {nav.explained[1]:.0%} of the reference variance)", title_justify="left")
        for col in ("system", "PC1", "PC2", "|Δx| from alone"):
            table.add_column(col, justify="left" if col == "system" else "right")
        for pt in nav.points:
            table.add_row(one_line(pt.system, 60) or "(none)", f"{pt.x:.1f}", f"{pt.y:.1f}", f"{pt.shift:.1f}")
        console.print(table)


def drift_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--filler", default=None, help="conversation turns (default assets/prompts/filler_turns.txt)")
    p.add_argument("--max-turns", type=int, default=16)
    p.add_argument("--target", default=None, metavar="TEXT",
                   help="the token to track, e.g. ' bleu' (its first token; default: what the system prompt "
                        "raises most)")


def drift_spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.analysis.drift import load_turns
    from spectrascope.core.views.anchor import DriftSpec

    filler = tuple(load_turns(args.filler)) if args.filler else None  # a bad file fails before the model loads
    return DriftSpec(args.system, args.question, filler, args.max_turns, args.target or None)


def drift_progress(args: argparse.Namespace) -> Callable[[str, float | None], None]:
    """One line, rewritten in place, on a terminal; nothing under --json or into a file."""
    def say(text: str, fraction: float | None = None) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r[drift] {text}", end="", file=sys.stderr, flush=True)

    return say


def drift_text(rep: Any, console: Any) -> None:
    from rich.table import Table

    from spectrascope.core.text import one_line, visible

    feats = ", ".join(f"{r}:{f}" for r, f in rep.features) or "none (no SAE)"
    table = Table(title=f"drift · system {one_line(rep.system, 60)!r} · target {visible(rep.target[1])} · features "
                        f"{feats} · KL halves at {rep.halving_turns if rep.halving_turns is not None else '> max'} "
                        f"turns", title_justify="left")
    for col in ("turns", "tokens", "KL", "attn→system", f"p({visible(rep.target[1])})", "rank", "feature acts",
                "restated: KL", "attn", "p", "rank"):
        table.add_column(col, justify="right")
    for p, r in zip(rep.points, rep.restated):
        table.add_row(str(p.turns), str(p.tokens), f"{p.kl:.3f}", f"{p.attention_share:.1%}", f"{p.target_prob:.3f}",
                      str(p.target_rank), " ".join(f"{a:.1f}" for a in p.feature_acts), f"{r.kl:.3f}",
                      f"{r.attention_share:.1%}", f"{r.target_prob:.3f}", str(r.target_rank))
    console.print(table)
    if rep.sliding_layers:
        console.print(f"attention is averaged over all layers; sliding-window layers {list(rep.sliding_layers)} "
                      "cannot see a system prompt beyond their window", style="grey50")


COMMANDS = (
    ViewCommand("anchor", "features a system prompt switches on/off/up/down on the user's tokens", "anchor",
                anchor_arguments, anchor_spec, anchor_text, document=lambda report, session: report.document()),
    ViewCommand("drift", "a system prompt's effect as neutral turns pile up before the question", "anchor",
                drift_arguments, drift_spec, drift_text, build="build_drift", progress=drift_progress),
)
