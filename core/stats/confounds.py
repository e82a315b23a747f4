"""Format confounds between a concept set and its neutral set, found from the text alone.

A feature can separate two prompt sets because of how they are written rather than what
they are about: one set ends in full stops and the other in open-ended "... is", one has
quotes or numbers, one is longer, one is full of names, one is everyday talk. Selectivity
cannot tell these apart, so the Pairing report lists every such difference next to the
verdict, with each set's numbers, and flags top features whose label says they fire on
punctuation. Besides, the two sets may be the same prompts (identical or near-identical), or too
few to decide anything: then the verdict is withheld (`SetReport.withheld`).

Checks and when each is flagged:

    ends with . ! or ?, ends with ?, ends open, quotes, digits, brackets   shares of prompts, 10 points apart
    final token        the class of each prompt's last character (. ? ! other punctuation, word, digit):
                       total variation distance between the sets' distributions >= 10 points
    mean length        words; Cohen's d >= 0.5
    capitalised words  share of a prompt's words, not sentence-initial, that start upper case (names, places:
                       a proxy for proper nouns); Cohen's d >= 0.8, a large effect, since a country or
                       language concept is capitalised itself (code vs its matched set: d = 0.51)
    vocabulary overlap the share of each set's words (lower case) that occur in the other set; < 0.45 for
                       either (the shipped matched sets: 0.53-0.68; Japan vs everyday sentences: 0.37)
    function words     register: the counts of PROFILE_WORDS (63 common English function words: pronouns,
    (register)         auxiliaries, articles, prepositions, conjunctions) and of all other words, concept vs
                       neutral, a 2 x 64 table; chi-square on it, its p by REGISTER_PERMUTATIONS shuffles of
                       the prompts between the sets (words of one prompt are not independent, so the
                       asymptotic p is too small), the effect by Cramer's V with Bergsma's (2013) small-sample
                       bias correction. Flagged when p < REGISTER_ALPHA and V >= REGISTER_EFFECT (0.2): the
                       matched sets (shipped and own) have V <= 0.08, Wikipedia vs Austen 0.35, Factbook
                       fragments vs State of the Union 0.44. Each set's numbers: its function-word share of
                       all words and the rates of the words that differ most (largest chi-square terms).
    same prompts       the share of concept prompts found in the neutral set after lower-casing and dropping
                       punctuation and extra spaces: all of them = identical, >= half = near-identical
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

SHARE_GAP = 0.10  # a share that differs by 10 points or more between the sets is flagged
LENGTH_EFFECT = 0.5  # a standardized mean difference (Cohen's d) of prompt length of 0.5 or more
CAPITALS_EFFECT = 0.8  # Cohen's d of the capitalised-word rate (see the module doc)
VOCAB_MIN = 0.45  # either set with fewer of its words found in the other: flagged
NEAR_IDENTICAL = 0.5  # half the concept prompts or more are in the neutral set too
MIN_PER_SET = 30  # fewer prompts in either set: statistics with intervals, no verdict
REGISTER_EFFECT = 0.2  # bias-corrected Cramer's V, function-word table (matched sets <= 0.08, confounded >= 0.35)
REGISTER_ALPHA = 0.05  # and the permutation p below this
REGISTER_PERMUTATIONS = 999  # shuffles of the prompts between the sets (seeded: the same sets give the same p)
REGISTER_SHOWN = 4  # the words that differ most, shown with each set's rate
PROFILE_WORDS = tuple("""
i me my you your he him his she her it its we us our they them their
was were is are be been had have has would could should will shall may might must do did
the a an this that these those of in to for with on at by from as into and but or not so if which who
""".split())

_WORD = re.compile(r"[^\W\d_][\w'’-]*")


@dataclass(frozen=True)
class FormatCheck:
    name: str
    concept: Any  # float, or for unit "classes" a {class: share} dict
    neutral: Any
    flagged: bool
    unit: str = "share"  # "share" of prompts, "words" (mean length), "per word" (a rate), "overlap", "classes"
    effect: float | None = None  # Cohen's d or total variation distance, where the flag is read off one

    def cells(self) -> tuple[str, str]:
        """Each set's number as text (concept, neutral)."""
        def one(v: Any) -> str:
            if self.unit == "words":
                return f"{v:.1f} words"
            if self.unit == "classes":
                return ", ".join(f"{k} {x:.0%}" for k, x in sorted(v.items(), key=lambda kv: -kv[1]) if x > 0)
            if self.unit == "profile":  # rates per word of text, in the check's order (both sets alike)
                return ", ".join(f"{k} {x:.1%}" for k, x in v.items()) + " of words"
            return f"{v:.0%}" + {"share": " of prompts", "per word": " of words", "overlap": " of its words"}[self.unit]
        return one(self.concept), one(self.neutral)

    @property
    def text(self) -> str:
        c, n = self.cells()
        if self.unit == "overlap":
            return (f"{self.name}: {self.concept:.0%} of the concept set's words occur in the neutral set, "
                    f"{self.neutral:.0%} the other way")
        if self.unit in ("words", "share"):  # the historical forms: "x: 12.0 vs 8.0 words", "x: 75% vs 0% of prompts"
            unit = " words" if self.unit == "words" else " of prompts"
            return f"{self.name}: {c.removesuffix(unit)} vs {n}"
        if self.unit == "per word":
            return f"{self.name}: {c.removesuffix(' of words')} vs {n} (d = {self.effect:.2f})"
        if self.unit == "profile":
            p = getattr(self, "p_value", None)
            return (f"{self.name}: {c.removesuffix(' of words')} vs {n} (Cramér's V = {self.effect:.2f}"
                    + (f", permutation p = {p:.3f})" if p is not None else ")"))
        return f"{self.name}: {c} vs {n}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class ProfileCheck(FormatCheck):
    """The function-word (register) check: a FormatCheck with its permutation p and how it was computed."""

    p_value: float | None = None
    method: str = ""


