"""A labelled one-line text field that never traps the keyboard.

The focus model (README, `?` help): keys act on the focused pane; a field takes
keys only once entered, and Esc always hands the keyboard back to the pane.
Focusing a field leaves its text alone (no select-all, so one key cannot wipe
a list), and its label stays visible on the border once text hides the placeholder.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class TextField(Input):
    BINDINGS = [Binding("escape", "app.focus_pane", "Back to the pane", show=False)]

    def __init__(self, label: str, **kwargs):
        kwargs.setdefault("select_on_focus", False)
        super().__init__(**kwargs)
        self.border_title = label
