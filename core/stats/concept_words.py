"""Is the anchor the concept? Where it fires inside the concept prompts, from the contrast run's tokens.

A feature can separate the two sets without being about the concept: one that fires on prepositions
after a place name, or on full stops, ranks high when the neutral set has fewer place names or other
endings. So the tokens of the concept prompts get a kind, and the anchor's firing tokens are counted
by kind (no new forward: the contrast run keeps which features fire on every token).

Concept words are the tokens enriched in the concept set against the neutral one, by the log-odds
ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words", eq. 16-22):

    alpha_w = ALPHA0 * (y_c,w + y_n,w) / (n_c + n_n)        the prior: the pooled frequency
    delta_w = log((y_c,w + alpha_w) / (n_c + ALPHA0 - y_c,w - alpha_w))
            - log((y_n,w + alpha_w) / (n_n + ALPHA0 - y_n,w - alpha_w))
    z_w     = delta_w / sqrt(1 / (y_c,w + alpha_w) + 1 / (y_n,w + alpha_w))

y: a token's count in the concept / neutral prompts (BOS excluded), n: all tokens of a set. A token
with z >= Z_MIN that is not a function word, punctuation or a number is a concept word. The prior shrinks rare
tokens: on the France set " French" (62 vs 0) scores 5.6, " Eiffel" (4 vs 0) 1.4, " the" 1.3.

Kinds: concept word, function word (FUNCTION_WORDS: articles, pronouns, prepositions, conjunctions,
auxiliaries), punctuation (no letter or digit), other. The check:

    share_k     = the anchor's firing tokens in the concept prompts that are of kind k
    coverage    = the concept-word tokens on which the anchor fires
    flagged     = share_function + share_punctuation >= MOSTLY      ("fires mostly on function words")
    passed      = not flagged and (coverage >= MIN_COVERAGE or share_concept >= MIN_COVERAGE)
    failed      = flagged, or not passed while it fires: the verdict on it is withheld
    cannot tell = no token is enriched (sets too small, or a concept of grammar, not words: the
                  enriched tokens of past vs present tense are function words, which never count)

On the shipped sets the top anchors fire on 90-100% of the concept-word tokens (France #2997: 98%,
Japan #2243: 100%); code's #3329 (60% of its tokens "." "a" "the" "in") is flagged.

The decision counts firing tokens (activation > 0). Beside it, the same shares by activation mass:

    mass_k      = the anchor's summed activation on its firing tokens of kind k in the concept prompts,
                  over its summed activation on all of them

read off the activations the contrast run keeps with its token firing. A feature can fire on many
concept-word tokens weakly and on a few full stops strongly: then the count passes and the mass is mostly
on punctuation. The same rule applied to the mass shares gives `mass_status`; where it differs from the
count's status the check says so (`disagrees`), and the decision stays the count's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

ALPHA0 = 1000.0  # the prior's total count (Monroe et al. use a few hundred to a few thousand)
Z_MIN = 1.96  # enriched at the two-sided 5% level
MOSTLY = 0.5  # half or more of the anchor's tokens function words or punctuation: flagged
MIN_COVERAGE = 0.5  # it fires on half the concept-word tokens or more, or half its tokens are concept words
CONCEPT, FUNCTION, PUNCTUATION, OTHER = 0, 1, 2, 3
KINDS = ("concept word", "function word", "punctuation", "other")

# English function words (closed classes), lower case; a token matches when its stripped, lower-cased
# text is one of them. Contractions' pieces ("'s", "n't") are here too.
FUNCTION_WORDS = frozenset("""
a an the this that these those my your his her its our their some any no every each either neither all both
i me you he him she it we us they them myself yourself himself herself itself ourselves themselves who whom
whose which what of in on at by for with from to into onto upon about above below over under between among
through during before after since until till against within without along across around behind beyond near
off out up down toward towards via per than as like and or but nor so yet if because while although though
whereas unless whether when where why how then there here is am are was were be been being have has had having
do does did doing will would shall should can could may might must not n't yes also too very just only even
still already again ever never always often more most less least much many such own same other another one
ones 's 're 've 'd 'll 'm s t
""".split())


def token_kind(piece: str) -> int:
    """FUNCTION, PUNCTUATION or OTHER for one token's text (CONCEPT is decided by the counts)."""
    if not any(ch.isalnum() for ch in piece):
        return PUNCTUATION
    return FUNCTION if piece.strip().lower() in FUNCTION_WORDS else OTHER


def log_odds_z(count_c: np.ndarray, count_n: np.ndarray, alpha0: float = ALPHA0) -> np.ndarray:
    """z of the log-odds ratio with an informative Dirichlet prior (module doc) per vocabulary entry. # (V,)

    Entries seen in neither set get 0."""
    yc, yn = np.asarray(count_c, np.float64), np.asarray(count_n, np.float64)
    pool = yc + yn
    if pool.sum() == 0:
        return np.zeros_like(pool)
    alpha = alpha0 * pool / pool.sum()
    nc, nn = yc.sum(), yn.sum()
    seen = pool > 0
    z = np.zeros_like(pool)
    a, c, n = alpha[seen], yc[seen], yn[seen]
    delta = np.log((c + a) / (nc + alpha0 - c - a)) - np.log((n + a) / (nn + alpha0 - n - a))
    z[seen] = delta / np.sqrt(1 / (c + a) + 1 / (n + a))
    return z