SHARES: dict[str, Callable[[str], bool]] = {
    "ends with . ! or ?": lambda p: p.rstrip()[-1:] in (".", "!", "?"),
    "ends with ?": lambda p: p.rstrip().endswith("?"),
    "ends open (a word, no punctuation)": lambda p: p.rstrip()[-1:].isalnum(),
    "contains quotes": lambda p: any(q in p for q in '"“”«»'),
    "contains digits": lambda p: bool(re.search(r"\d", p)),
    "contains brackets or = < >": lambda p: bool(re.search(r"[()\[\]{}=<>]", p)),
}
FINAL_CLASSES = (".", "?", "!", "other punctuation", "word", "digit")


def final_class(prompt: str) -> str:
    """The class of a prompt's last character: sentence shape (FINAL_CLASSES)."""
    last = prompt.rstrip()[-1:]
    if last in (".", "?", "!"):
        return last
    return "digit" if last.isdigit() else "word" if last.isalpha() else "other punctuation"


def capitalised_rate(prompt: str) -> float:
    """The share of the prompt's words, sentence-initial ones left out, that start with a capital."""
    flags, initial = [], True
    for m in re.finditer(r"[^\W\d_][\w'’-]*|[.!?:]", prompt):
        if m.group() in ".!?:":
            initial = True
            continue
        if not initial:
            flags.append(m.group()[0].isupper())
        initial = False
    return float(np.mean(flags)) if flags else 0.0


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """|mean(a) - mean(b)| / pooled standard deviation (0 when both are constant or too short)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return 0.0
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float(abs(a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


def words(prompts: Sequence[str]) -> list[str]:
    return [w.lower() for p in prompts for w in _WORD.findall(p)]


def vocabulary_overlap(concept: Sequence[str], neutral: Sequence[str]) -> tuple[float, float]:
    """(share of the concept set's words found in the neutral set's vocabulary, and the other way)."""
    wc, wn = words(concept), words(neutral)
    vc, vn = set(wc), set(wn)
    return (float(np.mean([w in vn for w in wc])) if wc else 0.0, float(np.mean([w in vc for w in wn])) if wn else 0.0)


def profile_counts(prompts: Sequence[str]) -> np.ndarray:
    """Each prompt's counts of PROFILE_WORDS, then of all its other words (lower case). # (P, K + 1)"""
    index = {w: i for i, w in enumerate(PROFILE_WORDS)}
    out = np.zeros((len(prompts), len(PROFILE_WORDS) + 1))
    for row, prompt in enumerate(prompts):
        for w in _WORD.findall(prompt):
            out[row, index.get(w.lower(), len(PROFILE_WORDS))] += 1
    return out


