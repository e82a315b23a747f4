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


# The model flags, given before or after the subcommand.
MODEL_FLAGS = ("model", "device", "dtype", "sae", "sae_dtype", "device_map", "max_memory")
TUI_FLAGS = ("initial_prompt", "session", "output_dir", "export_dir", "demo")  # TUI only: rejected with a subcommand


def _model_args(p: argparse.ArgumentParser, dest_prefix: str = "") -> None:
    # None = not given: the config file decides, then the built-in default. A subcommand's copy
    # stores under "sub_<name>": with one dest, argparse lets the subcommand's default None
    # overwrite a value given before the subcommand (`--model X probe` ran the default model).
    from spectrascope.core.engine.models import DEVICE_MAPS

    d = lambda name: dest_prefix + name  # noqa: E731
    p.add_argument("--model", dest=d("model"), default=None,
                   help="preset, HF id (cached) or local folder [gemma-3-270m]")
    p.add_argument("--device", dest=d("device"), default=None, help="auto, cpu, cuda, cuda:1 … [auto]")
    p.add_argument("--dtype", dest=d("dtype"), default=None, help="auto, bfloat16, float16, float32 [auto]")
    p.add_argument("--device-map", dest=d("device_map"), default=None, choices=DEVICE_MAPS,
                   help="spread the model's layers over this box's GPUs (accelerate), instead of --device")
    p.add_argument("--max-memory", dest=d("max_memory"), default=None, metavar="DEV=SIZE,…",
                   help="memory per device for --device-map, e.g. 0=70GiB,1=70GiB [accelerate: what is free]")
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
    TUI flag with a subcommand other than `serve` (which hands them to each app) is a ValueError that
    says so (never silently ignored)."""
    if args.command is None:
        return args
    for name in TUI_FLAGS:
        if hasattr(args, "serve_" + name):  # `serve`: before or after it, as the model flags
            before, after = getattr(args, name), getattr(args, "serve_" + name)
            before = None if before == parser.get_default(name) else before
            if before is not None and after is not None and before != after:
                flag = "--" + name.removeprefix("initial_").replace("_", "-")
                raise ValueError(f"{flag} given twice with different values ({before!r} before `serve`, "
                                 f"{after!r} after it): give it once.")
            setattr(args, name, after if after is not None else before)
            delattr(args, "serve_" + name)
        elif getattr(args, name) != parser.get_default(name):
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
    _placement(args, model)
    return config


def _placement(args, model: dict) -> None:
    """--device-map / --max-memory, else the config's [model] device_map / max_memory (text, as the
    flag), checked before the model loads."""
    from spectrascope.core.engine.models import check_placement

    args.device_map = args.device_map or model.get("device_map")
    args.max_memory = args.max_memory or model.get("max_memory")
    check_placement(args.device, args.device_map, _max_memory(args))


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
    parser.add_argument("--output-dir", default=None,
                        help="where screenshots, sessions and (in spectrascope-exports/) exports go [the config's "
                             "[export] output_dir, else the per-user data folder, e.g. ~/.local/share/spectrascope]")
    parser.add_argument("--export-dir", default=None,
                        help="where ctrl+e's files go [the config's [export] folder, else OUTPUT_DIR/spectrascope-exports]")
    parser.add_argument("--demo", help="replay a demo script (prompts, keys, pauses) for a talk")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="serve the TUI in a web browser (Textual's web serving)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback exposes the app")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on [8000]")
    # Each browser tab's app gets these as `spectrascope` takes them (their own dests: see _merge_flags).
    serve.add_argument("--prompt", dest="serve_initial_prompt", default=None, help="initial prompt")
    serve.add_argument("--session", dest="serve_session", default=None, help="open this saved session in each tab")
    serve.add_argument("--demo", dest="serve_demo", default=None, help="play this demo script in each tab")
    serve.add_argument("--output-dir", dest="serve_output_dir", default=None,
                       help="where the apps' screenshots, sessions and exports go")
    serve.add_argument("--export-dir", dest="serve_export_dir", default=None, help="where the apps' ctrl+e files go")
    _sub_model_args(serve)

    saes = sub.add_parser("saes", help="the SAE presets, and the Gemma Scope SAEs the local HF cache holds (offline)")
    saes.add_argument("--for", dest="for_model", default=None, metavar="MODEL",
                      help="also every residual SAE sae-lens' registry has for MODEL (a preset or HF id), "
                           "each marked cached or not")
    saes.add_argument("--json", action="store_true")

    sae_info = sub.add_parser("sae-info", help="each loaded SAE: shape, and its held-out quality where measured")
    sae_info.add_argument("--json", action="store_true")
    _sub_model_args(sae_info)

    for name, handler in (("serve", cmd_serve), ("sae-info", cmd_sae_info), ("saes", cmd_saes)):
        sub.choices[name].set_defaults(handler=handler)
    from spectrascope.tui.commands import add_commands

    # The views' subcommands (tui/commands/): the Spec from the arguments, build, print the Report.
    add_commands(sub, _sub_model_args, lambda args, progress=None: _load_session(args, progress))
    return parser


def _load_session(args, progress=None):
    from spectrascope.core.engine.session import Session

    def to_stderr(text, fraction):
        print(f"[spectrascope] {text}", file=sys.stderr, flush=True)

    session = Session.load(args.model, device=args.device, dtype=args.dtype, progress=progress or to_stderr,
                           saes=getattr(args, "sae_presets", None), sae_dtype=getattr(args, "sae_dtype", None),
                           device_map=getattr(args, "device_map", None), max_memory=_max_memory(args))
    for text in getattr(args, "sae", None) or ():  # an SAE asked for by name: say at once why it is missing
        role = text.partition("=")[0].strip()
        if role in session.sae_errors:
            (progress or to_stderr)(f"--sae {role}: not loaded: {session.sae_errors[role]}", None)
    return session


def _max_memory(args) -> dict | None:
    from spectrascope.core.engine.models import parse_max_memory

    text = getattr(args, "max_memory", None)
    return parse_max_memory(str(text)) if text else None


def cmd_saes(args) -> int:
    from spectrascope.core.engine.saes import PRESETS, cached_releases, releases_for

    presets = {name: spec.to_dict() for name, spec in PRESETS.items()}
    cached = cached_releases()
    registry = None
    if args.for_model:
        from spectrascope.core.engine.models import hf_repo

        repo = hf_repo(args.for_model)
        registry = {"model": repo, "releases": releases_for(repo)}
    if args.json:
        print(json.dumps({"presets": presets, "cached": cached, **({"for_model": registry} if registry else {})},
                         indent=1))
        return 0
    if registry is not None:
        print(f"sae-lens' residual SAEs for {registry['model']} (✓ in the local HF cache):")
        for rel in registry["releases"]:
            here = [s for s in rel["saes"] if s["cached"]]
            layers = sorted({int(s["layer"]) for s in rel["saes"] if "layer" in s})
            widths = sorted({s.get("width", "?") for s in rel["saes"]}, key=lambda w: (w[-1:] == "m", len(w), w))
            print(f"  {rel['release']} ({rel['repo']}): {len(rel['saes'])} SAEs · layers {layers} · widths "
                  f"{', '.join(widths)} · {len(here)} cached")
            for s in here:
                print(f"    ✓ {rel['release']}/{s['sae_id']}")
        if not registry["releases"]:
            print("  none in the registry for this model")
    print("presets (--sae ROLE=NAME, or [saes] in the config):")
    for name, spec in PRESETS.items():
        print(f"  {name:<28} {spec.label}")
    print(f"in the local Hugging Face cache ({len(cached)}; --sae ROLE=RELEASE/SAE_ID):")
    for c in cached:
        print(f"  {c['spec']:<60} layer {c.get('layer', '?'):>3} · width {c.get('width', '?'):>5} · L0 {c.get('l0', '-')}")
    if not cached:
        print("  none: on a machine with internet (gated: accept the license, `hf auth login`) run\n"
              "    `hf download google/gemma-scope-2b-pt-res --include 'layer_12/width_16k/average_l0_82/*'` (Gemma 2 2B) or\n"
              "    `hf download google/gemma-scope-2-270m-pt --include 'resid_post/layer_9_width_16k_l0_medium/*'` "
              "(Gemma 3),\n  then copy the HF cache here")
    return 0


def cmd_sae_info(args) -> int:
    from spectrascope.core.analysis.sae_info import budgets_line, sae_info, training_budget

    session = _load_session(args)
    infos = [sae_info(session, role) for role in session.saes]
    budgets = {i.role: training_budget(i.folder) for i in infos}  # side by side: each from its card
    if args.json:
        print(json.dumps({"saes": [i.to_dict() for i in infos], "training_budgets": budgets,
                          "not_loaded": dict(session.sae_errors)}, indent=1, ensure_ascii=False))
        return 0
    from spectrascope.tui.console import headless_console

    from spectrascope.tui.sae_info import info_table

    console = headless_console()
    for info in infos:
        console.print(info_table(info))
    if len(budgets) > 1:
        console.print(budgets_line(budgets), markup=False)
    for role, why in session.sae_errors.items():
        console.print(f"{role}: not loaded ({why})")
    return 0


def cmd_serve(args) -> int:
    from pathlib import Path

    from spectrascope.tui.serve import serve

    _tui_inputs(args)  # a bad demo or session file: one line here, not a blank browser tab
    argv = ["--model", args.model, "--device", args.device, "--dtype", args.dtype, "--sae-dtype", args.sae_dtype,
            *(arg for text in args.sae or () for arg in ("--sae", text)),
            *(("--device-map", args.device_map) if args.device_map else ()),
            *(("--max-memory", str(args.max_memory)) if args.max_memory else ())]
    for flag, value in (("--prompt", args.initial_prompt), ("--session", args.session), ("--demo", args.demo),
                        ("--output-dir", args.output_dir), ("--export-dir", args.export_dir)):
        if value is not None:  # paths absolute: the apps need not share the server's working directory
            argv += [flag, value if flag == "--prompt" else str(Path(value).expanduser().resolve())]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[spectrascope] serving on {args.host}: anyone who can reach it can use the app", file=sys.stderr)
    return serve(argv, args.host, args.port)


def _tui_inputs(args) -> tuple[list | None, dict | None]:
    """The demo script and the session file, read and checked (a ValueError names what is wrong); a
    session's model is the one to load unless --model says otherwise."""
    demo = restore = None
    if args.demo:
        from spectrascope.tui.demo import load_demo

        demo = load_demo(args.demo)  # ValueError -> clear message, exit 2
    if args.session:
        from spectrascope.tui.session_file import load_session_file

        restore = load_session_file(args.session)  # ValueError -> clear message, exit 2
        if restore.get("model") and not args.model_given:
            args.model = restore["model"]
    return demo, restore


def run_tui(args) -> int:
    from spectrascope.tui.app import SpectrascopeApp

    demo, restore = _tui_inputs(args)
    from spectrascope.tui.folders import output_dir
    from spectrascope.tui.serve import die_with_parent, served

    if served():
        die_with_parent()  # a browser tab's app: it ends with `spectrascope serve`, however that ends
    app = SpectrascopeApp(lambda progress: _load_session(args, progress), prompt=args.initial_prompt,
                          output_dir=output_dir(args.output_dir, args.config), restore=restore, demo=demo,
                          knobs=args.config.get("knobs"),
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
