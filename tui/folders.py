"""Where the app's files go: sessions (ctrl+s), SVG screenshots (ctrl+g) and exports (ctrl+e).

By default the per-user data folder (platformdirs: $XDG_DATA_HOME/spectrascope, else
~/.local/share/spectrascope on Linux; ~/Library/Application Support/spectrascope on macOS), never the
current directory, which under `make run` is a git checkout. `--output-dir` or the config's [export]
output_dir choose another; exports go to OUTPUT_DIR/spectrascope-exports unless `--export-dir` or
[export] folder say otherwise (tui/export.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def default_output_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("spectrascope", appauthor=False))


def output_dir(flag: str | Path | None = None, config: dict[str, Any] | None = None) -> Path:
    """The flag, else the config's [export] output_dir, else the per-user data folder; absolute."""
    chosen = flag or (config or {}).get("export", {}).get("output_dir")
    return (Path(chosen).expanduser() if chosen else default_output_dir()).resolve()


def ready(folder: Path) -> Path:
    """`folder`, created if it is not there yet (the data folder does not exist before the first file)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder
