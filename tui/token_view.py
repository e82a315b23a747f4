"""The token view screen (Pairing pane, v): a feature's activation on every token of the concept
prompts where it fires most and least and the neutral prompts where it fires most."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from spectrascope.core.text import visible


def prompt_line(prompt, scale: float) -> Text:
    """Tokens shaded by activation (the brightest is the prompt's max), the peak value after."""
    line = Text(f"{prompt.set_name[0]}{prompt.index:<4} ", style="grey50")
    for tok, act in zip(prompt.tokens, prompt.acts):
        level = min(1.0, act / scale) if scale > 0 else 0.0
        style = f"black on rgb({int(60 + 195 * level)},{int(60 + 140 * level)},40)" if act > 0 else ""
        line.append(visible(tok, 24), style=style)
        line.append(" ")
    line.append(f" max {prompt.peak:.1f}", style="bold" if prompt.peak > 0 else "grey50")
    return line


class TokenViewScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,v", "dismiss", "Close")]
    DEFAULT_CSS = """
    TokenViewScreen { align: center middle; }
    TokenViewScreen > VerticalScroll { width: 95%; height: 85%; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, role: str, feature: int, label: str, view: list):
        super().__init__()
        self.title_text = f"{role} #{feature} token by token · {label}  (esc closes)"
        self.view = view

    def compose(self) -> ComposeResult:
        scale = max((p.peak for p in self.view), default=0.0)
        with VerticalScroll():
            yield Static(Text(self.title_text, style="bold"))
            sections = (("concept prompts where it fires most, then least", "concept"),
                        ("neutral prompts where it fires most (false positives)", "neutral"))
            for title, name in sections:
                yield Static(Text(f"\n{title}:", style="grey50"))
                for prompt in (p for p in self.view if p.set_name == name):
                    yield Static(prompt_line(prompt, scale))
