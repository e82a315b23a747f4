"""The command palette's pane lines: every key a pane declares, found by name from anywhere.

Textual's palette only lists the focused widget's keys, so "tuned" found nothing outside the Layers
pane. The app lists its own actions (SpectrascopeApp.COMMANDS_LIST: PANES' "show" lines and their
hand-titled commands among them); these are the rest, read from each pane's BINDINGS, so a key added
to a pane is in the palette with no line anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from spectrascope.tui.help import key_name


@dataclass(frozen=True)
class PaneCommand:
    title: str  # "Layers: Tuned lens"
    help: str  # "u in Layers"
    pane: str  # the pane's id
    action: str  # its action, as its binding says ("turn('temperature', -0.1)")


def pane_commands(panes) -> list[PaneCommand]:
    """One line per pane binding whose action the pane's PaneEntry.commands do not already title."""
    found = []
    for entry in panes:
        titled = {action for _, action, _ in entry.commands}
        for binding in entry.pane_class().BINDINGS:
            binding = binding if isinstance(binding, Binding) else Binding(*binding)
            if binding.action in titled:
                continue
            titled.add(binding.action)
            what = binding.description or binding.action.partition("(")[0].replace("_", " ")
            found.append(PaneCommand(f"{entry.title}: {what}", f"{key_name(binding.key)} in {entry.title}",
                                     entry.name, binding.action))
    return found
