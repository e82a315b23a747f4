"""The Steering pane's concept-words field: it shows the concept feature's own words until the user types others.

The words a run counts come from the concept feature (its top contexts and whole-word promoted tokens,
core/analysis/steering.py `concept_words`) unless the user gives a list; showing them in the field makes
them seen and editable. The field tells the two apart: its text equal to the offered words (or empty)
means "the feature's own", which follow the feature when it changes; anything else is the user's list.
"""

from __future__ import annotations

from spectrascope.tui.widgets.text_field import TextField


class WordsField(TextField):
    offered: tuple[str, ...] = ()  # the concept feature's words, as last shown

    def offer(self, words: list[str]) -> bool:
        """Show the feature's `words` unless the user typed a list of their own; True when shown."""
        if self.asked() is not None:
            return False
        self.offered, self.value = tuple(words), ", ".join(words)
        return True

    def withdraw(self) -> None:
        """The feature has no words: an offered list goes (the user's stays)."""
        if self.asked() is None:
            self.offered, self.value = (), ""

    def asked(self) -> list[str] | None:
        """The user's list, or None for the feature's own words (the offered ones, or an empty field)."""
        words = [w.strip() for w in self.value.split(",") if w.strip()]
        return None if not words or tuple(words) == self.offered else words
