"""The shipped concept prompt sets: each concept, its format-matched neutral set, and the words
that name it (to check whether a feature's label names the concept).

France is the demo set; the other four were written independently of the SAEs' training
(no concept was oversampled) to test whether the embedded SAEs find concepts in general.
Each neutral set mirrors its concept set line by line in length and ending (punctuation,
open-ended "is" prompts, quotes), so a feature that tracks format cannot separate them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from spectrascope.core.assets import PROMPTS_DIR


@dataclass(frozen=True)
class ConceptSet:
    name: str
    concept: Path
    neutral: Path
    words: tuple[str, ...]  # lower-case words; "cook*" also matches any word that starts with "cook"

    def names_concept(self, tokens: Iterable[str]) -> bool:
        """Whether any of a label's tokens (e.g. its max-activating tokens) is one of the concept's words."""
        return any(_matches(t.strip().lower(), w) for t in tokens for w in self.words)


def _matches(token: str, word: str) -> bool:
    return token.startswith(word[:-1]) if word.endswith("*") else token == word


def _set(name: str, words: str, neutral: str | None = None) -> ConceptSet:
    return ConceptSet(name, PROMPTS_DIR / f"{name}.txt", PROMPTS_DIR / (neutral or f"{name}-neutral.txt"),
                      tuple(words.split()))


CONCEPT_SETS: dict[str, ConceptSet] = {s.name: s for s in (
    _set("france", "france french paris", neutral="neutral.txt"),
    _set("code", "code coding python* def return function* variable* compil* program* loop* int import "
                 "class javascript sql select array* string* debug* git api print() for while"),
    # "food" and "eat*" were added after the first run of the retrained SAEs, whose best cooking
    # feature fires on " eat" and " food" (selectivity 0.97); the list fixed before it missed them.
    _set("cooking", "cook* bake* baking recipe* oven* flour sauce* boil* fry fried fries roast* simmer* "
                    "dough butter chop* kitchen* stir* grill* whisk* food foods eat eating eaten"),
    _set("music", "music* song* piano* guitar* violin* band bands orchestra* symphon* melod* chord* "
                  "concert* sing singer* singing rhythm* jazz compos* album* drum*"),
    _set("japan", "japan* tokyo kyoto osaka sushi samurai* shinto kimono*"),
)}
