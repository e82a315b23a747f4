"""The SAE info screen (ctrl+o / the palette's "SAE info"): what each loaded SAE is and how good
it is, the same rows `spectrascope sae-info` prints (core/sae_info.py)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def info_table(info) -> Table:
    table = Table(title=f"{info.role} SAE", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for what, value in info.rows():
        table.add_row(Text(what), Text(value))
    return table


class SAEInfoScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,ctrl+o", "dismiss", "Close")]
    DEFAULT_CSS = """
    SAEInfoScreen { align: center middle; }
    SAEInfoScreen > VerticalScroll { width: 100; max-width: 100%; height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, infos: list, missing: dict[str, str]):
        super().__init__()
        self.infos = infos
        self.missing = missing  # role -> why it is not loaded

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Loaded SAEs  (esc closes)", style="bold"))
            for info in self.infos:
                yield Static(info_table(info))
                yield Static("")
            if len(self.infos) > 1:  # the training budgets side by side: coarse vs fine mixes width with them
                from spectrascope.core.analysis.sae_info import budgets_line, training_budget

                yield Static(Text(budgets_line({i.role: training_budget(i.folder) for i in self.infos})))
                yield Static("")
            for role, why in self.missing.items():
                yield Static(Text(f"{role}: not loaded ({why})", style="yellow"))
            if not self.infos and not self.missing:
                yield Static(Text("No SAE is loaded.", style="yellow"))
