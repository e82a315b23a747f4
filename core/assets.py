"""Where the files shipped with spectrascope live, and how they are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PROMPTS_DIR = ASSETS / "prompts"
SAES_DIR = ASSETS / "saes"


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to `path` through a synced temp file in the same folder and os.replace:
    a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
