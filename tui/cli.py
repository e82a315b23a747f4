"""`spectrascope` on the command line: the TUI by default, headless subcommands for scripts.

Every subcommand calls the same core functions as the panes, so any number on
screen can be reproduced, tested and exported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading


SAE_DTYPES = ("auto", "bfloat16", "float16", "float32")  # auto: the model's


def _environment() -> None:
    # Idle OpenMP threads sleep instead of spinning: a spinning pool starves the UI
    # thread and any other process on the box (measured here: a 12-token forward went
    # from 2.5 s to 0.2 s on a busy 2-core machine). Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # spectrascope never downloads: make any accidental hub call fail fast.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


MODEL_FLAGS = ("model", "device", "dtype", "sae", "sae_dtype")  # before or after the subcommand
TUI_FLAGS = ("initial_prompt", "session", "output_dir", "export_dir", "demo")  # TUI only: rejected with a subcommand


def _model_args(p: argparse.ArgumentParser, dest_prefix: str = "") -> None:
    # None = not given: the config file decides, then the built-in default. A subcommand's copy
    # stores under "sub_<name>": with one dest, argparse lets the subcommand's default None
    # overwrite a value given before the subcommand (`--model X probe` ran the default model).
    d = lambda name: dest_prefix + name  # noqa: E731
    p.add_argument("--model", dest=d("model"), default=None,
                   help="preset, HF id (cached) or local folder [gemma-3-270m]")
    p.add_argument("--device", dest=d("device"), default=None, help="auto, cpu, cuda, cuda:1 … [auto]")
    p.add_argument("--dtype", dest=d("dtype"), default=None, help="auto, bfloat16, float16, float32 [auto]")
    p.add_argument("--sae", dest=d("sae"), action="append", default=None, metavar="ROLE=SPEC",
                   help="coarse= or fine= an SAE preset, a sae-lens release/sae_id, or a folder "
                        "(Gemma Scope params: PATH[@LAYER]; or sae-lens); repeatable [the config's [saes], "
                        "else the model's]")
    p.add_argument("--sae-dtype", dest=d("sae_dtype"), default=None, choices=SAE_DTYPES,
                   help="the SAEs' dtype [auto: the model's]")


def _sub_model_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, "sub_")


def _merge_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """One value per model flag, whichever side of the subcommand it was given on; a flag given
    on both sides with different values, a model flag for a subcommand that loads no model, or a
    TUI flag with a subcommand is a ValueError that says so (never silently ignored)."""
    if args.command is None:
        return args
    for name in TUI_FLAGS:
        if getattr(args, name) != parser.get_default(name):
            flag = "--" + name.removeprefix("initial_").replace("_", "-")
            raise ValueError(f"{flag} is a TUI option; it has no effect on `{args.command}`: "
                             f"run `spectrascope {flag} …` without a subcommand.")
    takes_model = hasattr(args, "sub_model")
    for name in MODEL_FLAGS:
        flag = "--" + name.replace("_", "-")
        before, after = getattr(args, name), getattr(args, "sub_" + name, None)
        if not takes_model:
            if before is not None:
                raise ValueError(f"`{args.command}` loads no model: {flag} has no effect on it.")
            continue
        if name == "sae":  # repeatable: both sides count
            merged = [*(before or []), *(after or [])] or None
        elif before is not None and after is not None and before != after:
            raise ValueError(f"{flag} given twice with different values ({before!r} before `{args.command}`, "
                             f"{after!r} after it): give it once.")
        else:
            merged = after if after is not None else before
        setattr(args, name, merged)
        delattr(args, "sub_" + name)
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the model flags merged from both sides of the subcommand."""
    parser = build_parser()
    return _merge_flags(parser.parse_args(argv), parser)


def _apply_config(args) -> dict:
    """Fill flags the user did not give from the config file, then built-in defaults."""
    from spectrascope.tui.config import load_config

    config = load_config()
    model = config.get("model", {})
    args.model = args.model or model.get("name") or "gemma-3-270m"
    args.device = args.device or model.get("device") or "auto"
    args.dtype = args.dtype or model.get("dtype") or "auto"
    args.sae_dtype = args.sae_dtype or model.get("sae_dtype") or "auto"
    if args.sae_dtype not in SAE_DTYPES:
        raise ValueError(f"[model] sae_dtype = {args.sae_dtype!r} in the config: use one of {', '.join(SAE_DTYPES)}.")
    args.sae_presets = _sae_choice(args, config)
    return config


