"""`contrast` and the Pairing pane: concept vs neutral prompt sets -> selective coarse anchors -> their fine
sub-features and the GO/NO-GO verdict, as one frozen report.

The analysis is core/analysis/pairing.py (`analyse` runs both sets, `repair` pairs a finished run
again, `reclassify` moves the thresholds: classes at once, then the null model and permutation p again);
a report wraps its `PairingResult` and never changes: labels computed later, other thresholds or anchors
make a new report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from spectrascope.core.analysis import pairing as analysis
from spectrascope.core.analysis.contrast import ContrastSettings, _quiet, default_sets, load_prompts
from spectrascope.core.analysis.pairing import PairingSettings
from spectrascope.core.records import Record

if TYPE_CHECKING:
    from spectrascope.core.analysis.pairing import PairingResult

N_CANDIDATES = 20  # coarse candidates the pane and the report list


@dataclass(frozen=True)
class PairingSpec(Record):
    """What `spectrascope contrast` takes and the pane's session file keeps (`to_state`)."""

    concept: str | None = None  # file or folder of concept prompts; None: the shipped France set
    neutral: str | None = None  # file or folder of neutral prompts; None: the shipped neutral set
    n_anchors: int = PairingSettings.n_anchors  # the most selective coarse features paired
    anchors: tuple[int, ...] | None = None  # these coarse features instead
    cos_threshold: float = PairingSettings.cos_threshold
    corr_threshold: float = PairingSettings.corr_threshold
    min_subfeatures: int = PairingSettings.min_subfeatures  # sub-features an anchor needs for GO
    max_rows: int = PairingSettings.max_rows
    aggregate: str = ContrastSettings.aggregate  # the per-prompt summary: "max" or "mean"
    batch_size: int = ContrastSettings.batch_size
    use_cache: bool = True  # False: run both sets again even if the contrast cache has them
    n_permutations: int = PairingSettings.n_permutations  # label shuffles of the verdict's permutation test
    match_neutral: bool = False  # the neutral set built from the concept set (core/analysis/matched_neutral.py)

    def __post_init__(self):
        _ = self.settings, self.contrast_settings  # a bad threshold or aggregate is a ValueError here

    @property
    def settings(self) -> PairingSettings:
        return PairingSettings(self.n_anchors, self.cos_threshold, self.corr_threshold, self.min_subfeatures,
                               self.max_rows, self.n_permutations)

    @property
    def contrast_settings(self) -> ContrastSettings:
        return ContrastSettings(self.aggregate, self.batch_size)

    def paths(self) -> tuple[Path, Path]:
        default_concept, default_neutral = default_sets()
        concept = Path(self.concept or default_concept)
        if self.match_neutral:
            from spectrascope.core.analysis.matched_neutral import matched_path

            return concept, matched_path(concept)
        return concept, Path(self.neutral or default_neutral)

    def prompt_sets(self) -> tuple[list[str], list[str]]:
        """(concept, neutral) prompts; a missing, empty or malformed set is a PromptSetError (a ValueError).
        With `match_neutral` the neutral set is built from the concept set (and written where `paths` says)."""
        concept, neutral = self.paths()
        if self.match_neutral:
            return load_prompts(concept), self.matched().prompts
        return load_prompts(concept), load_prompts(neutral)

    def matched(self) -> Any:
        """The matched neutral set (`MatchedNeutral`) of the concept set, written beside the cache."""
        from spectrascope.core.analysis.matched_neutral import write_matched

        return write_matched(self.paths()[0])[1]

    def to_state(self) -> dict[str, Any]:
        """The session-file section (its layout predates the Spec: settings in two groups)."""
        concept, neutral = self.paths()
        return {"concept": str(concept), "neutral": str(neutral), "match_neutral": self.match_neutral,
                "settings": self.settings.to_dict(),
                "contrast": self.contrast_settings.to_dict(),
                "anchors": list(self.anchors) if self.anchors else None}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PairingSpec:
        """The Spec from `to_state`'s section; a key it lacks keeps its default."""
        anchors = state.get("anchors")  # None: no result was shown (or an older file)
        return replace(cls.of(state.get("concept"), state.get("neutral"),
                              PairingSettings.from_dict(state.get("settings", {})),
                              ContrastSettings.from_dict(state.get("contrast", {})), anchors),
                       match_neutral=bool(state.get("match_neutral", False)))

    @classmethod
    def of(cls, concept: str | Path | None, neutral: str | Path | None, settings: PairingSettings,
           contrast: ContrastSettings, anchors: Sequence[int] | None = None, use_cache: bool = True) -> PairingSpec:
        """The Spec from the analysis' two settings groups (the pane keeps those)."""
        return cls(str(concept) if concept else None, str(neutral) if neutral else None, settings.n_anchors,
                   tuple(int(a) for a in anchors) if anchors else None, settings.cos_threshold,
                   settings.corr_threshold, settings.min_subfeatures, settings.max_rows, contrast.aggregate,
                   contrast.batch_size, use_cache, settings.n_permutations)


