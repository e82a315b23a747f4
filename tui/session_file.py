"""Save and restore what a user set up: prompt, knobs, selections, per-pane settings.

Each pane may offer `get_state() -> dict` and `set_state(dict)`; the file is
JSON, written atomically (`core.assets.atomic_write`) so a crash never leaves half a file.
Older files still load: a pane section or key they lack keeps its default (set_state reads
every key with a default), so a new setting never needs a converter.

Version 1 (the first files have no version field): prompt, knobs, A/B, Spectrum mode,
Pairing prompt sets and thresholds. Version 2 adds the Steering pane and Pairing's anchors
(its result is re-run from the contrast cache on restore). Spectrum's analyzer zoom and scale came
later without a version bump (an older file's Spectrum section lacks them: zoom 1, log scale).
Version 3 adds "results": what each pane showed (`Pane.get_results`: the Logits steps and seeded runs,
the Steering reports, the drift curves, the Attribution report, the Spectrum's tokens), shown again on
restore as saved or recomputed to the same numbers; a pane without results recomputes from its settings.

A bad value in a hand-edited file is one line naming its section and field (`apply_session`); the
other sections still restore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from spectrascope.core.assets import atomic_write
from spectrascope.core.text import one_line

if TYPE_CHECKING:
    from spectrascope.tui.panes.base import Pane

VERSION = 3


def collect(prompt: str, model: str | None, panes: Mapping[str, Pane]) -> dict[str, Any]:
    """The session document: the prompt, the model's name and each pane's state (its `get_state`)."""
    results = {name: pane.get_results() for name, pane in panes.items()}
    return {"version": VERSION, "prompt": prompt, "model": model,
            "panes": {name: pane.get_state() for name, pane in panes.items()},
            "results": {name: section for name, section in results.items() if section}}


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
    if not isinstance(data.get("prompt", ""), str) or not all(isinstance(data.get(k, {}), dict)
                                                              for k in ("panes", "results")):
        raise ValueError(f"Session file {path} is malformed: 'prompt' must be text, 'panes' and 'results' objects.")
    return data


def each(section: dict, keys: Sequence[str], load: Callable[[Any], Any]) -> tuple[dict[str, Any], str]:
    """`load` applied to each of `keys` that `section` holds, on its own: the loaded ones, and one line for
    those that failed ("" for none), so a bad part leaves the pane's other parts to restore."""
    loaded, bad = {}, []
    for key in keys:
        if key in section:
            try:
                loaded[key] = load(section[key])
            except (ValueError, TypeError, KeyError) as exc:
                bad.append(f"{key}: {exc}")
    return loaded, "; ".join(bad)


def apply_session(panes: Mapping[str, Pane], data: dict[str, Any], notes: list[str] | None = None) -> list[str]:
    """Restore each pane's state, then its results (the caller restores the prompt); returns one line per
    section that could not be applied, naming the pane and the field. That pane keeps its defaults for
    it; every other section still restores. `notes` gets what each pane did with its results."""
    problems = []
    for part, apply in (("panes", "set_state"), ("results", "set_results")):
        for name, section in data.get(part, {}).items():
            pane = panes.get(name)
            where = name if part == "panes" else f"{name} results"
            if pane is None:
                problems.append(f"Session file: no pane {name!r} to restore")
                continue
            try:
                if not isinstance(section, dict):
                    raise ValueError(f"expected an object, not {type(section).__name__}")
                note = getattr(pane, apply)(section)
                if note and notes is not None:
                    notes.append(f"{pane.pane_title}: {note}")
            except KeyError as exc:
                problems.append(f"Session file: {where}: missing field {exc}")
            except Exception as exc:  # noqa: BLE001 - a hand-edited file: one line, and the app keeps running
                problems.append(one_line(f"Session file: {where}: {exc}", 300))
    return problems
