"""The pane registry: the app builds its tabs, F-keys and palette from `PANES` and names no pane class.

Each pane derives from `base.Pane` and renders one core view's Report (core/views/<name>.py).
To add a view: write core/views/x.py and tui/panes/x.py, add one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PaneEntry:
    name: str  # the pane's id (its tab is tab-NAME) and its core view's module name
    key: str  # the key that shows it
    title: str  # its tab
    cls: str  # the Pane subclass in tui/panes/NAME.py
    about: str  # the palette's "Show the … pane" line
    binds: tuple[str, ...] = ()  # app reactives besides `session` the pane is data-bound to
    commands: tuple[tuple[str, str, str], ...] = ()  # (palette title, the pane's action, its key) besides "show"

    def pane_class(self) -> type:
        return getattr(importlib.import_module(f"{__name__}.{self.name}"), self.cls)


PANES = (
    PaneEntry("logits", "f2", "Logits", "LogitsPane", "Show the Logits pane"),
    PaneEntry("spectrum", "f3", "Spectrum", "SpectrumPane", "Show the Spectrum pane"),
    PaneEntry("pairing", "f4", "Pairing", "PairingPane", "Show the Pairing pane",
              commands=(("Pairing: run the concept vs neutral contrast", "run", "r in Pairing"),
                        ("Pairing: match the neutral set to the concept set (swap its concept words)", "match_neutral",
                         "palette"))),
    PaneEntry("steering", "f5", "Steering", "SteeringPane", "Show the Steering pane",
              binds=("prompt", "pairing_selection", "steer_features"),
              commands=(("Steering: generate all configurations", "generate", "g in Steering"),
                        ("Steering: strength sweep", "sweep", "w in Steering"))),
    PaneEntry("layers", "f6", "Layers", "LayersPane", "Show the Layers pane (logit lens)"),
    PaneEntry("anchor", "f8", "Anchor", "AnchorPane", "Show the Anchor pane (the system prompt in activation space)",
              binds=("system_prompt",),
              commands=(("Anchor: run the drift experiment", "drift", "d in Anchor"),)),
    PaneEntry("attribution", "f10", "Why", "AttributionPane",
              "Show the Attribution pane (why this token: features by their effect on a logit)",
              binds=("attribution_ask",),
              commands=(("Attribution: ablate the selected feature live", "ablate", "enter in Why"),
                        ("Attribution: send the selected feature to Steering", "steer", "s in Why"))),
    PaneEntry("find", "ctrl+f", "Find", "FindPane", "Find a feature by text or example",
              commands=(("Find: type words to find a feature (both SAEs)", "focus_query", "f in Find"),
                        ("Find: by example (the prompt's tokens)", "mode", "e in Find"))),
)
