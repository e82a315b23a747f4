"""Where search indexes are kept: in memory per SAE, and on disk keyed by everything an index is built
from (the SAE's weights and spec, its labels file, the explanations, the model's unembedding); one build
at a time per SAE."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from pathlib import Path
from typing import Any

from spectrascope.core.analysis.search.explanations import Explanations
from spectrascope.core.analysis.search.index import SearchIndex
from spectrascope.core.engine.embedded import Progress, _quiet
from spectrascope.core.engine.labels import labels_folder

INDEX_FORMAT = 3  # bump when the index layout or the word rules change: older cache files are misses

_memory: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # SAE -> {labels/explanations key: SearchIndex}
_building: dict[int, threading.Lock] = {}
_guard = threading.Lock()


def _digest(t: Any, full: bool = True) -> str:
    """The tensor's shape, dtype and a strided sample (and, `full`, its sums: contrast's digest). The
    unembedding of a named model needs no full pass (0.7 s at 262K x 640 on a CPU)."""
    import torch
    from spectrascope.core.analysis.contrast import _tensor_digest

    h = hashlib.sha256()
    if full:
        _tensor_digest(h, t)
    else:
        h.update(f"{tuple(t.shape)} {t.dtype}".encode())
        h.update(t.detach()[:: max(1, t.shape[0] // 4096)].to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _labels_digest(session: Any, role: str) -> str:
    """The shipped labels file's hash (the labels as loaded, where there is no file)."""
    from spectrascope.core.engine.labels import LABELS_FILE

    folder = labels_folder(session.sae_specs.get(role)) if hasattr(session, "sae_specs") else None
    for name in (LABELS_FILE, "labels.json"):
        if folder is not None and (folder / name).is_file():
            return hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
    shipped = session.labels[role].shipped if role in session.labels else {}
    return hashlib.sha256(json.dumps(shipped, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(session: Any, role: str, explanations: Explanations | None) -> Path:
    """Where this SAE's index is kept: keyed by the SAE's weights and spec, its labels file, the
    explanations, and the model's unembedding (the promoted-token standardiser depends on it)."""
    from spectrascope.core.engine.embedded import cache_root

    sae, spec = session.saes[role], (getattr(session, "sae_specs", {}) or {}).get(role)
    labels = session.labels.get(role)
    gain = getattr(labels, "final_norm_gain", None)
    key = {"format": INDEX_FORMAT, "sae": _digest(sae.W_dec), "spec": getattr(spec, "label", None),
           "hook": sae.cfg.metadata.hook_name, "labels": _labels_digest(session, role),
           "explanations": explanations.digest() if explanations else None, "model": session.model.spec.name,
           "unembed": _digest(session.unembedding(), full=False), "gain": None if gain is None else _digest(gain)}
    blob = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root() / "search" / f"{blob}.npz"


def index_for(session: Any, role: str, explanations: Explanations | None = None,
              progress: Progress = _quiet, use_disk: bool = True) -> SearchIndex:
    """The role's search index: from memory, else the disk cache, else built (SearchIndex.build).
    One build at a time per SAE; a second caller waits for it. Not cancellable: a half-built index would
    only be built again."""
    sae = session.saes[role]
    labels = session.labels[role]
    mem_key = (id(labels), explanations.digest() if explanations else None)
    with _guard:
        lock = _building.setdefault(id(sae), threading.Lock())
    with lock:
        found = _memory.setdefault(sae, {}).get(mem_key)
        if found is not None:
            return found
        path = cache_path(session, role, explanations) if use_disk else None
        if path is not None and path.is_file():
            try:
                index = SearchIndex.load(path, role)
            except (OSError, ValueError, KeyError):
                index = None  # a damaged cache file: built again below
            if index is not None and index.n_features == sae.cfg.d_sae:
                _memory[sae][mem_key] = index
                return index
        index = SearchIndex.build(session, role, explanations, progress)
        if path is not None:
            try:
                index.save(path)
            except OSError:
                pass  # a read-only cache: the index still works, it is built again next session
        _memory[sae][mem_key] = index
        return index
