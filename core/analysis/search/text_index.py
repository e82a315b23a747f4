"""The word index of one SAE's labels: which words cover which features, field by field.

Four fields of every feature's label (core/engine/labels.py), each a sparse (terms x features) matrix of
how much of the field the term covers:

    explanation  a written explanation (a Neuronpedia export, explanations.py)       1 if the word is in it
    fires on     the firing token of each top snippet (the text inside [[...]])      share of the top snippets
    context      the rest of each top snippet                                        share of the top snippets
    promotes     the shipped promoted tokens                                         1 if one of them is the word

(only the top snippets: adding the labels' random and lower-activation firings was tried and halved the
"fires on" share of clear features such as the Japan ones while promoted-token noise stayed).

Terms are the words' stems (words.py). A query word matches a term exactly or by prefix either way
("japan" -> "japanese", "italy" -> "ital(ian)"), weighted

    match = idf(word) exactly; 0.5 x min(idf(term), idf(word)) by prefix

with idf = ln((N + 1) / (df + 1)) + 1 over the N labelled features (a word every feature has counts
little; a rare prefix match such as "cookieparser" for "cook" counts no more than half of "cook").
by_text.py turns the matches into a score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from spectrascope.core.analysis.search.words import split_snippet, terms

FIELDS = ("explanation", "fires on", "context", "promotes")
PREFIX_MATCH = 0.5  # a prefix match counts half an exact one
PREFIX_MIN = 4  # prefix matching only for words (and terms) of at least this many letters


@dataclass
class TextIndex:
    """Sorted terms (stems), one sparse (terms x features) coverage matrix per field, idf per term."""

    vocab: np.ndarray  # (T,) str: the terms (stems, what "why" shows), sorted
    fields: dict[str, Any]  # field -> scipy.sparse.csr_matrix (T, F) float32
    idf: np.ndarray  # (T,) float32

    @classmethod
    def build(cls, latents: Mapping[int, Mapping], explanations: Mapping[int, str], n_features: int) -> TextIndex:
        import scipy.sparse as sp

        ids: dict[str, int] = {}
        coo: dict[str, tuple[list[int], list[int], list[float]]] = {f: ([], [], []) for f in FIELDS}

        def add(name: str, feature: int, covered: Mapping[str, float]) -> None:
            rows, cols, vals = coo[name]
            rows.extend(covered), cols.extend([feature] * len(covered)), vals.extend(covered.values())

        def term_ids(text: str) -> set[int]:
            out = set()
            for s, _ in terms(text):
                out.add(ids.setdefault(s, len(ids)))
            return out

        for feature, lat in latents.items():
            snippets = [str(s["text"]) for s in lat.get("snippets", ())]
            fires, context = Counter(), Counter()
            for text in snippets:
                marked, rest = split_snippet(text)
                hit = term_ids(marked)
                fires.update(hit)
                context.update(term_ids(rest) - hit)
            if snippets:
                add("fires on", feature, {t: c / len(snippets) for t, c in fires.items()})
                add("context", feature, {t: c / len(snippets) for t, c in context.items()})
            add("promotes", feature, dict.fromkeys(set().union(*map(term_ids, lat.get("promoted", ()))), 1.0))
        for feature, text in explanations.items():
            if 0 <= feature < n_features:
                add("explanation", feature, dict.fromkeys(term_ids(text), 1.0))
        # Terms sorted, so a prefix is one searchsorted range.
        order = np.argsort(np.array(list(ids), dtype=str), kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        shape = (len(order), n_features)
        mats = {f: sp.csr_matrix((np.asarray(v, np.float32), (rank[np.asarray(r, np.int64)], np.asarray(c, np.int64))),
                                 shape=shape) for f, (r, c, v) in coo.items()}
        present = sum((m != 0).astype(np.float32) for m in mats.values())
        df = np.asarray((present > 0).sum(axis=1)).ravel()
        docs = int((np.asarray(present.sum(axis=0)).ravel() > 0).sum())
        idf = (np.log((docs + 1) / (df + 1)) + 1).astype(np.float32)
        return cls(np.array(list(ids), dtype=str)[order], mats, idf)

    @property
    def n_features(self) -> int:
        return self.fields[FIELDS[0]].shape[1]

    def lookup(self, term: str) -> int | None:
        i = int(np.searchsorted(self.vocab, term))
        return i if i < len(self.vocab) and self.vocab[i] == term else None

    def matches(self, word_stem: str, limit: int = 256) -> list[tuple[int, float]]:
        """(term row, weight) for a query stem: its idf for an exact match; for a prefix match either way,
        PREFIX_MATCH x the smaller of the term's idf and the word's own (a rare junk term such as
        "cookieparser" must not outweigh "cook" itself)."""
        exact = self.lookup(word_stem)
        out: dict[int, float] = {}
        if len(word_stem) >= PREFIX_MIN:  # longer terms starting with the word: japan -> japanese
            lo = int(np.searchsorted(self.vocab, word_stem, "left"))
            hi = int(np.searchsorted(self.vocab, word_stem + "\U0010ffff", "left"))
            rows = list(range(lo, min(hi, lo + limit)))
            for cut in (1, 2):  # terms the word starts with, at most two letters shorter: italy -> ital
                if len(word_stem) - cut >= PREFIX_MIN and (row := self.lookup(word_stem[:-cut])) is not None:
                    rows.append(row)
            cap = self.idf[exact] if exact is not None else np.inf
            out.update({r: PREFIX_MATCH * float(min(self.idf[r], cap)) for r in rows})
        if exact is not None:
            out[exact] = float(self.idf[exact])
        return list(out.items())
