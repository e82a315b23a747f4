"""One SAE's search index: its word index, its labels' usual activation, its promoted-token standardiser
and its written explanations; built from the session's labels and weights, saved to and read from one
.npz file (index_cache.py keeps it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from spectrascope.core.analysis.search.explanations import Explanations
from spectrascope.core.analysis.search.promoter import Promoter
from spectrascope.core.analysis.search.text_index import FIELDS, TextIndex
from spectrascope.core.engine.embedded import Progress, _quiet


@dataclass
class SearchIndex:
    role: str
    text: TextIndex
    max_act: np.ndarray  # (F,) float32, NaN where the labels do not say
    freq: np.ndarray  # (F,) float32, NaN where the labels do not say
    promoter: Promoter | None
    explanations: Mapping[int, str] = field(default_factory=dict)
    calibration: tuple[np.ndarray, np.ndarray] | None = None  # (max, freq) on CALIBRATION_TEXT, when needed

    @property
    def n_features(self) -> int:
        return self.text.n_features

    @classmethod
    def build(cls, session: Any, role: str, explanations: Explanations | None = None,
              progress: Progress = _quiet) -> SearchIndex:
        """The role's index, built from its labels and weights (seconds for 32K features; see
        bench/bench_search.py for 262K)."""
        labels = session.labels[role]
        n = int(session.saes[role].cfg.d_sae)
        progress(f"indexing the {role} SAE's labels ({n:,} features)", None)
        text = TextIndex.build(labels.shipped, explanations.descriptions if explanations else {}, n)
        promoter = None
        try:
            unembed = session.unembedding()
        except (AttributeError, NotImplementedError):
            unembed = None
        if unembed is not None:
            progress(f"standardising the {role} SAE's promoted-token score", 0.0)
            promoter = Promoter.build(session.decoder_directions(role), unembed, labels.final_norm_gain,
                                      lambda text, frac: progress(f"{role}: {text}", frac))
        return cls(role, text, *label_stats(labels.shipped, n), promoter,
                   dict(explanations.descriptions) if explanations else {})

    def save(self, path: Path) -> None:
        import io

        from spectrascope.core.assets import atomic_write

        arrays = {"vocab": self.text.vocab, "idf": self.text.idf,
                  "max_act": self.max_act, "freq": self.freq,
                  "explained": np.array(sorted(self.explanations), np.int64),
                  "explanation_text": np.array([self.explanations[k] for k in sorted(self.explanations)], dtype=str)}
        for i, name in enumerate(FIELDS):
            m = self.text.fields[name]
            arrays |= {f"f{i}_data": m.data, f"f{i}_indices": m.indices, f"f{i}_indptr": m.indptr}
        if self.promoter is not None:
            arrays |= {"mean_u": self.promoter.mean_u, "std": self.promoter.std,
                       "z_top": np.array(self.promoter.z_top)}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, role: str) -> SearchIndex:
        import scipy.sparse as sp

        with np.load(path, allow_pickle=False) as z:
            shape = (len(z["vocab"]), len(z["max_act"]))
            mats = {name: sp.csr_matrix((z[f"f{i}_data"], z[f"f{i}_indices"], z[f"f{i}_indptr"]), shape=shape)
                    for i, name in enumerate(FIELDS)}
            promoter = Promoter(z["mean_u"], z["std"], float(z["z_top"])) if "std" in z else None
            return cls(role, TextIndex(z["vocab"], mats, z["idf"]), z["max_act"], z["freq"], promoter,
                       dict(zip(z["explained"].tolist(), z["explanation_text"].tolist())))


def label_stats(latents: Mapping[int, Mapping], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(max_act, freq) per feature from shipped labels; NaN where a feature has none."""
    max_act, freq = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
    for f, lat in latents.items():
        if 0 <= f < n:
            max_act[f] = np.nan if lat.get("max_act") is None else lat["max_act"]
            freq[f] = np.nan if lat.get("freq") is None else lat["freq"]
    return max_act, freq
