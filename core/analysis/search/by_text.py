"""Find by text: every feature of each SAE scored against the query's words, the best of all SAEs kept,
each with its matches (field, query word, term, coverage): the "why" shown beside it.

Per query word and field the best-matching term of the word index (text_index.py) counts:

    score = sum over query words, sum over fields: weight(field) x match x coverage

The promotes field is also scored through the unembedding (promoter.py); per word and feature the larger
of the listed and the computed value is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from spectrascope.core.analysis.search.explanations import Explanations
from spectrascope.core.analysis.search.hits import Hit, Match
from spectrascope.core.analysis.search.index import SearchIndex
from spectrascope.core.analysis.search.index_cache import index_for
from spectrascope.core.analysis.search.promoter import query_tokens, z_match
from spectrascope.core.analysis.search.ranking import (
    make_hit,
    top_features,
    with_labels,
)
from spectrascope.core.analysis.search.text_index import FIELDS
from spectrascope.core.analysis.search.words import query_words
from spectrascope.core.engine.embedded import Progress, _quiet
from spectrascope.core.lemma import stem

# A written explanation says what the feature is; the firing token is what it detects; the promoted tokens
# are what it writes (related, noisier); snippet context may be unrelated to the feature (a hint only).
WEIGHTS = {"explanation": 3.0, "fires on": 2.0, "context": 0.5, "promotes": 1.0}


@dataclass
class WordMatch:
    """One query word against one SAE: per field the best match value of every feature (idf x match x
    coverage) and the matched rows, and the z of the word's tokens (None without an unembedding)."""

    word: str
    rows: np.ndarray  # matched term rows
    best: dict[str, np.ndarray]  # field -> (F,)
    sub: dict[str, Any]  # field -> csc (rows, F): what `best` is the column max of
    z: np.ndarray | None = None  # (F, len(ids))
    ids: tuple[int, ...] = ()


def text_scores(session: Any, index: SearchIndex, words: Sequence[str]) -> tuple[np.ndarray, list[WordMatch]]:
    """Every feature's score for `words`, and each word's matches (what "why" reads)."""
    text = index.text
    found = []
    for word in words:
        s = stem(word)
        pairs = text.matches(s)
        rows = np.array([r for r, _ in pairs], np.int64)
        factor = np.array([f for _, f in pairs], np.float32)
        best, sub = {}, {}
        for name in FIELDS:
            m = text.fields[name][rows].multiply(factor[:, None]).tocsc() if len(rows) else None
            best[name] = (np.asarray(m.max(axis=0).todense()).ravel() if m is not None and m.nnz
                          else np.zeros(text.n_features)).astype(np.float32)
            sub[name] = m
        found.append(WordMatch(word, rows, best, sub))
    if index.promoter is not None:
        _promoted_z(session, index, found)
    total = np.zeros(text.n_features, np.float32)
    for m in found:
        listed = m.best["promotes"]
        m.best["promotes"] = np.maximum(listed, m.best.get("promotes (z)", 0))
        m.best["promotes listed"] = listed
        total += sum(WEIGHTS[n] * m.best[n] for n in FIELDS)
    return total, found


def _promoted_z(session: Any, index: SearchIndex, found: list[WordMatch]) -> None:
    """Each word's promoted-token value through the unembedding: one pass over the decoder for every
    word's tokens together (the pass reads the whole decoder: its cost, bench/bench_search.py)."""
    ids = {m.word: query_tokens(session, m.word) for m in found}
    flat = [i for m in found for i in ids[m.word]]
    if not flat:
        return
    labels = session.labels[index.role]
    z = index.promoter.z(session.decoder_directions(index.role), session.unembedding(), flat, labels.final_norm_gain)
    max_idf = float(index.text.idf.max()) if len(index.text.idf) else 1.0
    start = 0
    for m in found:
        k = len(ids[m.word])
        if k == 0:
            continue
        m.z, m.ids, start = z[:, start : start + k], tuple(ids[m.word]), start + k
        exact = index.text.lookup(stem(m.word))
        idf = float(index.text.idf[exact]) if exact is not None else max_idf  # unseen word: as rare as any
        m.best["promotes (z)"] = z_match(m.z, index.promoter.z_top, idf)


def explain(session: Any, index: SearchIndex, feature: int, found: Sequence[WordMatch]) -> tuple[Match, ...]:
    """The matches behind one feature's score, strongest first."""
    out = []
    for m in found:
        by_z = m.z is not None and m.best["promotes (z)"][feature] > m.best["promotes listed"][feature]
        for name in FIELDS:
            if m.best[name][feature] <= 0 or m.sub[name] is None or (name == "promotes" and by_z):
                continue
            row = int(m.rows[int(m.sub[name][:, feature].toarray().ravel().argmax())])
            coverage = float(index.text.fields[name][row, feature])
            out.append(Match(name, m.word, str(index.text.vocab[row]), round(coverage, 4),
                             round(WEIGHTS[name] * float(m.best[name][feature]), 4)))
        if by_z:
            j = int(m.z[feature].argmax())
            out.append(Match("promotes (z)", m.word, session.piece(m.ids[j]), round(float(m.z[feature, j]), 3),
                             round(WEIGHTS["promotes"] * float(m.best["promotes (z)"][feature]), 4)))
    return tuple(sorted(out, key=lambda x: -x.score))


def find_text(session: Any, query: str, roles: Sequence[str], top: int = 20,
              explanations: Mapping[str, Explanations] | None = None, cancel: Any = None,
              progress: Progress = _quiet) -> list[Hit]:
    """The `top` features of `roles` whose labels, snippets and promoted tokens best match `query`."""
    from spectrascope.core.engine.values import Cancelled

    words = query_words(query)
    if not words:
        raise ValueError(f"Nothing to search for in {query!r}: type a word (common words like 'the' are skipped).")
    ranked: list[tuple[float, str, int, SearchIndex, list[WordMatch]]] = []
    for role in roles:
        index = index_for(session, role, (explanations or {}).get(role), progress)
        if cancel is not None and cancel.is_set():
            raise Cancelled
        scores, found = text_scores(session, index, words)
        ranked += [(float(scores[f]), role, int(f), index, found) for f in top_features(scores, top)]
    ranked.sort(key=lambda h: (-h[0], h[1], h[2]))
    return with_labels(session, [(make_hit(session, index, role, f, score, explain(session, index, f, found)), index)
                                 for score, role, f, index, found in ranked[:top]])
