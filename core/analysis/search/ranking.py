"""From scores to hits: each SAE's top features, a Hit with its usual activation and why, and the labels
of the hits that make the final list (both searches merge their SAEs' hits by score, then label them)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from spectrascope.core.analysis.search.hits import Hit, Match, why_text
from spectrascope.core.analysis.search.index import SearchIndex


def top_features(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, largest first (ties: lower index first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]


def make_hit(session: Any, index: SearchIndex, role: str, feature: int, score: float, matches: tuple[Match, ...],
             basis: str = "labels") -> Hit:
    """The hit, unlabelled (`with_labels` labels the final list), with the feature's usual activation and
    firing rate, and why it matched (and, when not from the labels, where its usual max is from)."""
    max_act, freq = float(index.max_act[feature]), float(index.freq[feature])
    why = why_text(matches) + ("" if basis == "labels" else f" (max from the {basis})")
    return Hit(role, feature, round(score, 4), "", None if math.isnan(freq) else freq,
               None if math.isnan(max_act) else max_act, why, matches, session.labels[role].url(feature))


def with_labels(session: Any, hits: Sequence[tuple[Hit, SearchIndex]]) -> list[Hit]:
    """The hits with their labels: the explanation where there is one, else the label's one-liner
    (promoted tokens computed now, one batch per SAE, where none were shipped)."""
    from dataclasses import replace

    wanted: dict[str, list[int]] = {}
    for h, _ in hits:
        wanted.setdefault(h.role, []).append(h.feature)
    labels = {role: session.labels[role].compute(features) for role, features in wanted.items()}
    return [replace(h, label=index.explanations.get(h.feature) or labels[h.role][h.feature].short())
            for h, index in hits]
