"""Format confounds between a concept set and its neutral set, found from the text alone.

A feature can separate two prompt sets because of how they are written rather than what
they are about: one set ends in full stops and the other in open-ended "... is", one has
quotes or numbers, one is longer. Selectivity cannot tell these apart, so the Pairing report
lists every such difference next to the verdict, and flags top features whose label says
they fire on punctuation.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

SHARE_GAP = 0.10  # a share that differs by 10 points or more between the sets is flagged
LENGTH_EFFECT = 0.5  # a standardized mean difference (Cohen's d) of prompt length of 0.5 or more


@dataclass(frozen=True)
class FormatCheck:
    name: str
    concept: float
    neutral: float
    flagged: bool
    unit: str = "share"  # "share" of prompts, or "words" (mean length)

    @property
    def text(self) -> str:
        if self.unit == "words":
            return f"{self.name}: {self.concept:.1f} vs {self.neutral:.1f} words"
        return f"{self.name}: {self.concept:.0%} vs {self.neutral:.0%} of prompts"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


SHARES: dict[str, Callable[[str], bool]] = {
    "ends with . ! or ?": lambda p: p.rstrip()[-1:] in (".", "!", "?"),
    "ends with ?": lambda p: p.rstrip().endswith("?"),
    "ends open (a word, no punctuation)": lambda p: p.rstrip()[-1:].isalnum(),
    "contains quotes": lambda p: any(q in p for q in '"“”«»'),
    "contains digits": lambda p: bool(re.search(r"\d", p)),
    "contains brackets or = < >": lambda p: bool(re.search(r"[()\[\]{}=<>]", p)),
}


def format_checks(concept: Sequence[str], neutral: Sequence[str]) -> list[FormatCheck]:
    """Every format statistic of the two sets; `flagged` where they differ by enough to matter."""
    out = []
    for name, test in SHARES.items():
        c = float(np.mean([test(p) for p in concept])) if concept else 0.0
        n = float(np.mean([test(p) for p in neutral])) if neutral else 0.0
        out.append(FormatCheck(name, c, n, abs(c - n) >= SHARE_GAP))
    lc = np.array([len(p.split()) for p in concept], float)
    ln = np.array([len(p.split()) for p in neutral], float)
    if len(lc) > 1 and len(ln) > 1:
        pooled = np.sqrt(((len(lc) - 1) * lc.var(ddof=1) + (len(ln) - 1) * ln.var(ddof=1)) / (len(lc) + len(ln) - 2))
        d = abs(lc.mean() - ln.mean()) / pooled if pooled > 0 else 0.0
        out.append(FormatCheck("mean length", float(lc.mean()), float(ln.mean()), d >= LENGTH_EFFECT, "words"))
    return out


def is_punctuation(token: str) -> bool:
    """A token with no letter or digit in it (".", " ,", "?\n", quotes...)."""
    return not any(ch.isalnum() for ch in token)


def warnings(checks: Sequence[FormatCheck], punctuation_features: Sequence[tuple[str, int]] = ()) -> list[str]:
    """One line per flagged difference and per top feature that fires mostly on punctuation."""
    lines = [f"format differs: {c.text}" for c in checks if c.flagged]
    lines += [f"{role} #{f} fires mostly on punctuation: it may track how the prompts end, not the concept"
              for role, f in punctuation_features]
    return lines
