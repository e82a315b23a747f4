"""Does the pairing verdict mean what it says on these prompt sets? The checks beside it, and when it is withheld.

Three things can make a GO or NO-GO meaningless however the sub-features come out:

* the sets: fewer than MIN_PER_SET prompts in either, or the same prompts in both
  (core/stats/confounds.py `SetReport`);
* the anchor: the verdict's coarse feature fires mostly on function words and punctuation inside the
  concept prompts, or not on the concept words (core/stats/concept_words.py), read off the contrast
  run's token firing with no new forward;

and then the verdict is withheld: the report says NO VERDICT with the reasons, and what the rule alone
would have said. Format differences between the sets (endings, names, length, vocabulary) are listed as
confounds without withholding. Every anchor's selectivity carries a bootstrap interval
(core/stats/selectivity_ci.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from spectrascope.core.stats.concept_words import AnchorCheck, ConceptWords, anchor_check, concept_words
from spectrascope.core.stats.confounds import SetReport, set_report
from spectrascope.core.stats.selectivity_ci import SelectivityCI, selectivity_ci


@dataclass
class SetChecks:
    sets: SetReport
    words: ConceptWords | None  # None: the run kept no token firing, so the anchor check cannot run
    anchors: dict[int, AnchorCheck] = field(default_factory=dict)  # coarse anchor -> where it fires
    ci: dict[int, SelectivityCI] = field(default_factory=dict)  # coarse anchor -> its selectivity interval
    pieces: dict[int, str] = field(default_factory=dict)  # token id -> text (for anchors added later)
    role: str = "coarse"

    def with_anchors(self, contrast: Any, anchors: Sequence[int]) -> "SetChecks":
        """These checks for the anchors `anchors` (in their order), reusing those already done."""
        anchors = [int(a) for a in anchors]
        out = SetChecks(self.sets, self.words, {a: self.anchors[a] for a in anchors if a in self.anchors},
                        {a: self.ci[a] for a in anchors if a in self.ci}, self.pieces, self.role)
        tokens = getattr(contrast, "tokens", None)
        for a in anchors:
            if a not in out.ci:
                out.ci[a] = selectivity_ci(contrast.per_prompt(self.role), contrast.is_concept, a)
            if a not in out.anchors and self.words is not None and tokens is not None:
                values = _columns(contrast, self.role, "values")  # its activation mass, where the run kept it
                out.anchors[a] = anchor_check(self.words, _columns(contrast, self.role), a, self.role,
                                              tokens.token_id, self.pieces.get, values=values)
        return out

    def withheld(self, anchor: int | None) -> tuple[str, ...]:
        """Why the verdict on `anchor` (the verdict's) is withheld; empty when it stands."""
        reasons = list(self.sets.withheld)
        check = self.anchors.get(anchor) if anchor is not None else None
        if check is not None and check.failed:
            reasons.append(check.reason)
        return tuple(reasons)

    def cells(self, anchor: int) -> tuple[str, str]:
        """An anchor's table cells: its selectivity interval, and the concept-word coverage with a mark
        (✓ on the concept, ⚠ not, ⚠ fn mostly function words; ? cannot tell; – not checked)."""
        ci, check = self.ci.get(anchor), self.anchors.get(anchor)
        return ci.text if ci else "–", check.short if check else "–"

    def lines(self) -> list[str]:
        """The checks as plain lines (the CLI's and the pane's): anchors, then the sets."""
        out = [self.anchors[a].text for a in self.anchors]
        if self.words is None:
            out.append("anchor check: not run (the contrast run kept no token firing)")
        elif self.words.words:
            out.append("concept words: " + ", ".join(f"{t.strip() or repr(t)} ({c}/{n})"
                                                     for t, c, n, _ in self.words.words[:10]))
        out += list(self.sets.withheld)
        return out

    def markdown(self) -> list[str]:
        """The checks as Markdown lines: the anchors' concept check, the concept words, each set's numbers."""
        from spectrascope.core.stats.concept_words import ALPHA0, MIN_COVERAGE, MOSTLY, Z_MIN
        from spectrascope.core.stats.confounds import MIN_PER_SET

        md = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = ["## Checks", "",
                 f"Is the anchor the concept? Concept words are tokens enriched in the concept set (log-odds z >= "
                 f"{Z_MIN}, informative Dirichlet prior, alpha0 = {ALPHA0:g}), function words and punctuation left "
                 f"out; an anchor fails when >= {MOSTLY:.0%} of its firing tokens in the concept prompts are function "
                 f"words or punctuation, or it fires on < {MIN_COVERAGE:.0%} of the concept-word tokens (and < "
                 f"{MIN_COVERAGE:.0%} of its tokens are concept words). A verdict on a failing anchor, on sets under "
                 f"{MIN_PER_SET} prompts or on the same prompts is withheld. The decision counts firing tokens; "
                 f"beside it, the shares of the anchor's activation mass (its summed activation on each kind of "
                 f"token), and ⚑ where the same rule on the mass gives another answer.", ""]
        lines += [f"- {md(t)}" for t in self.lines()] + [""]
        lines += ["| set check | concept | neutral | flagged |", "|---|---|---|---|"]
        for c in self.sets.checks:
            cells = c.cells()
            lines.append(f"| {md(c.name)} | {md(cells[0])} | {md(cells[1])} | {'⚠' if c.flagged else ''} |")
        same = self.sets.same
        lines.append(f"| same prompts | {same.shared:.0%} also in the neutral set | | "
                     f"{'⚠' if same.identical or same.near_identical else ''} |")
        lines.append(f"| prompts | {self.sets.n_concept} | {self.sets.n_neutral} | "
                     f"{'⚠' if self.sets.too_small else ''} |")
        return lines + [""]

    def to_dict(self) -> dict[str, Any]:
        return {"sets": self.sets.to_dict(), "concept_words": self.words.to_dict() if self.words else None,
                "anchor_checks": {str(a): c.to_dict() for a, c in self.anchors.items()},
                "selectivity_ci": {str(a): c.to_dict() for a, c in self.ci.items()}}


def _columns(contrast: Any, role: str, what: str = "firing") -> Any:
    """The run's (T, F) firing of `role` (`what` = "values": its activations; None when the run has none)
    as CSC (one column per feature is cheap), kept on the run."""
    key = (f"{what}_csc", role)
    if key not in contrast.memo:
        found = getattr(contrast.tokens, what)
        contrast.memo[key] = found[role].tocsc() if found is not None and role in found else None
    return contrast.memo[key]


def build(contrast: Any, concept: Sequence[str], neutral: Sequence[str], anchors: Sequence[int],
          piece: Callable[[int], str] | None, role: str = "coarse") -> SetChecks:
    """The checks of a contrast run of `concept` vs `neutral`, each anchor's included; `piece(id)` -> a
    token's text (None, or a run without token firing: no anchor check)."""
    import numpy as np

    tokens = getattr(contrast, "tokens", None)
    words, pieces = None, {}
    if tokens is not None and piece is not None and tokens.n_tokens:
        pieces = {int(i): piece(int(i)) for i in np.unique(tokens.token_id)}
        words = concept_words(tokens.token_id, contrast.is_concept[tokens.prompt], pieces.__getitem__)
    return SetChecks(set_report(concept, neutral), words, pieces=pieces, role=role).with_anchors(contrast, anchors)