def _sae_choice(args, config: dict) -> tuple | None:
    """(role, SAESpec) pairs: the config's [saes] (else the model's defaults), then each --sae on top;
    None when neither says anything (the model's defaults, resolved at load)."""
    from spectrascope.core.engine.saes import parse_role_spec, parse_sae_spec
    from spectrascope.tui.config import config_path

    if not config.get("saes") and not args.sae:
        return None
    if config.get("saes"):
        chosen = {}
        for role, text in config["saes"].items():
            try:
                chosen[role] = parse_sae_spec(str(text))
            except ValueError as exc:
                raise ValueError(f"Config file {config_path()}, [saes] {role}: {exc}") from None
    else:
        from spectrascope.core.engine.models import resolve_spec

        chosen = dict(resolve_spec(args.model).saes)  # preset names: Session resolves them
    chosen.update(parse_role_spec(text) for text in args.sae or ())
    return tuple(chosen.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectrascope",
        description="Look inside a transformer: logits, SAE feature spectra, pairing, steering.",
    )
    _model_args(parser)
    # Its own dest: a subcommand's positional PROMPT would overwrite (and hide) it.
    parser.add_argument("--prompt", dest="initial_prompt", default="The capital of France is", help="initial prompt")
    parser.add_argument("--session", help="reopen a saved session (JSON from ctrl+s)")
    parser.add_argument("--output-dir", default=".", help="where screenshots, sessions and (in spectrascope-exports/) exports go")
    parser.add_argument("--export-dir", default=None,
                        help="where ctrl+e's files go [the config's [export] folder, else OUTPUT_DIR/spectrascope-exports]")
    parser.add_argument("--demo", help="replay a demo script (prompts, keys, pauses) for a talk")
    sub = parser.add_subparsers(dest="command")

    probe = sub.add_parser("probe", help="tokens and the top next tokens of a prompt")
    probe.add_argument("prompt")
    probe.add_argument("--top", type=int, default=10)
    probe.add_argument("--layer", type=int, default=None, help="residual stream layer to report")
    probe.add_argument("--json", action="store_true", help="machine-readable output")
    _sub_model_args(probe)

    logits = sub.add_parser("logits", help="the next-token distribution under the knobs, A/B, seeded runs")
    logits.add_argument("prompt")
    logits.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    logits.add_argument("--top-k", type=int, default=0, help="0 = off")
    logits.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    logits.add_argument("--seed", type=int, default=0)
    logits.add_argument("--system", default=None, help="compare with this system prompt (A/B)")
    logits.add_argument("--runs", type=int, default=0, help="N seeded runs (seeds seed..seed+N-1)")
    logits.add_argument("--steps", type=int, default=20, help="tokens per run")
    logits.add_argument("--top", type=int, default=20)
    logits.add_argument("--features", action="store_true",
                        help="generate --steps tokens (seed --seed) and show each token's p, rank and top SAE features")
    logits.add_argument("--json", action="store_true")
    _sub_model_args(logits)

    spectrum = sub.add_parser("spectrum", help="SAE features firing on a token of a prompt")
    spectrum.add_argument("prompt")
    spectrum.add_argument("--role", choices=["coarse", "fine", "both"], default="both", help="which SAE to print")
    spectrum.add_argument("--position", type=int, default=-1, help="token index (-1 = last)")
    spectrum.add_argument("--all-tokens", action="store_true", help="over all tokens (BOS excluded) instead")
    spectrum.add_argument("--reduce", choices=("max", "mean"), default="max", help="with --all-tokens")
    spectrum.add_argument("--show-dense", action="store_true",
                          help="keep always-on features (fire on >20%% of held-out tokens), hidden by default")
    spectrum.add_argument("--top", type=int, default=30, help="rows per SAE (the pane shows 30)")
    spectrum.add_argument("--json", action="store_true")
    _sub_model_args(spectrum)

    serve = sub.add_parser("serve", help="serve the TUI in a web browser (Textual's web serving)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback exposes the app")
    serve.add_argument("--port", type=int, default=8000)
    _sub_model_args(serve)

    lens = sub.add_parser("lens", help="the logit lens: each layer's prediction at one position, and where it settles")
    lens.add_argument("prompt")
    lens.add_argument("--position", type=int, default=-1, help="token index (-1 = last)")
    lens.add_argument("--top", type=int, default=5, help="tokens per layer")
    lens.add_argument("--tuned", action="store_true",
                      help="the tuned lens: per-layer affine translators (ridge least squares to the last layer's "
                           "residual) fitted once per model on the shipped prompt sets and cached")
    lens.add_argument("--json", action="store_true")
    _sub_model_args(lens)

    anchor = sub.add_parser("anchor", help="features a system prompt switches on/off/up/down on the user's tokens")
    anchor.add_argument("prompt", help="the user's text")
    anchor.add_argument("--system", action="append", required=True, help="a system prompt (repeatable)")
    anchor.add_argument("--top", type=int, default=10, help="features per SAE")
    anchor.add_argument("--navigator", action="store_true",
                        help="also the last-token residuals on the 2 principal directions of 40 neutral prompts")
    anchor.add_argument("--json", action="store_true")
    _sub_model_args(anchor)

    drift = sub.add_parser("drift", help="a system prompt's effect as neutral turns pile up before the question")
    drift.add_argument("--system", required=True)
    drift.add_argument("--question", required=True)
    drift.add_argument("--filler", default=None, help="conversation turns (default assets/prompts/filler_turns.txt)")
    drift.add_argument("--max-turns", type=int, default=16)
    drift.add_argument("--target", default=None, metavar="TEXT",
                       help="the token to track, e.g. ' bleu' (its first token; default: what the system prompt raises most)")
    drift.add_argument("--json", action="store_true")
    _sub_model_args(drift)

    saes = sub.add_parser("saes", help="the SAE presets, and the Gemma Scope SAEs the local HF cache holds (offline)")
    saes.add_argument("--json", action="store_true")

    sae_info = sub.add_parser("sae-info", help="each loaded SAE: shape, and its held-out quality where measured")
    sae_info.add_argument("--json", action="store_true")
    _sub_model_args(sae_info)

    for name, handler in (("probe", cmd_probe), ("logits", cmd_logits), ("spectrum", cmd_spectrum),
                          ("serve", cmd_serve), ("sae-info", cmd_sae_info), ("lens", cmd_lens),
                          ("anchor", cmd_anchor), ("drift", cmd_drift), ("saes", cmd_saes)):
        sub.choices[name].set_defaults(handler=handler)
    from spectrascope.tui import cli_contrast, cli_steer
    from spectrascope.tui.commands import add_commands

    # The views' subcommands (tui/commands/): the Spec from the arguments, build, print the Report.
    add_commands(sub, _sub_model_args, lambda args, progress=None: _load_session(args, progress))

    for module in (cli_contrast, cli_steer):  # subcommands with their own module: add_parser + run
        module.add_parser(sub, _sub_model_args).set_defaults(handler=lambda args, m=module: m.run(args, _load_session))
    return parser


