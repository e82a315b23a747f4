"""`spectrascope spectrum`: the SAE features firing on a token of a prompt (core/views/spectrum.py)."""

from __future__ import annotations

import argparse
from typing import Any

from spectrascope.tui.commands import ViewCommand


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    p.add_argument("--role", choices=["coarse", "fine", "both"], default="both", help="which SAE to print")
    p.add_argument("--position", type=int, default=-1, help="token index (-1 = last)")
    p.add_argument("--all-tokens", action="store_true", help="over all tokens (BOS excluded) instead")
    p.add_argument("--reduce", choices=("max", "mean"), default="max", help="with --all-tokens")
    p.add_argument("--show-dense", action="store_true",
                   help="keep always-on features (fire on >20%% of held-out tokens), hidden by default")
    p.add_argument("--top", type=int, default=30, help="rows per SAE (the pane shows 30)")


def spec(args: argparse.Namespace) -> Any:
    from spectrascope.core.views.spectrum import SpectrumSpec

    return SpectrumSpec(args.prompt, ("coarse", "fine") if args.role == "both" else (args.role,),
                        None if args.all_tokens else args.position, args.reduce, args.top, args.show_dense)


def document(report: Any, session: Any) -> dict[str, Any]:
    return {"model": session.model.spec.name, **report.to_dict()}


def text(report: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    pos = report.position
    tokens = Text()
    for i, tok in enumerate(report.tokens):
        tokens.append(visible(tok.text), style="reverse bold" if i == pos else ("on grey23" if i % 2 else "on grey35"))
        tokens.append(" ")
    console.print(tokens)
    for role, sae in report.saes.items():
        where = f"all tokens from {report.first} ({report.reduce})" if pos is None else f"token {pos}"
        fid = "" if pos is None else (f" · fidelity {_num(sae.fidelity)} without the massive dims, "
                                      f"{_num(sae.fidelity_with_massive)} with (centered on the {sae.fidelity_centre} "
                                      f"mean; massive dims {sae.massive_share:.0%} of |x|²)"
                                      + (" · ⚠ poor fit" if sae.poor_fit else ""))
        if pos is None:
            fid = f" · poor fit at {list(sae.poor_positions[:8])}" if sae.poor_positions else " · no poor fit"
        dense = f" · {sae.dense_hidden} always-on hidden (--show-dense)" if sae.dense_hidden else ""
        table = Table(title=f"{role} SAE ({sae.width:,} features at {sae.hook}) · {where} · "
                            f"L0 {sae.l0} · {sae.silent:,} silent{fid}{dense}", title_justify="left")
        for col, justify in (("feature", "right"), ("activation", "right"), ("max", "right"),
                             ("label (top contexts k/n · density, else promoted)", "left")):
            table.add_column(col, justify=justify)
        for row in sae.rows:
            max_act = "–" if row.max_act is None else f"{row.max_act:.1f}"
            table.add_row(str(row.feature), f"{row.activation:.2f}", max_act,
                          Text(visible(row.label, max_len=60, mark_spaces=False)))
        console.print(table)
        if sae.poor_below is not None:  # where the flag's threshold comes from, under every table
            console.print(Text(f"poor fit = fidelity without the massive dims below {sae.poor_below:.3f}: "
                               f"{sae.poor_source}", style="grey62"))
        link = next((r.url for r in sae.rows if r.url), None)
        if link:  # one line, not a column: the id is the last path part (--json has every row's url)
            console.print(Text(f"Neuronpedia: {link.rsplit('/', 1)[0]}/<feature>", style="grey62"))


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


COMMANDS = (ViewCommand("spectrum", "SAE features firing on a token of a prompt", "spectrum", arguments, spec, text,
                        document=document),)