@dataclass(frozen=True)
class ConceptWords:
    """The concept words of two sets and every token's kind."""

    kind: np.ndarray  # (T,) int8: the kind of each token of the contrast run (rows of its TokenFiring)
    in_concept: np.ndarray  # (T,) bool: the token is in a concept prompt
    words: tuple[tuple[str, int, int, float], ...]  # (text, count in concept, in neutral, z), best first

    @property
    def base(self) -> np.ndarray:
        """Each kind's share of the concept prompts' tokens: what an anchor firing anywhere would show. # (4,)"""
        k = self.kind[self.in_concept]
        return np.bincount(k, minlength=4) / max(1, k.size)

    def to_dict(self, limit: int = 20) -> dict[str, Any]:
        return {"definition": f"tokens enriched in the concept set: log-odds z >= {Z_MIN} (informative Dirichlet "
                              f"prior, alpha0 = {ALPHA0:g}), not function words or punctuation",
                "n": len(self.words), "base_shares": dict(zip(KINDS, np.round(self.base, 4).tolist())),
                "words": [{"token": t, "concept": c, "neutral": n, "z": round(z, 3)}
                          for t, c, n, z in self.words[:limit]]}


def concept_words(token_id: np.ndarray, in_concept: np.ndarray, piece: Callable[[int], str]) -> ConceptWords:
    """Kinds of the tokens (T,) of both sets, with `in_concept` (T,) and `piece(id)` -> the token's text."""
    token_id = np.asarray(token_id, np.int64)
    in_concept = np.asarray(in_concept, bool)
    ids, inverse = np.unique(token_id, return_inverse=True)
    yc = np.bincount(inverse[in_concept], minlength=ids.size)
    yn = np.bincount(inverse[~in_concept], minlength=ids.size)
    z = log_odds_z(yc, yn)
    texts = [piece(int(i)) for i in ids]
    kinds = np.asarray([token_kind(t) for t in texts], np.int8)
    digits = np.asarray([t.strip().isdigit() for t in texts], bool)  # years and counts are format, not concept
    concept = (z >= Z_MIN) & (kinds == OTHER) & ~digits
    kinds[concept] = CONCEPT
    order = np.flatnonzero(concept)[np.argsort(-z[concept], kind="stable")]
    words = tuple((texts[i], int(yc[i]), int(yn[i]), float(z[i])) for i in order)
    return ConceptWords(kinds[inverse], in_concept, words)