def _load_session(args, progress=None):
    from spectrascope.core.engine.session import Session

    def to_stderr(text, fraction):
        print(f"[spectrascope] {text}", file=sys.stderr, flush=True)

    session = Session.load(args.model, device=args.device, dtype=args.dtype, progress=progress or to_stderr,
                           saes=getattr(args, "sae_presets", None), sae_dtype=getattr(args, "sae_dtype", None))
    for text in getattr(args, "sae", None) or ():  # an SAE asked for by name: say at once why it is missing
        role = text.partition("=")[0].strip()
        if role in session.sae_errors:
            (progress or to_stderr)(f"--sae {role}: not loaded: {session.sae_errors[role]}", None)
    return session


def cmd_probe(args) -> int:
    from spectrascope.core.views.probe import probe

    args.sae_presets = ()  # probe reads no SAE: loading them would only cost time and memory
    session = _load_session(args)
    report = probe(session, args.prompt, top=args.top, layer=args.layer)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    console = headless_console()
    tokens = Text()
    for i, tok in enumerate(report["tokens"]):
        tokens.append(visible(tok["text"]), style="on grey23" if i % 2 else "on grey35")
        tokens.append(" ")
    console.print(Text(f"{report['model']} · {len(report['tokens'])} tokens", style="bold"))
    console.print(tokens)
    table = Table(title=f"top {args.top} next tokens", title_justify="left")
    for col, justify in (("#", "right"), ("id", "right"), ("token", "left"), ("logit", "right"), ("p", "right")):
        table.add_column(col, justify=justify)
    for row in report["top"]:
        table.add_row(
            str(row["rank"]), str(row["id"]), Text(visible(row["token"])),
            f"{row['logit']:.3f}", f"{row['prob']:.4f}",
        )
    console.print(table)
    resid = report["resid"]
    console.print(Text(f"residual at {resid['hook']}: norm at last token {resid['last_norm']:.2f}", style="dim"))
    return 0


