"""The user's config file (TOML) with defaults for the model, SAEs, device, dtype and knobs.

Looked up at $SPECTRASCOPE_CONFIG, else $XDG_CONFIG_HOME/spectrascope/config.toml
(default ~/.config/spectrascope/config.toml). Command-line flags override it.

    [model]
    name = "gemma-2-2b"      # preset, HF id or folder
    device = "cuda"
    dtype = "bfloat16"
    sae_dtype = "auto"       # the SAEs' dtype: auto = the model's

    [saes]                   # role = SAE preset, sae-lens release/sae_id, or folder (PATH[@LAYER])
    coarse = "gemma-scope-2b-16k"
    fine = "gemma-scope-2b-262k"

    [knobs]
    temperature = 0.7
    top_k = 40
    top_p = 0.95
    seed = 0

    [export]
    output_dir = "~/talks/files"        # sessions and screenshots (default: the per-user data folder,
                                        # ~/.local/share/spectrascope on Linux; tui/folders.py)
    folder = "~/spectrascope-exports"   # where ctrl+e writes (default OUTPUT_DIR/spectrascope-exports)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KNOWN = {"model": {"name", "device", "dtype", "sae_dtype"}, "saes": {"coarse", "fine"},
         "knobs": {"temperature", "top_k", "top_p", "seed"}, "export": {"folder", "output_dir"}}


def config_path() -> Path:
    if os.environ.get("SPECTRASCOPE_CONFIG"):
        return Path(os.environ["SPECTRASCOPE_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "spectrascope" / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The config as a dict of sections; {} when there is no file. Errors name the file and key."""
    path = path or config_path()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Config file {path} is not valid TOML: {exc}") from None
    for section, values in data.items():
        if section not in KNOWN or not isinstance(values, dict):
            raise ValueError(f"Config file {path}: unknown section [{section}] (known: {', '.join(KNOWN)}).")
        unknown = set(values) - KNOWN[section]
        if unknown:
            raise ValueError(f"Config file {path}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}.")
    for key in ("folder", "output_dir"):
        folder = data.get("export", {}).get(key)
        if folder is not None and (not isinstance(folder, str) or not folder.strip()):
            raise ValueError(f"Config file {path}, [export] {key}: give a folder path as a string, not {folder!r}.")
    if "knobs" in data:
        from spectrascope.core.stats.knobs import SamplingSettings

        try:
            SamplingSettings.from_dict(data["knobs"])
        except ValueError as exc:
            raise ValueError(f"Config file {path}, [knobs]: {exc}") from None
    return data
