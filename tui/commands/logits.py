"""`spectrascope logits`: the next-token distribution under the knobs, the system-prompt A/B, seeded runs and a
generation's tokens with their top SAE features (core/views/logits.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--system", default=None, help="compare with this system prompt (A/B)")
    p.add_argument("--runs", type=int, default=0, help="N seeded runs (seeds seed..seed+N-1)")
    p.add_argument("--steps", type=int, default=20, help="tokens per run")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--features", action="store_true",
                   help="generate --steps tokens (seed --seed) and show each token's p, rank and top SAE features")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.logits import LogitsSpec

    return LogitsSpec(args.prompt, args.temperature, args.top_k or None, args.top_p, args.seed, args.system,
                      args.runs, args.steps, args.top, args.features)


def text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line, visible

    s, dist = report.settings, report.next_token
    console.print(Text(f"T {s.temperature}  top-k {s.top_k or 'off'}  top-p {s.top_p}  seed {s.seed} · "
                       f"survivors {dist.survivors:,} of {dist.vocab:,} · entropy "
                       f"{dist.entropy_before:.2f} -> {dist.entropy_after:.2f} nats", style="bold"))
    table = Table(title_justify="left", title="next token")
    for col in ("id", "token", "logit", "raw p", "final p", "status"):
        table.add_column(col, justify="left" if col in ("token", "status") else "right")
    for r in dist.top:
        table.add_row(str(r.id), Text(visible(r.token)), f"{r.logit:.2f}", f"{r.raw_p:.4f}", f"{r.final_p:.4f}",
                      r.excluded_by or "kept", style="dim" if r.excluded_by else "")
    console.print(table)
    if report.system_ab is not None:
        ab = report.system_ab
        t = Table(title=f"with vs without the system prompt · {ab.kl_summary}", title_justify="left")
        for col in ("token", "final p without", "final p with", "rank", "shift", f"top {ab.top_n}"):
            t.add_column(col, justify="right" if col.startswith(("final", "rank", "shift")) else "left")
        for r in ab.rows:
            t.add_row(Text(visible(r.token)), f"{r.p_without:.4f}", f"{r.p_with:.4f}",
                      f"{r.rank_without or '–'} -> {r.rank_with or '–'}", r.shift, r.status)
        console.print(t)
    if report.runs:
        t = Table(title="seeded runs", title_justify="left")
        for col in ("seed", "diverges at", "continuation"):
            t.add_column(col)
        for r in report.runs:
            t.add_row(str(r.seed), "—" if r.diverges_at is None else str(r.diverges_at), Text(one_line(r.text, 200)))
        console.print(t)
    if report.generation is not None:
        t = Table(title=f"generated (seed {s.seed}) · p: the model's probability at T=1 · final p: under the knobs "
                        "· features: strongest at that token, always-on ones hidden", title_justify="left")
        roles = list(report.generation[0].features) if report.generation else []
        for col in ("step", "token", "how", "p", "final p", "rank", *roles):
            t.add_column(col, justify="left" if col in ("token", "how", *roles) else "right")
        for r in report.generation:
            feats = [Text(one_line(" | ".join(f"#{h.feature} {h.activation:.1f} {h.label}" for h in r.features[role]),
                                   120)) for role in roles]
            t.add_row(str(r.step), Text(visible(r.token)), r.how, f"{r.prob:.4f}", f"{r.final_p:.4f}", str(r.rank),
                      *feats)
        console.print(t)


COMMANDS = (ViewCommand("logits", "the next-token distribution under the knobs, A/B, seeded runs", "logits",
                        arguments, spec, text, saes=lambda spec: spec.features),)