def cmd_logits(args) -> int:
    from spectrascope.core.stats.knobs import SamplingSettings
    from spectrascope.core.views.probe import logits_report

    settings = SamplingSettings(temperature=args.temperature, top_k=args.top_k or None,
                                top_p=args.top_p, seed=args.seed)  # ValueError -> exit 2
    if not args.features:
        args.sae_presets = ()  # the distribution needs no SAE
    session = _load_session(args)
    report = logits_report(session, args.prompt, settings, args.system, args.runs, args.steps, args.top,
                           features=args.features)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line, visible

    console = headless_console()
    s = report["settings"]
    console.print(Text(f"T {s['temperature']}  top-k {s['top_k'] or 'off'}  top-p {s['top_p']}  seed {s['seed']} · "
                       f"survivors {report['survivors']:,} of {report['vocab']:,} · entropy "
                       f"{report['entropy_before']:.2f} -> {report['entropy_after']:.2f} nats", style="bold"))
    table = Table(title_justify="left", title="next token")
    for col in ("id", "token", "logit", "raw p", "final p", "status"):
        table.add_column(col, justify="left" if col in ("token", "status") else "right")
    for r in report["top"]:
        dim = "dim" if r["excluded_by"] else ""
        table.add_row(str(r["id"]), Text(visible(r["token"])), f"{r['logit']:.2f}", f"{r['raw_p']:.4f}",
                      f"{r['final_p']:.4f}", r["excluded_by"] or "kept", style=dim)
    console.print(table)
    if "system_ab" in report:
        ab = report["system_ab"]
        t = Table(title=f"with vs without the system prompt · {ab['kl_summary']}", title_justify="left")
        for col in ("token", "final p without", "final p with", "rank", "shift"):
            t.add_column(col, justify="left" if col == "token" else "right")
        for r in ab["rows"]:
            shift = "new" if r["new_in_top"] else "dropped" if r["dropped"] else f"{r['rank_change']:+d}" if r["rank_change"] is not None else "–"
            t.add_row(Text(visible(r["token"])), f"{r['p_without']:.4f}", f"{r['p_with']:.4f}",
                      f"{r['rank_without'] or '–'} -> {r['rank_with'] or '–'}", shift)
        console.print(t)
    if report.get("runs"):
        t = Table(title="seeded runs", title_justify="left")
        for col in ("seed", "diverges at", "continuation"):
            t.add_column(col)
        for r in report["runs"]:
            t.add_row(str(r["seed"]), "—" if r["diverges_at"] is None else str(r["diverges_at"]),
                      Text(one_line(r["text"], 200)))
        console.print(t)
    if "generation" in report:
        t = Table(title=f"generated (seed {s['seed']}) · p: the model's probability at T=1 · final p: under the knobs "
                        "· features: strongest at that token, always-on ones hidden", title_justify="left")
        roles = list(report["generation"][0]["features"]) if report["generation"] else []
        for col in ("step", "token", "how", "p", "final p", "rank", *roles):
            t.add_column(col, justify="left" if col in ("token", "how", *roles) else "right")
        for r in report["generation"]:
            feats = [Text(one_line(" | ".join(f"#{h['feature']} {h['activation']:.1f} {h['label']}"
                                               for h in r["features"][role]), 120)) for role in roles]
            t.add_row(str(r["step"]), Text(visible(r["token"])), r["how"], f"{r['prob']:.4f}", f"{r['final_p']:.4f}",
                      str(r["rank"]), *feats)
        console.print(t)
    return 0


