"""Find's word rules: the words of a label, a snippet or a query.

Words are runs of letters and digits, lowercased, with a few English endings cut (cities -> city,
cooking -> cook, Japanese -> japan: core/lemma.py, the one stemmer for Find and the labels' lemmas);
a few common English words are left out.
"""

from __future__ import annotations

import re

from spectrascope.core.lemma import stem

STOPWORDS = frozenset("a an and are as at be by for from in is it of on or that the this to was with".split())
_WORD = re.compile(r"[^\W_]+")


def terms(text: str) -> list[tuple[str, str]]:
    """(stem, surface) of each word of `text`, stopwords left out."""
    return [(stem(w), w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def split_snippet(text: str) -> tuple[str, str]:
    """(the firing token inside [[...]], the rest of the snippet); the marker is the last "[[" before "]]"
    (the text may hold "[" itself), as FeatureLabel.marked_tokens reads it."""
    end = text.find("]]")
    start = text.rfind("[[", 0, end) if end >= 0 else -1
    if not 0 <= start < end:
        return "", text
    return text[start + 2 : end], text[:start] + " " + text[end + 2 :]


def query_words(query: str) -> list[str]:
    """The query's words (stopwords left out, each once)."""
    return list(dict.fromkeys(w for _, w in terms(query)))
