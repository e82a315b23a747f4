"""Save and restore what a user set up: prompt, knobs, selections, per-pane settings.

Each pane may offer `get_state() -> dict` and `set_state(dict)`; the file is
JSON, written atomically (`core.assets.atomic_write`) so a crash never leaves half a file.
Older files still load: a pane section or key they lack keeps its default (set_state reads
every key with a default), so a new setting never needs a converter.

Version 1 (the first files have no version field): prompt, knobs, A/B, Spectrum mode,
Pairing prompt sets and thresholds. Version 2 adds the Steering pane and Pairing's anchors
(its result is re-run from the contrast cache on restore). Spectrum's analyzer zoom and scale came
later without a version bump (an older file's Spectrum section lacks them: zoom 1, log scale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from spectrascope.core.assets import atomic_write

if TYPE_CHECKING:
    from spectrascope.tui.panes.base import Pane

VERSION = 2


def collect(prompt: str, model: str | None, panes: Mapping[str, Pane]) -> dict[str, Any]:
    """The session document: the prompt, the model's name and each pane's state (its `get_state`)."""
    return {"version": VERSION, "prompt": prompt, "model": model,
            "panes": {name: pane.get_state() for name, pane in panes.items()}}


def save_session(path: Path, prompt: str, model: str | None, panes: Mapping[str, Pane]) -> Path:
    return atomic_write(path, json.dumps(collect(prompt, model, panes), indent=1, ensure_ascii=False))


def load_session_file(path: str | Path) -> dict[str, Any]:
    """Read and check a session file; every problem becomes a ValueError with the reason."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"Session file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Session file {path} is not valid JSON: {exc}") from None
    version = data.get("version", 1) if isinstance(data, dict) else None  # the first files had none
    if version not in range(1, VERSION + 1) or not {"prompt", "panes"} & set(data):
        raise ValueError(f"Session file {path} is not a spectrascope session (versions 1 to {VERSION}).")
    if not isinstance(data.get("prompt", ""), str) or not isinstance(data.get("panes", {}), dict):
        raise ValueError(f"Session file {path} is malformed: 'prompt' must be text, 'panes' an object.")
    return data


def apply_session(panes: Mapping[str, Pane], data: dict[str, Any]) -> list[str]:
    """Restore each pane's state (the caller restores the prompt); returns messages for settings that
    could not be applied."""
    problems = []
    for name, state in data.get("panes", {}).items():
        pane = panes.get(name)
        if pane is None:
            problems.append(f"no pane {name!r} to restore")
            continue
        try:
            pane.set_state(state)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{name}: {exc}")
    return problems