def cmd_spectrum(args) -> int:
    from spectrascope.core.views.probe import spectrum_report

    session = _load_session(args)
    roles = ("coarse", "fine") if args.role == "both" else (args.role,)
    report = spectrum_report(session, args.prompt, roles, None if args.all_tokens else args.position, args.top,
                             args.reduce, not args.show_dense)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    console = headless_console()
    pos = report["position"]
    tokens = Text()
    for i, tok in enumerate(report["tokens"]):
        tokens.append(visible(tok["text"]), style="reverse bold" if i == pos else ("on grey23" if i % 2 else "on grey35"))
        tokens.append(" ")
    console.print(tokens)
    for role, sae in report["saes"].items():
        where = f"all tokens from {report['all_tokens_from']} ({report['reduce']})" if pos is None else f"token {pos}"
        fid = "" if sae["fidelity"] is None else (f" · fidelity {sae['fidelity']:.2f} (centered on the "
                                                  f"{sae['fidelity_centre']} mean; massive dims "
                                                  f"{sae['massive_share']:.0%} of |x|²)")
        dense = f" · {sae['dense_hidden']} always-on hidden (--show-dense)" if sae["dense_hidden"] else ""
        table = Table(title=f"{role} SAE ({sae['width']:,} features at {sae['hook']}) · {where} · "
                            f"L0 {sae['l0']} · {sae['silent']:,} silent{fid}{dense}", title_justify="left")
        for col, justify in (("feature", "right"), ("activation", "right"), ("max", "right"),
                             ("label (top-snippet tokens, else promoted tokens)", "left")):
            table.add_column(col, justify=justify)
        for row in sae["top"]:
            max_act = "–" if row["max_act"] is None else f"{row['max_act']:.1f}"
            table.add_row(str(row["feature"]), f"{row['activation']:.2f}", max_act,
                          Text(visible(row["label"], max_len=60, mark_spaces=False)))
        console.print(table)
        link = next((r["url"] for r in sae["top"] if r.get("url")), None)
        if link:  # one line, not a column: the id is the last path part (--json has every row's url)
            console.print(Text(f"Neuronpedia: {link.rsplit('/', 1)[0]}/<feature>", style="grey62"))
    return 0


def cmd_lens(args) -> int:
    from spectrascope.core.analysis.lens import logit_lens

    args.sae_presets = ()  # the lens reads no SAE: do not load any
    session = _load_session(args)
    tuned = None
    if args.tuned:
        from spectrascope.core.analysis.tuned_lens import tuned_lens

        def say(text: str, frac: float | None) -> None:
            print(f"[spectrascope] {text}", file=sys.stderr, flush=True)

        tuned = tuned_lens(session, progress=say)
    report = logit_lens(session, args.prompt, args.position, args.top, tuned)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import visible

    target = visible(report.target[1])
    table = Table(title=f"{report.lens} at token {report.position} ({visible(report.tokens[report.position])}) · final "
                        f"top-1 {target} · top-1 from layer {report.commitment} on", title_justify="left")
    for col, justify in (("layer", "right"), (f"rank of {target}", "right"), ("p", "right"), ("entropy", "right"),
                         ("|x|", "right"), ("top-3 dims", "right"), ("top tokens", "left")):
        table.add_column(col, justify=justify)
    for row in report.rows:
        tops = "  ".join(f"{visible(piece)} {p:.2f}" for _, piece, p in row.top)
        table.add_row(row.layer, str(row.target_rank), f"{row.target_prob:.3f}", f"{row.entropy:.2f}",
                      f"{row.norm:.0f}", f"{row.massive_share:.0%}", Text(tops),
                      style="bold" if row.layer == report.commitment else "")
    headless_console().print(table)
    return 0