@dataclass(frozen=True)
class PairingReport:
    """One pairing: its contrast run, anchors, pairings, verdict and the labels known so far."""

    result: PairingResult  # never changed once in a report
    sets: tuple[str, ...] = ()  # the concept and neutral prompt sets' paths, when the report knows them
    matched: Any = None  # the `MatchedNeutral` the neutral set was built as (None: a set of the user's)
    pending: bool = False  # new thresholds shown before their null model and permutation p are recomputed

    @property
    def sets_name(self) -> str:
        """"france-vs-france-neutral": the prompt sets, for file names (an export's WHAT); "run" if unknown."""
        return "-vs-".join(Path(p).stem for p in self.sets) if self.sets else "run"

    def to_dict(self) -> dict[str, Any]:
        out = analysis.to_dict(self.result, N_CANDIDATES)
        return {**out, "matched_neutral": self.matched.to_dict()} if self.matched is not None else out

    def to_markdown(self) -> str:
        text = analysis.to_markdown(self.result)
        return text + f"\nNeutral set: {self.matched.text}.\n" if self.matched is not None else text

    def reclassified(self, settings: PairingSettings, cancel: Any = None, progress: Any = None) -> PairingReport:
        """New thresholds on the same cosines and correlations (no model call): classes, then the null model
        and permutation test again (seconds at real size: a job's work; `cancel` stops it)."""
        return replace(self, result=analysis.reclassify(self.result, settings, cancel, progress), pending=False)

    def provisional(self, settings: PairingSettings) -> PairingReport:
        """`reclassified`'s cheap part, shown while the rest runs: classes and the rule's answer, no null model
        or permutation p yet (`pending`; the verdict says so)."""
        return replace(self, result=analysis.reclassify_classes(self.result, settings), pending=True)

    def unlabelled(self) -> dict[str, list[int]]:
        """Role -> listed features without a label yet (say, fine rows listed after a threshold change)."""
        return analysis.unlabelled(self.result, N_CANDIDATES)

    def with_labels(self, labels: Mapping[str, Mapping[int, str]]) -> PairingReport:
        """This report with more labels (role -> feature -> label): labels are per feature, so they fit
        any report of the session."""
        known = {role: dict(found) for role, found in self.result.labels.items()}
        for role, found in labels.items():
            known.setdefault(role, {}).update(found)
        return replace(self, result=replace(self.result, labels=known))

    @property
    def first_shown(self) -> int | None:
        """The anchor to show first: the verdict's on a GO, else the first anchor."""
        verdict, anchors = self.result.verdict, self.result.anchors
        return verdict.anchor if verdict.go else (anchors[0] if anchors else None)

    def selected_features(self, anchor: int | None = None) -> list[tuple[str, int]]:
        """[("coarse", anchor), ("fine", sub), ...] for `anchor` (None: the verdict's)."""
        return self.result.selected_features(anchor)


def next_concept_set(concept: Path) -> Any:
    """The shipped `ConceptSet` (core/analysis/concept_sets.py) after the one whose concept prompts are
    `concept`: the first when none is."""
    from spectrascope.core.analysis.concept_sets import CONCEPT_SETS

    sets = list(CONCEPT_SETS.values())
    now = next((i for i, c in enumerate(sets) if c.concept == Path(concept)), -1)
    return sets[(now + 1) % len(sets)]


def build(session: Any, spec: PairingSpec, cancel: Any = None, progress: Any = None) -> PairingReport:
    """`spectrascope contrast`'s report: both SAEs checked first (naming each one missing), then `analyse`."""
    missing = [role for role in ("coarse", "fine") if role not in session.saes]
    if missing:
        why = "; ".join(f"{role}: {session.sae_errors.get(role, 'not configured')}" for role in missing)
        raise ValueError(f"needs a coarse and a fine SAE ({why}).")
    try:
        return analyse(session, spec, cancel, progress)
    except IndexError as exc:  # a hand-picked anchor the coarse SAE lacks: a bad argument
        raise ValueError(str(exc)) from None


def analyse(session: Any, spec: PairingSpec, cancel: Any = None, progress: Any = None) -> PairingReport:
    """Both prompt sets through the model and both SAEs (cached on disk), then the pairing of
    `spec.anchors` (None: the top `spec.n_anchors` by selectivity), labelled."""
    matched = spec.matched() if spec.match_neutral else None  # built (and written) once
    concept, neutral = (load_prompts(spec.paths()[0]), matched.prompts) if matched else spec.prompt_sets()
    return PairingReport(analysis.analyse(session, concept, neutral, spec.contrast_settings, spec.settings, cancel,
                                          progress or _quiet, use_cache=spec.use_cache, anchors=spec.anchors),
                         sets=tuple(str(p) for p in spec.paths()), matched=matched)


def repair(session: Any, previous: PairingReport, settings: PairingSettings, anchors: Sequence[int] | None,
           cancel: Any = None, progress: Any = None) -> PairingReport:
    """`previous` paired again with `anchors` (None: the top `settings.n_anchors`) from its contrast
    run: no model forward. (A job's `cancel`/`progress` go unused: it is one short step.)"""
    return replace(previous, result=analysis.repair(session, previous.result, settings, anchors))


def reclassify(report: PairingReport, settings: PairingSettings, cancel: Any = None,
               progress: Any = None) -> PairingReport:
    """`report` at new thresholds, its verdict's null model and permutation test recomputed (the Pairing
    pane's threshold keys run it as a job)."""
    return report.reclassified(settings, cancel, progress)


def feature_tokens(session: Any, report: PairingReport, spec: PairingSpec, role: str, feature: int,
                   cancel: Any = None, progress: Any = None) -> list[Any]:
    """One feature's activation on every token of the prompts where it fires most and least
    (`core.analysis.token_view.PromptTokens`, one per prompt)."""
    from spectrascope.core.analysis.token_view import token_view

    concept, neutral = spec.prompt_sets()
    contrast = report.result.contrast
    return token_view(session, concept, neutral, contrast.per_prompt(role), contrast.is_concept, role, feature)
