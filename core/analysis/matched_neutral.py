"""A neutral set built from the concept set itself: its concept words swapped for same-kind words.

A neutral set written separately differs from the concept set in more than the concept (shape, names,
register; see core/stats/confounds.py), and a selective feature may track any of those. Here every
concept prompt gets a twin in which only the concept's words change:

1. The concept set's enriched words: words (as written) more frequent in the concept set than in a
   background of general sentences (the shipped neutral sets), by the same log-odds z as the anchor
   check (core/stats/concept_words.py), z >= Z_MIN.
2. Rows of the shipped same-kind tables (assets/prompts/same_kind.tsv: countries with their adjective,
   capital and a city; topics with their practitioner, work, tool and venue) that hold an enriched word
   are the concept's rows.
3. In each prompt, every cell of a concept row is replaced by the same column of one other row, drawn
   per prompt (seeded) among the rows that are not the concept's and do not already occur in the prompt:
   "Paris is the capital of France." -> "Madrid is the capital of Spain."
4. A prompt with nothing to swap has no twin (a copy would be a concept prompt labelled neutral): it is
   left out of the neutral set and counted. Enriched words the tables do not hold (" Eiffel", " Louvre")
   stay, and are listed: the set is as matched as the tables allow, and says where it is not.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spectrascope.core.assets import PROMPTS_DIR, atomic_write
from spectrascope.core.stats.concept_words import FUNCTION_WORDS, Z_MIN, log_odds_z

SAME_KIND = PROMPTS_DIR / "same_kind.tsv"
_WORD = re.compile(r"[^\W\d_]\w*")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def load_tables(path: Path = SAME_KIND) -> list[Table]:
    """The [table]s of a same-kind file: a header line of column names, then tab-separated rows."""
    tables: list[Table] = []
    name, columns, rows = None, None, []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            if name is not None:
                tables.append(Table(name, columns or (), tuple(rows)))
            name, columns, rows = line[1:-1].strip(), None, []
        elif name is None:
            raise ValueError(f"{path}:{n}: a row before any [table] line")
        elif columns is None:
            columns = tuple(c.strip() for c in raw.split("\t"))
        else:
            cells = tuple(c.strip() for c in raw.split("\t"))
            if len(cells) != len(columns) or not all(cells):
                raise ValueError(f"{path}:{n}: {len(cells)} cells for {len(columns)} columns, or an empty one")
            rows.append(cells)
    if name is not None:
        tables.append(Table(name, columns or (), tuple(rows)))
    return tables


def background_prompts() -> list[str]:
    """General sentences to find the concept's words against: the shipped neutral sets."""
    from spectrascope.core.analysis.contrast import load_prompts

    return [p for f in sorted(PROMPTS_DIR.glob("*neutral*.txt")) for p in load_prompts(f)]


def enriched_words(concept: Sequence[str], background: Sequence[str]) -> list[tuple[str, int, int, float]]:
    """(word, count in concept, in background, z) for the words enriched in `concept`, best first;
    function words left out."""
    wc = Counter(w for p in concept for w in _WORD.findall(p))
    wb = Counter(w for p in background for w in _WORD.findall(p))
    vocab = sorted(set(wc) | set(wb))
    z = log_odds_z(np.array([wc[w] for w in vocab]), np.array([wb[w] for w in vocab]))
    out = [(w, wc[w], wb[w], float(s)) for w, s in zip(vocab, z)
           if s >= Z_MIN and wc[w] > 0 and w.lower() not in FUNCTION_WORDS]
    return sorted(out, key=lambda t: (-t[3], t[0]))


def _pattern(cell: str) -> re.Pattern:
    flags = 0 if cell[:1].isupper() else re.IGNORECASE
    return re.compile(rf"(?<![\w'’]){re.escape(cell)}(?!\w)", flags)  # "Paris-Orly", "France's": swapped


def _cased(new: str, old: str) -> str:
    """`new` with the capital of `old`'s first letter where `new` is lower case (a topic word at a start)."""
    return new[:1].upper() + new[1:] if old[:1].isupper() and new[:1].islower() else new


