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

# The modules of this package with a COMMANDS tuple, in the order `--help` lists them.
MODULES = ("probe", "logits", "spectrum", "layers", "anchor", "pairing", "steering", "compare", "attribution", "find")


@dataclass(frozen=True)
class ViewCommand:
    name: str  # the subcommand
    help: str
    view: str  # the module in spectrascope.core.views; imported when the command runs (it loads torch)
    arguments: Callable[[argparse.ArgumentParser], None]  # the command's own arguments
    spec: Callable[[argparse.Namespace], Any]  # the view's Spec from the arguments (ValueError: exit 2)
    text: Callable[[Any, Any], None]  # print(report, console): the report as tables
    markdown: bool = False  # the report has to_markdown(): --markdown
    saes: bool | Callable[[Any], bool] = True  # False (or a function of the Spec saying so): no SAE is loaded
    build: str = "build"  # the view module's function that makes the report (a module may hold two views)
    document: Callable[[Any, Any], Any] | None = None  # (report, session) -> what --json prints; None: to_dict()
    progress: Callable[[argparse.Namespace], Callable[[str, float | None], None]] | None = None  # None: stderr
    after: Callable[[Any, argparse.Namespace], None] | None = None  # (report, args) once built: say, --output FILE
    named_errors: bool = False  # a ValueError prints "spectrascope NAME: why" and exits 2 here (else main's line)


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `minimum`, else a one-line usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


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
    try:
        return _run(command, args, load_session)
    except ValueError as exc:  # a bad argument or a missing input: one line, no traceback
        if not command.named_errors:
            raise
        print(f"spectrascope {command.name}: {exc}", file=sys.stderr)
        return 2


def _run(command: ViewCommand, args: argparse.Namespace, load_session: Callable[..., Any]) -> int:
    spec = command.spec(args)  # before the model loads: a bad value is refused at once
    if "" in (getattr(spec, "prompt", None), getattr(spec, "user", None)):  # the text the model runs on
        from spectrascope.core.engine.values import EMPTY_PROMPT, PromptError

        raise PromptError(EMPTY_PROMPT)  # the session would say the same, after a load of seconds
    if not (command.saes(spec) if callable(command.saes) else command.saes):
        args.sae_presets = ()  # loading SAEs the view never reads would only cost time and memory
    session = load_session(args)
    view = importlib.import_module(f"spectrascope.core.views.{command.view}")
    progress = command.progress(args) if command.progress is not None else stderr_progress
    report = getattr(view, command.build)(session, spec, cancel=None, progress=progress)
    if command.after is not None:
        command.after(report, args)
    if args.json:
        doc = command.document(report, session) if command.document is not None else report.to_dict()
        print(json.dumps(doc, indent=1, ensure_ascii=False))
    elif getattr(args, "markdown", False):
        print(report.to_markdown(), end="")
    else:
        from spectrascope.tui.console import headless_console

        command.text(report, headless_console())
    return 0
