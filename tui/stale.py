"""What a pane's result was computed for, and the line that says when that no longer holds.

Seeded runs, the system-prompt A/B and steering reports are slow to make, so a
pane keeps them when the prompt or a knob changes; each one carries what it was
computed for (a view's Spec, or a `Basis`) and is shown under a "stale: computed
for …" line until it is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from spectrascope.core.text import one_line


def stale_note(then: Any, now: Any, knobs: Callable[[Any], str]) -> str:
    """'' while `now` (a Spec with a `prompt`) equals `then`, what a result was computed for; else that,
    as the user reads it: the prompt when it differs, else `knobs(then)`."""
    if then.prompt != now.prompt:
        return f"stale: computed for '{one_line(then.prompt, 60)}'"
    if then != now:
        return f"stale: computed for {one_line(knobs(then), 160)}"
    return ""


@dataclass(frozen=True)
class Basis:
    prompt: str
    knobs: str = ""  # every setting the result depends on, as the user reads it

    def stale_note(self, current: "Basis") -> str:
        """'' while `current` is this basis; else what the result was computed for (prompt first)."""
        return stale_note(self, current, lambda basis: basis.knobs)
