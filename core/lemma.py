"""Words counted as one: lowercased, a few English inflections cut (Find's query words, labels' lemmas).

Not a full stemmer: enough for plurals, -ing/-ed and nationalities (cities -> city, cooking -> cook,
Japanese -> japan, boxes -> box); Find's prefix matching does the rest.
"""

from __future__ import annotations


def stem(word: str) -> str:
    """A few English endings cut, enough for plurals, -ing/-ed and nationalities: cities -> city,
    cooking -> cook, Japanese -> japan, boxes -> box. Not a full stemmer: prefix matching does the rest."""
    w = word.lower()
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith("ese") and len(w) >= 7:
        return w[:-3]
    for end in ("ing", "ed"):
        if w.endswith(end) and len(w) - len(end) >= 3:
            w = w[: -len(end)]
            return w[:-1] if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz" else w  # running -> run
    if w.endswith(("sses", "xes", "ches", "shes")):
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w