def chi_square_terms(concept: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Each column's part of Pearson's chi-square of 2 x K tables, rows `concept` and `neutral` (..., K);
    a column empty in both rows adds 0. # (..., K)"""
    total = concept + neutral
    n = total.sum(-1, keepdims=True)
    out = 0.0
    for row in (concept, neutral):
        expected = row.sum(-1, keepdims=True) * total / n
        out = out + (row - expected) ** 2 / np.where(expected > 0, expected, 1)
    return np.asarray(out)


def chi_square(concept: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of 2 x K tables (`chi_square_terms` summed). # (...)"""
    return chi_square_terms(concept, neutral).sum(-1)


def cramers_v_corrected(chi2: float, n: float, k: int, r: int = 2) -> float:
    """Cramer's V of an r x k table of n counts with Bergsma's (2013) bias correction (0: no effect)."""
    if n <= 1 or k < 2:
        return 0.0
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    kc, rc = k - (k - 1) ** 2 / (n - 1), r - (r - 1) ** 2 / (n - 1)
    denom = min(kc - 1, rc - 1)
    return float(np.sqrt(phi2 / denom)) if denom > 0 else 0.0


def register_check(concept: Sequence[str], neutral: Sequence[str],
                   permutations: int = REGISTER_PERMUTATIONS, seed: int = 0) -> ProfileCheck | None:
    """The function-word profile of the two sets compared (module doc); None when either has no word."""
    mc, mn = profile_counts(concept), profile_counts(neutral)
    yc, yn = mc.sum(0), mn.sum(0)
    if yc.sum() == 0 or yn.sum() == 0:
        return None
    seen = (yc + yn) > 0
    chi2 = float(chi_square(yc[seen], yn[seen]))
    both = np.vstack([mc, mn])[:, seen]
    labels = np.r_[np.ones(len(concept)), np.zeros(len(neutral))]
    shuffled = np.random.default_rng(seed).permuted(np.tile(labels, (permutations, 1)), axis=1)
    pc = shuffled @ both  # (permutations, K): the concept row of each shuffle
    null = chi_square(pc, both.sum(0) - pc)
    p = float((1 + np.sum(null >= chi2 - 1e-9)) / (1 + permutations))
    v = cramers_v_corrected(chi2, float(yc.sum() + yn.sum()), int(seen.sum()))
    terms = chi_square_terms(yc, yn)  # the words that differ most: the table's largest terms (function words only)
    order = [int(i) for i in np.argsort(-np.round(terms[:-1], 9), kind="stable")[:REGISTER_SHOWN] if terms[i] > 0]

    def profile(y: np.ndarray) -> dict[str, float]:
        rates = y / y.sum()
        return {"function words": float(1 - rates[-1]),
                **{("I" if PROFILE_WORDS[i] == "i" else PROFILE_WORDS[i]): float(rates[i]) for i in order}}

    method = (f"chi-square on the 2 x {int(seen.sum())} table of the counts of {len(PROFILE_WORDS)} function words "
              f"and of all other words; p by {permutations} shuffles of the prompts between the sets (seeded); "
              f"effect: Cramér's V, bias-corrected (Bergsma 2013); flagged when p < {REGISTER_ALPHA} and "
              f"V >= {REGISTER_EFFECT}")
    return ProfileCheck("function words (register)", profile(yc), profile(yn),
                        p < REGISTER_ALPHA and v >= REGISTER_EFFECT, "profile", round(v, 4), round(p, 4), method)


def format_checks(concept: Sequence[str], neutral: Sequence[str]) -> list[FormatCheck]:
    """Every format statistic of the two sets; `flagged` where they differ by enough to matter."""
    out = []
    for name, test in SHARES.items():
        c = float(np.mean([test(p) for p in concept])) if concept else 0.0
        n = float(np.mean([test(p) for p in neutral])) if neutral else 0.0
        out.append(FormatCheck(name, c, n, abs(c - n) >= SHARE_GAP))
    if concept and neutral:
        fc, fn = Counter(map(final_class, concept)), Counter(map(final_class, neutral))
        dc = {k: fc[k] / len(concept) for k in FINAL_CLASSES}
        dn = {k: fn[k] / len(neutral) for k in FINAL_CLASSES}
        tv = 0.5 * sum(abs(dc[k] - dn[k]) for k in FINAL_CLASSES)
        out.append(FormatCheck("final token", dc, dn, tv >= SHARE_GAP, "classes", round(tv, 4)))
    lc = np.array([len(p.split()) for p in concept], float)
    ln = np.array([len(p.split()) for p in neutral], float)
    if len(lc) > 1 and len(ln) > 1:
        d = cohens_d(lc, ln)
        out.append(FormatCheck("mean length", float(lc.mean()), float(ln.mean()), d >= LENGTH_EFFECT, "words",
                               round(d, 4)))
    rc, rn = [capitalised_rate(p) for p in concept], [capitalised_rate(p) for p in neutral]
    if len(rc) > 1 and len(rn) > 1:
        d = cohens_d(rc, rn)
        out.append(FormatCheck("capitalised words (names)", float(np.mean(rc)), float(np.mean(rn)),
                               d >= CAPITALS_EFFECT, "per word", round(d, 4)))
    if concept and neutral:
        oc, on = vocabulary_overlap(concept, neutral)
        out.append(FormatCheck("vocabulary overlap", oc, on, min(oc, on) < VOCAB_MIN, "overlap"))
    register = register_check(concept, neutral) if concept and neutral else None
    if register is not None:
        out.append(register)
    return out


def normalised(prompt: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: the form two prompts are compared in."""
    return " ".join(re.sub(r"[^\w\s]", " ", prompt.lower()).split())


@dataclass(frozen=True)
class Sameness:
    shared: float  # the share of concept prompts also in the neutral set (normalised)
    identical: bool  # the two sets hold the same prompts

    @property
    def near_identical(self) -> bool:
        return not self.identical and self.shared >= NEAR_IDENTICAL

    @property
    def text(self) -> str:
        if self.identical:
            return "the concept and neutral sets are identical (the same prompts): nothing can separate them"
        if self.near_identical:
            return (f"the sets are near-identical: {self.shared:.0%} of the concept prompts are in the neutral set "
                    f"too (case, punctuation and spacing ignored)")
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {"shared": round(self.shared, 4), "identical": self.identical, "near_identical": self.near_identical}


def sameness(concept: Sequence[str], neutral: Sequence[str]) -> Sameness:
    c, n = [normalised(p) for p in concept], {normalised(p) for p in neutral}
    shared = float(np.mean([p in n for p in c])) if c else 0.0
    return Sameness(shared, bool(c) and set(c) == n)


@dataclass(frozen=True)
class SetReport:
    """Everything the text of the two sets says about the verdict: format checks, sameness, sizes."""

    checks: tuple[FormatCheck, ...]
    same: Sameness
    n_concept: int
    n_neutral: int

    @property
    def too_small(self) -> bool:
        return min(self.n_concept, self.n_neutral) < MIN_PER_SET

    @property
    def withheld(self) -> list[str]:
        """Why no verdict can be given on these sets (empty: one can)."""
        out = []
        if self.too_small:
            out.append(f"{self.n_concept} concept / {self.n_neutral} neutral prompts, {MIN_PER_SET} per set needed")
        if self.same.identical:
            out.append("the two sets are the same prompts")
        elif self.same.near_identical:
            out.append(f"the sets are near-identical ({self.same.shared:.0%} of the concept prompts are in both)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"checks": [c.to_dict() for c in self.checks], "same_prompts": self.same.to_dict(),
                "n_concept": self.n_concept, "n_neutral": self.n_neutral, "min_per_set": MIN_PER_SET,
                "too_small": self.too_small}


def set_report(concept: Sequence[str], neutral: Sequence[str]) -> SetReport:
    return SetReport(tuple(format_checks(concept, neutral)), sameness(concept, neutral), len(concept), len(neutral))


def is_punctuation(token: str) -> bool:
    """A token with no letter or digit in it (".", " ,", "?\n", quotes...)."""
    return not any(ch.isalnum() for ch in token)


def warnings(checks: Sequence[FormatCheck], punctuation_features: Sequence[tuple[str, int]] = ()) -> list[str]:
    """One line per flagged difference and per top feature that fires mostly on punctuation."""
    lines = [f"format differs: {c.text}" for c in checks if c.flagged]
    lines += [f"{role} #{f} fires mostly on punctuation: it may track how the prompts end, not the concept"
              for role, f in punctuation_features]
    return lines
