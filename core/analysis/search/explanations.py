"""Written feature explanations from a Neuronpedia export, searchable as Find's "explanation" field."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Explanations:
    descriptions: Mapping[int, str]  # feature -> its explanations, joined with " | "
    source: tuple[str, str] | None = None  # Neuronpedia's (modelId, layer) of the export, where it says

    def digest(self) -> str:
        blob = json.dumps(sorted(self.descriptions.items())).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def read_explanations(path: str | Path) -> Explanations:
    """A Neuronpedia feature-explanations export: a JSON list (or JSON lines, gzipped or not) of objects
    with "index" and "description" ("modelId" and "layer" name the SAE). ValueError with one line if not."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"Cannot read the labels file {path}: {exc.strerror or exc}.") from None
    try:
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON or JSON lines: {exc}.") from None
    if isinstance(data, dict):
        data = data.get("explanations", [data])
    out: dict[int, list[str]] = {}
    source = None
    for i, item in enumerate(data if isinstance(data, list) else []):
        try:
            index, text = int(item["index"]), str(item.get("description") or "").strip()
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: item {i} has no whole-number \"index\" (Neuronpedia's explanation "
                             "export: objects with \"index\" and \"description\").") from None
        if text and text not in out.setdefault(index, []):
            out[index].append(text)
        if source is None and item.get("modelId") and item.get("layer"):
            source = (str(item["modelId"]), str(item["layer"]))
    if not out:
        raise ValueError(f"{path} holds no explanations (expected objects with \"index\" and \"description\").")
    return Explanations({k: " | ".join(v) for k, v in out.items()}, source)
