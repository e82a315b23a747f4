"""The `?` screen: every key, grouped by pane, read from the widgets' own BINDINGS."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _key_name(key: str) -> str:
    return " / ".join(k.replace("ctrl+", "^").replace("question_mark", "?") for k in key.split(","))


def bindings_table(title: str, bindings) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for b in bindings:
        b = b if isinstance(b, Binding) else Binding(*b)
        if b.description:
            table.add_row(Text(_key_name(b.key)), Text(b.description))
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, sections: list[tuple[str, list]]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("spectrascope keys  (esc closes)", style="bold"))
            for title, bindings in self.sections:
                yield Static(bindings_table(title, bindings))
                yield Static("")
