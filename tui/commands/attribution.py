"""`spectrascope attribute`: which SAE features made the model predict a token (core/views/attribution.py).

    spectrascope attribute "The capital of France is" --target " Paris" --vs " the" [--position N]
        [--top 20] [--verify 20] [--json|--markdown]

Each feature's estimate is activation × gradient at its SAE's hook; the top `--verify` are measured
by ablation (the feature zeroed in the code, the SAE's error kept) in one batched forward.
"""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand, at_least


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--target", default=None,
                   help="the token to explain: its text (' Paris', mind the space) or '#ID'; default: the "
                        "model's top next token. A text of several tokens is scored by its first (said so)")
    p.add_argument("--vs", default=None, help="a contrast token: explain logit(target) − logit(vs)")
    p.add_argument("--position", type=int, default=-1,
                   help="the prompt token whose next-token prediction is explained (-1 = the last)")
    p.add_argument("--top", type=at_least(0), default=20, help="features listed")
    p.add_argument("--verify", type=at_least(0), default=20, help="top features measured by ablation (0: none)")
    p.add_argument("--role", choices=("coarse", "fine", "both"), default="both", help="which SAEs to read")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.attribution import AttributionSpec

    roles = ("coarse", "fine") if args.role == "both" else (args.role,)
    return AttributionSpec(args.prompt, args.target, args.vs, args.position, args.top, args.verify, roles)


def text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible
    from spectrascope.core.views.attribution import HOW

    console.print(f"Why {visible(report.target)} after {visible(report.tokens[-1])} (position {report.position}): "
                  f"{report.scalar} = {report.value:+.3f}, p = {report.prob:.3f}"
                  + (f", p(vs) = {report.vs_prob:.3f}" if report.vs_prob is not None else ""), markup=False)
    for note in report.notes:
        console.print(f"  {note}", markup=False)
    terms = Table(title="The layer's linear effect, per SAE (features + error + constant + BOS = total)",
                  title_justify="left")
    for col in ("SAE", "features", "error", "constant", "BOS", "total", "error share", "top-k recover"):
        terms.add_column(col, justify="right")
    for s in report.saes:
        rec = "–" if s.recovered is None else f"{s.recovered:.0%} of {s.all_measured:+.3f} ({s.top_n})"
        terms.add_row(f"{s.role} {s.width:,}", f"{s.features:+.3f}", f"{s.error:+.3f}", f"{s.constant:+.3f}",
                      f"{s.bos:+.3f}", f"{s.total:+.3f}", f"{s.error_share:.0%}", rec)
    console.print(terms)
    rho = "–" if report.spearman is None else f"{report.spearman:.2f} (p = {report.spearman_p:.2g})"
    table = Table(title=f"Features by |estimate| · rank agreement with ablation over {report.verified}: {rho}",
                  title_justify="left")
    for col, justify in (("#", "right"), ("SAE", "left"), ("feature", "right"), ("pos", "right"), ("token", "left"),
                         ("act", "right"), ("estimate", "right"), ("measured", "right"), ("label", "left")):
        table.add_column(col, justify=justify)
    for i, f in enumerate(report.features, 1):
        meas = "–" if f.measured is None else f"{f.measured:+.3f}" + (" ⚠" if f.off else "")
        label = visible(f.label, 48, mark_spaces=False) + (" (dense)" if f.dense else "")
        table.add_row(str(i), f.role, str(f.feature), str(f.position), Text(visible(f.token)), f"{f.activation:.2f}",
                      f"{f.estimate:+.3f}", meas, Text(label))
    console.print(table)
    console.print(HOW, markup=False, style="dim")


COMMANDS = (ViewCommand("attribute", "why this token: SAE features ranked by their effect on a logit, checked by "
                        "ablation", "attribution", arguments, spec, text, markdown=True, named_errors=True),)
