"""The SAE picker (F7 / the palette): switch the coarse or fine SAE, and so its layer, without a
restart. Takes the same ROLE=SPEC as `--sae` (a preset, a sae-lens release/sae_id, a folder)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static



def choices_text() -> Text:
    """The presets and what the local HF cache holds, as the `saes` command lists them."""
    from spectrascope.core.engine.saes import PRESETS, cached_releases

    text = Text("presets:\n", style="grey50")
    for name, spec in PRESETS.items():
        text.append(f"  {name:<28} ", style="bold")
        text.append(f"{spec.label}\n")
    try:
        cached = cached_releases()
    except Exception as exc:  # noqa: BLE001 - the list is a convenience; typing a SPEC still works
        cached, error = [], str(exc)
    else:
        error = ""
    text.append(f"in the local Hugging Face cache ({len(cached)}):\n", style="grey50")
    for c in cached:
        text.append(f"  {c['spec']}  (layer {c.get('layer', '?')}, width {c.get('width', '?')}, L0 {c.get('l0', '-')})\n")
    if error:
        text.append(f"  could not list it: {error}\n", style="yellow")
    return text


class SAEPickerScreen(ModalScreen[tuple[str, Any] | None]):
    """Returns (role, SAESpec), or None when closed with esc."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]
    DEFAULT_CSS = """
    SAEPickerScreen { align: center middle; }
    SAEPickerScreen > VerticalScroll { width: 110; max-width: 100%; height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    #picker-error { color: $text-error; height: auto; }  /* $error is a fill colour: 3.5:1 as text */
    """

    def __init__(self, loaded: dict[str, str]):
        super().__init__()
        self.loaded = loaded  # role -> label of what is attached now

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            now = " · ".join(f"{r}: {label}" for r, label in self.loaded.items()) or "no SAE loaded"
            yield Static(Text(f"Switch an SAE (esc closes) · now {now}", style="bold"))
            spec = Input(placeholder="coarse=embedded-coarse", select_on_focus=False, id="picker-spec")
            spec.border_title = "ROLE=SPEC, e.g. fine=gemma-scope-2b-262k or coarse=/path/to/layer_12/width_16k/x"
            yield spec  # a plain Input: esc closes this screen (a TextField's esc would reach for a pane)
            yield Static("", id="picker-error")
            yield Static(choices_text())

    def on_mount(self) -> None:
        self.query_one("#picker-spec", Input).focus()

    @on(Input.Submitted, "#picker-spec")
    def _chosen(self, event: Input.Submitted) -> None:
        from spectrascope.core.engine.saes import parse_role_spec

        try:
            role, spec = parse_role_spec(event.value)
        except (ValueError, KeyError) as exc:
            self.query_one("#picker-error", Static).update(Text(str(exc).strip("'\""), style="red"))
            return
        self.dismiss((role, spec))
