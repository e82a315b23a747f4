"""A feature's card (tui/widgets/feature_card.py) as a screen over the app: the Find pane's `enter`."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class FeatureCardScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]
    DEFAULT_CSS = """
    FeatureCardScreen { align: center middle; }
    FeatureCardScreen > VerticalScroll { width: 110; max-width: 100%; height: 90%; border: thick $primary;
                                         background: $surface; padding: 0 1; }
    """

    def __init__(self, card: Text):
        super().__init__()
        self.card = card

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("esc closes", style="grey50"))
            yield Static(self.card, id="card-text")