def cmd_anchor(args) -> int:
    from spectrascope.core.analysis.anchoring import anchor_report

    session = _load_session(args)
    reports = [anchor_report(session, args.prompt, system, args.top) for system in args.system]
    nav = None
    if args.navigator:
        from spectrascope.core.analysis.navigator import navigator, reference_basis

        nav = navigator(session, args.prompt, args.system, reference_basis(session))
    if args.json:
        doc = [r.to_dict() for r in reports]
        print(json.dumps({"reports": doc, "navigator": nav.to_dict()} if nav else doc, indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table
    from rich.text import Text

    from spectrascope.core.text import one_line, visible

    console = headless_console()
    for rep in reports:
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
                              f"{r.before_last:.1f} → {r.after_last:.1f}", Text(visible(r.label, 60, mark_spaces=False)))
            console.print(table)
    if nav is not None:
        table = Table(title=f"navigator: last token on the reference plane at {nav.hook} (PC1 {nav.explained[0]:.0%}, "
                            f"PC2 {nav.explained[1]:.0%} of the reference variance)", title_justify="left")
        for col in ("system", "PC1", "PC2", "|Δx| from alone"):
            table.add_column(col, justify="left" if col == "system" else "right")
        for pt in nav.points:
            table.add_row(one_line(pt.system, 60) or "(none)", f"{pt.x:.1f}", f"{pt.y:.1f}", f"{pt.shift:.1f}")
        console.print(table)
    return 0


def cmd_drift(args) -> int:
    from spectrascope.core.analysis.drift import drift_experiment, load_turns

    filler = load_turns(args.filler) if args.filler else None  # a bad file fails before the model loads
    session = _load_session(args)

    def progress(text, fraction):
        if not args.json and sys.stderr.isatty():
            print(f"\r[drift] {text}", end="", file=sys.stderr, flush=True)

    target = session.tokenize(args.target, add_bos=False)[0][0] if args.target else None
    rep = drift_experiment(session, args.system, args.question, filler, args.max_turns, target=target,
                           progress=progress)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console
    from rich.table import Table

    from spectrascope.core.text import one_line, visible

    console = headless_console()
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
    return 0


def cmd_saes(args) -> int:
    from spectrascope.core.engine.saes import PRESETS, cached_releases

    presets = {name: spec.to_dict() for name, spec in PRESETS.items()}
    cached = cached_releases()
    if args.json:
        print(json.dumps({"presets": presets, "cached": cached}, indent=1))
        return 0
    print("presets (--sae ROLE=NAME, or [saes] in the config):")
    for name, spec in PRESETS.items():
        print(f"  {name:<28} {spec.label}")
    print(f"in the local Hugging Face cache ({len(cached)}; --sae ROLE=RELEASE/SAE_ID):")
    for c in cached:
        print(f"  {c['spec']:<60} layer {c.get('layer', '?'):>3} · width {c.get('width', '?'):>5} · L0 {c.get('l0', '-')}")
    if not cached:
        print("  none: `hf download google/gemma-scope-2b-pt-res --include 'layer_12/width_16k/average_l0_82/*'` "
              "on a machine with internet (gated: accept the license, `hf auth login`), then copy the HF cache")
    return 0


def cmd_sae_info(args) -> int:
    from spectrascope.core.analysis.sae_info import sae_info

    session = _load_session(args)
    infos = [sae_info(session, role) for role in session.saes]
    if args.json:
        print(json.dumps({"saes": [i.to_dict() for i in infos], "not_loaded": dict(session.sae_errors)},
                         indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console

    from spectrascope.tui.sae_info import info_table

    console = headless_console()
    for info in infos:
        console.print(info_table(info))
    for role, why in session.sae_errors.items():
        console.print(f"{role}: not loaded ({why})")
    return 0


def cmd_serve(args) -> int:
    from spectrascope.tui.serve import serve

    argv = ["--model", args.model, "--device", args.device, "--dtype", args.dtype, "--sae-dtype", args.sae_dtype,
            *(arg for text in args.sae or () for arg in ("--sae", text))]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[spectrascope] serving on {args.host}: anyone who can reach it can use the app", file=sys.stderr)
    return serve(argv, args.host, args.port)


def run_tui(args) -> int:
    from spectrascope.tui.app import SpectrascopeApp

    demo = None
    if args.demo:
        from spectrascope.tui.demo import load_demo

        demo = load_demo(args.demo)  # ValueError -> clear message, exit 2
    restore = None
    if args.session:
        from spectrascope.tui.session_file import load_session_file

        restore = load_session_file(args.session)  # ValueError -> clear message, exit 2
        if restore.get("model") and not args.model_given:
            args.model = restore["model"]
    from spectrascope.tui.serve import die_with_parent, served

    if served():
        die_with_parent()  # a browser tab's app: it ends with `spectrascope serve`, however that ends
    app = SpectrascopeApp(lambda progress: _load_session(args, progress), prompt=args.initial_prompt,
                          output_dir=args.output_dir, restore=restore, demo=demo, knobs=args.config.get("knobs"),
                          export_dir=args.export_dir or args.config.get("export", {}).get("folder"))
    # Our own loop, not App.run's asyncio.run: that one's exit joins the default executor, where
    # Textual's thread workers live, so ctrl+q waited for a running load, contrast or generation.
    loop = asyncio.new_event_loop()
    app.run(loop=loop)
    # A worker still inside a C call (model load, a forward) cannot be interrupted; its result
    # is unwanted now, so leave without waiting for it (the terminal is already restored).
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(app.return_code or 0)
    loop.close()
    return app.return_code or 0


def main(argv: list[str] | None = None) -> int:
    _environment()
    try:
        args = parse_args(argv)
        args.model_given = args.model is not None
        args.config = _apply_config(args)
        if args.command is None:
            return run_tui(args)
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        from spectrascope.core.engine.models import ModelUnavailable
        from spectrascope.core.engine.session import PromptError

        if isinstance(exc, (ModelUnavailable, PromptError, ValueError)):
            print(f"spectrascope: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
