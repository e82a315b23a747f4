"""What a pane's result was computed for, and the line that says when that no longer holds.

Seeded runs, the system-prompt A/B and steering reports are slow to make, so a
pane keeps them when the prompt or a knob changes; each one carries its `Basis`
and is shown under a "stale: computed for …" line until it is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

from spectrascope.core.text import one_line


@dataclass(frozen=True)
class Basis:
    prompt: str
    knobs: str = ""  # every setting the result depends on, as the user reads it

    def stale_note(self, current: "Basis") -> str:
        """'' while `current` is this basis; else what the result was computed for (prompt first)."""
        if self.prompt != current.prompt:
            return f"stale: computed for '{one_line(self.prompt, 60)}'"
        if self.knobs != current.knobs:
            return f"stale: computed for {one_line(self.knobs, 160)}"
        return ""