@dataclass
class MatchedNeutral:
    prompts: list[str]  # the neutral set: one twin per concept prompt that had something to swap
    source: list[int]  # the concept prompt each twin was made from
    rows: list[tuple[str, str]]  # (table, the concept row's first cell): the concept's rows
    swaps: Counter = field(default_factory=Counter)  # (old, new) -> how many times
    kept: list[tuple[str, int]] = field(default_factory=list)  # enriched words not swapped (no table holds them)
    dropped: int = 0  # concept prompts with nothing to swap: no twin

    @property
    def text(self) -> str:
        rows = ", ".join(r for _, r in self.rows) or "none"
        kept = ", ".join(w for w, _ in self.kept[:8])
        return (f"matched neutral set: {len(self.prompts)} twins of the concept prompts with the concept's rows "
                f"({rows}) swapped for other rows of their table; {self.dropped} prompt(s) had nothing to swap and "
                f"have no twin" + (f"; enriched words kept (not in the tables): {kept}" if kept else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"n": len(self.prompts), "rows": [list(r) for r in self.rows], "dropped": self.dropped,
                "swaps": [{"from": a, "to": b, "n": n} for (a, b), n in self.swaps.most_common(30)],
                "kept_enriched": [{"word": w, "n": n} for w, n in self.kept], "text": self.text}


def match_neutral(concept: Sequence[str], tables: Sequence[Table] | None = None,
                  background: Sequence[str] | None = None, seed: int = 0) -> MatchedNeutral:
    """The matched neutral set of `concept` (module doc); `background` defaults to the shipped neutral sets."""
    tables = load_tables() if tables is None else list(tables)
    background = background_prompts() if background is None else list(background)
    own = set(concept)
    enriched = enriched_words(concept, [p for p in background if p not in own])
    enriched_set = {w for w, *_ in enriched}
    concept_rows: dict[str, set[int]] = {}
    covered: set[str] = set()
    for t in tables:
        for r, row in enumerate(t.rows):
            hits = {w for w in enriched_set for cell in row if _pattern(cell).fullmatch(w)}
            if hits:
                concept_rows.setdefault(t.name, set()).add(r)
                covered |= hits
    rng = np.random.default_rng(seed)
    out = MatchedNeutral([], [], [(t.name, t.rows[r][0]) for t in tables for r in sorted(concept_rows.get(t.name, ()))])
    for i, prompt in enumerate(concept):
        text, changed = prompt, False
        for t in tables:
            ours = sorted(concept_rows.get(t.name, ()))
            present = [r for r, row in enumerate(t.rows) if any(_pattern(c).search(prompt) for c in row)]
            others = [r for r in range(len(t.rows)) if r not in concept_rows.get(t.name, ()) and r not in present]
            for r in ours:
                if not others or not any(_pattern(c).search(text) for c in t.rows[r]):
                    continue
                new = others.pop(int(rng.integers(len(others))))
                # Longest cells first, so "Mexico City" is swapped whole before "Mexico".
                for col in sorted(range(len(t.columns)), key=lambda c: -len(t.rows[r][c])):
                    old_cell, new_cell = t.rows[r][col], t.rows[new][col]

                    def swap(m: re.Match, new_cell: str = new_cell) -> str:
                        out.swaps[(m.group(), _cased(new_cell, m.group()))] += 1
                        return _cased(new_cell, m.group())

                    text, n = _pattern(old_cell).subn(swap, text)
                    changed |= n > 0
        if changed:
            out.prompts.append(text)
            out.source.append(i)
        else:
            out.dropped += 1
    counts = Counter(w for p in concept for w in _WORD.findall(p))
    out.kept = [(w, counts[w]) for w, *_ in enriched if w not in covered]
    return out


def matched_path(concept_path: str | Path) -> Path:
    """Where the matched neutral set of a concept file is written (the cache folder: it is derived data)."""
    from spectrascope.core.engine.embedded import cache_root

    return cache_root() / "matched" / f"{Path(concept_path).stem}-matched-neutral.txt"


def write_matched(concept_path: str | Path, seed: int = 0) -> tuple[Path, MatchedNeutral]:
    """Build the matched neutral set of the prompts in `concept_path` and write it (one prompt a line)."""
    from spectrascope.core.analysis.contrast import PromptSetError, load_prompts

    matched = match_neutral(load_prompts(concept_path), seed=seed)
    if not matched.prompts:
        raise PromptSetError(f"No word of {concept_path} is in the same-kind tables ({SAME_KIND.name}), so no "
                             f"neutral twin can be made: add its words to a table, or pass --neutral.")
    path = matched_path(concept_path)
    atomic_write(path, "\n".join(p.replace("\n", " ") for p in matched.prompts) + "\n")
    return path, matched