@dataclass(frozen=True)
class AnchorCheck:
    """Where one feature fires inside the concept prompts, by token kind."""

    role: str
    feature: int
    n_tokens: int  # its firing tokens in the concept prompts
    shares: tuple[float, ...]  # per kind (KINDS), of those tokens
    base: tuple[float, ...]  # per kind, of all the concept prompts' tokens
    coverage: float  # the concept-word tokens it fires on
    n_concept_words: int  # distinct concept words of the sets (0: the check cannot tell)
    top: tuple[tuple[str, int], ...] = field(default=())  # its most frequent firing tokens, with counts
    mass: tuple[float, ...] | None = None  # per kind, of its activation mass on those tokens (None: not kept)

    @property
    def function_share(self) -> float:
        return self.shares[FUNCTION] + self.shares[PUNCTUATION]

    @property
    def mass_function_share(self) -> float | None:
        return None if self.mass is None else self.mass[FUNCTION] + self.mass[PUNCTUATION]

    @property
    def mass_status(self) -> str | None:
        """`status`'s rule on the activation-mass shares (coverage is a count either way); None: no mass."""
        return None if self.mass is None else self._rule(self.mass)

    @property
    def disagrees(self) -> bool:
        """The count and the activation mass come to different answers (the decision keeps the count's)."""
        return self.mass_status is not None and self.mass_status != self.status

    @property
    def flagged(self) -> bool:
        """It fires mostly on function words and punctuation."""
        return self.n_tokens > 0 and self.function_share >= MOSTLY

    @property
    def status(self) -> str:
        """"concept", "function words" (flagged), "not concept words" (fails), or "cannot tell"."""
        return self._rule(self.shares)

    def _rule(self, shares: tuple[float, ...]) -> str:
        """The check's rule (module doc) on per-kind shares: of the firing tokens, or of the activation mass."""
        if self.n_concept_words == 0:
            return "cannot tell"
        if self.n_tokens > 0 and shares[FUNCTION] + shares[PUNCTUATION] >= MOSTLY:
            return "function words"
        if self.n_tokens == 0 or max(self.coverage, shares[CONCEPT]) < MIN_COVERAGE:
            return "not concept words"
        return "concept"

    @property
    def passed(self) -> bool:
        return self.status == "concept"

    @property
    def failed(self) -> bool:
        """It fails the check (the verdict on it is withheld); "cannot tell" is neither."""
        return self.status in ("function words", "not concept words")

    @property
    def reason(self) -> str:
        """Why it fails, in a few words (empty when it does not)."""
        head = f"{self.role} #{self.feature}"
        if self.status == "function words":
            return f"{head} fires mostly on function words and punctuation ({self.function_share:.0%} of its tokens)"
        if self.status == "not concept words":
            return (f"{head} is not on the concept words (fires on {self.coverage:.0%} of them; "
                    f"{self.shares[CONCEPT]:.0%} of its tokens are concept words)")
        return ""

    @property
    def short(self) -> str:
        """A table cell: concept-word share / function+punctuation share, and the status."""
        if self.status == "cannot tell":
            return "?"
        mark = {"concept": "✓", "function words": "⚠ fn", "not concept words": "⚠"}[self.status]
        return f"{self.coverage:.0%} {mark}" + (" ⚑" if self.disagrees else "")

    @property
    def text(self) -> str:
        head = f"{self.role} #{self.feature}"
        if self.n_concept_words == 0:
            return (f"{head}: no token is enriched in the concept set (too few prompts, or a concept that is not "
                    f"a matter of words), so whether it is the concept cannot be told from its tokens")
        if self.n_tokens == 0:
            return f"{head} never fires inside the concept prompts"
        shares = (f"{self.shares[CONCEPT]:.0%} of its {self.n_tokens} tokens in the concept prompts are concept "
                  f"words (base {self.base[CONCEPT]:.0%}), {self.function_share:.0%} function words or punctuation "
                  f"(base {self.base[FUNCTION] + self.base[PUNCTUATION]:.0%}); it fires on {self.coverage:.0%} of "
                  f"the concept-word tokens")
        verdict = {"concept": "is on the concept", "function words": "fires mostly on function words and "
                   "punctuation, not on the concept", "not concept words": "is not on the concept words"}
        return f"{head} {verdict[self.status]}: {shares}{self.mass_text}"

    @property
    def mass_text(self) -> str:
        """The activation-mass shares, and the flag when they disagree with the count ("" without mass)."""
        if self.mass is None or self.n_tokens == 0:
            return ""
        text = (f"; by activation mass {self.mass[CONCEPT]:.0%} on concept words, {self.mass_function_share:.0%} "
                f"on function words or punctuation")
        if self.disagrees:
            mass = {"concept": "on the concept", "function words": "mostly on function words and punctuation",
                    "not concept words": "not on the concept words"}[self.mass_status]
            text += f" ⚑ count and activation mass disagree: by mass it is {mass} (the decision uses the count)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "feature": self.feature, "n_tokens": self.n_tokens,
                "shares": dict(zip(KINDS, (round(s, 4) for s in self.shares))),
                "base_shares": dict(zip(KINDS, (round(s, 4) for s in self.base))),
                "concept_word_coverage": round(self.coverage, 4), "flagged": self.flagged, "status": self.status,
                "passed": self.passed,
                "mass_shares": dict(zip(KINDS, (round(s, 4) for s in self.mass))) if self.mass is not None else None,
                "mass_status": self.mass_status, "count_mass_disagree": self.disagrees,
                "top_tokens": [{"token": t, "n": n} for t, n in self.top], "text": self.text}


def anchor_check(words: ConceptWords, firing: Any, feature: int, role: str = "coarse",
                 token_id: np.ndarray | None = None, piece: Callable[[int], str] | None = None,
                 n_top: int = 6, values: Any = None) -> AnchorCheck:
    """The check of `feature`, a column of the run's (T, F) sparse firing matrix (`firing`); with
    `token_id` and `piece`, its most frequent firing tokens besides; with `values` (the same matrix's
    activations), its activation-mass shares."""
    col = firing[:, int(feature)]
    rows = np.asarray(col.nonzero()[0], np.int64)
    rows = rows[words.in_concept[rows]]
    kinds = words.kind[rows]
    shares = np.bincount(kinds, minlength=4) / max(1, rows.size)
    mass = None
    if values is not None:
        weight = np.asarray(values[rows, int(feature)].todense(), np.float64).ravel() if rows.size else np.zeros(0)
        total = float(weight.sum())
        mass = tuple(float(m) for m in (np.bincount(kinds, weights=weight, minlength=4) / total if total > 0
                                        else np.zeros(4)))
    is_word = words.in_concept & (words.kind == CONCEPT)
    coverage = float(np.isin(np.flatnonzero(is_word), rows).mean()) if is_word.any() else 0.0
    top: tuple[tuple[str, int], ...] = ()
    if token_id is not None and piece is not None and rows.size:
        ids, counts = np.unique(np.asarray(token_id)[rows], return_counts=True)
        order = np.lexsort((ids, -counts))[:n_top]
        top = tuple((piece(int(ids[i])), int(counts[i])) for i in order)
    return AnchorCheck(role, int(feature), int(rows.size), tuple(float(s) for s in shares),
                       tuple(float(b) for b in words.base), coverage, len(words.words), top, mass)
