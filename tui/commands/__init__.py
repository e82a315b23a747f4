"""One runner for every view's subcommand.

A subcommand is a `ViewCommand`: its arguments, how they become the view's Spec (checked before the
model loads, so a bad value costs no load), and how its Report prints as tables. The runner loads the
session, calls the view's `build(session, spec, cancel, progress)` (core/views/<view>.py) and prints
the Report as tables, `--json` (`report.to_dict()`) or `--markdown` (`report.to_markdown()`). The pane
renders the same Report, so the two cannot disagree.

Each module here holds one view's commands (`COMMANDS`); `MODULES` lists them for the parser.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable

MODULES = ()  # modules of this package with a COMMANDS tuple, in the order `--help` lists them


@dataclass(frozen=True)
class ViewCommand:
    name: str  # the subcommand
    help: str
    view: str  # the module in spectrascope.core.views; imported when the command runs (it loads torch)
    arguments: Callable[[argparse.ArgumentParser], None]  # the command's own arguments
    spec: Callable[[argparse.Namespace], Any]  # the view's Spec from the arguments (ValueError: exit 2)
    text: Callable[[Any, Any], None]  # print(report, console): the report as tables
    markdown: bool = False  # the report has to_markdown(): --markdown
    saes: bool = True  # False: the view reads no SAE, none is loaded


def add_commands(sub: Any, model_args: Callable[[argparse.ArgumentParser], None],
                 load_session: Callable[..., Any]) -> None:
    """Add every view command to the subparsers `sub`; each runs with `load_session(args)`."""
    for name in MODULES:
        for command in importlib.import_module(f"{__name__}.{name}").COMMANDS:
            p = sub.add_parser(command.name, help=command.help)
            command.arguments(p)
            if command.markdown:
                fmt = p.add_mutually_exclusive_group()
                fmt.add_argument("--json", action="store_true", help="print the report as JSON")
                fmt.add_argument("--markdown", action="store_true", help="print the report as Markdown")
            else:
                p.add_argument("--json", action="store_true", help="machine-readable output")
            model_args(p)
            p.set_defaults(handler=lambda args, c=command: run(c, args, load_session))


def stderr_progress(text: str, fraction: float | None = None) -> None:
    print(f"[spectrascope] {text}", file=sys.stderr, flush=True)


def run(command: ViewCommand, args: argparse.Namespace, load_session: Callable[..., Any]) -> int:
    spec = command.spec(args)  # before the model loads: a bad value is refused at once
    if not command.saes:
        args.sae_presets = ()  # loading SAEs the view never reads would only cost time and memory
    session = load_session(args)
    view = importlib.import_module(f"spectrascope.core.views.{command.view}")
    report = view.build(session, spec, cancel=None, progress=stderr_progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    elif getattr(args, "markdown", False):
        print(report.to_markdown(), end="")
    else:
        from spectrascope.tui.console import headless_console

        command.text(report, headless_console())
    return 0
