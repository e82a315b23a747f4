"""The Pairing pane's matched neutral set, from the command palette ("Pairing: match the neutral set to the
concept set"): the concept set's words swapped for same-kind words (core/analysis/matched_neutral.py),
written to the cache folder and set as the pane's neutral set; `r` runs it.

A mixin so the pane stays within its line budget (tests/test_architecture.py), as LabelWorker is.
"""

from __future__ import annotations


class MatchedNeutralAction:
    """Mixin for the Pairing pane: needs its `concept_path`, `neutral_path`, `_draw_header` and `_say`."""

    def action_match_neutral(self) -> None:
        from spectrascope.core.analysis.matched_neutral import write_matched
        from spectrascope.tui.errors import describe

        try:
            path, matched = write_matched(self.concept_path)
        except (ValueError, OSError) as exc:  # no word to swap, or an unreadable concept set: one line
            self._say(describe(exc), error=True)
            return
        self.neutral_path = path
        self._draw_header()
        self._say(f"{matched.text}; r runs it (s: a shipped set again).")
