"""What a search returns: the features found (Hit) and the reasons each was found (Match), as one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from spectrascope.core.records import Record


@dataclass(frozen=True)
class Match(Record):
    """One reason a feature matched: a query word in a field (or, by example, its activation there)."""

    field: str  # one of FIELDS, "promotes (z)" (through the unembedding) or "example"
    word: str  # the query word ("" by example)
    term: str  # what it matched: an index word, a token piece, the example's tokens
    value: float  # coverage (share of top snippets, 1 for a listed word), z, or the activation
    score: float  # what it added to the hit's score


@dataclass(frozen=True)
class Hit(Record):
    role: str
    feature: int
    score: float
    label: str = ""
    freq: float | None = None  # firing rate on the labelling text, where known
    max_act: float | None = None  # its maximum activation there, where known
    why: str = ""
    matches: tuple[Match, ...] = ()
    url: str | None = None


def why_text(matches: Sequence[Match]) -> str:
    """The matches as one line: `fires on "japan" 3/3 · promotes " Japan" z 7.9`."""
    parts = []
    for m in matches:
        if m.field == "example":
            parts.append(f"act {m.value:.3g} on {m.term} = {m.score:.2f}x its usual max")
        elif m.field == "promotes (z)":
            parts.append(f"promotes {m.term!r} z {m.value:.1f}")
        elif m.field in ("fires on", "context"):
            parts.append(f"{m.field} \"{m.term}\" {m.value:.0%}")
        else:
            parts.append(f"{m.field} \"{m.term}\"")
    return " · ".join(parts)
