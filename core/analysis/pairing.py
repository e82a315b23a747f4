"""Coarse anchors x fine features: decoder cosine, activation correlation, classes, verdict.

For each coarse anchor a and every fine feature f:

* cosine(a, f): cosine of their decoder directions (W_dec rows), computed in chunks
  of fine features on the model's device;
* correlation(a, f): Pearson correlation, across all concept + neutral prompts, of
  their per-prompt activations (the contrast run's aggregate, max by default);
  0 when either is constant (e.g. never fires).

Classes, with thresholds θ (cosine, default 0.3) and ρ (correlation, default 0.5):

    sub-feature      corr >= ρ and cos >= θ   fires with the anchor, writes a similar direction,
                                              and is nested in it token by token (below)
    near-duplicate   corr >= ρ and cos >= θ   the anchor again: decoder cosine >= 0.7, or covers
                                              half of the anchor's tokens or more
    not nested       corr >= ρ and cos >= θ   fires too often where the anchor does not
    co-occurring     corr >= ρ and cos <  θ   fires with the anchor, writes something else
    partial overlap  corr <  ρ and cos >= θ   similar direction, fires on a different subset
    unrelated        neither

The nesting test (core/stats/hierarchy.py) reads the contrast run's token firing; a run
without it (built by hand) classifies by cosine and correlation alone, and says so.

Verdict: GO when some anchor has at least `min_subfeatures` (3) sub-features; it
names the best such anchor and its sub-features. Otherwise NO-GO with the best
anchor's count. Every verdict carries
* its null model (core/stats/null_model.py): how many of all live coarse features reach the
  same count at the same thresholds, so a GO that most features would also get says so;
* its permutation p (core/stats/permutation.py): the whole decision rerun on shuffled
  concept/neutral labels, so a GO that the best-of-K anchor choice gives on any labels says so;
* its threshold sensitivity (core/stats/sensitivity.py): GO or not over a grid of thresholds.
Nothing here imports textual, rich or plotext.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from spectrascope.core.assets import atomic_write
from spectrascope.core.analysis.contrast import RATE_DEFINITION, SELECTIVITY_DEFINITION, ContrastResult, ContrastSettings, Progress, _quiet, run_contrast
from spectrascope.core.stats import hierarchy
from spectrascope.core.stats.null_model import NullModel, live_features, null_from_counts, subfeature_counts
from spectrascope.core.stats.permutation import N_PERMUTATIONS, PermutationTest, permutation_test
from spectrascope.core.stats.sensitivity import ThresholdGrid, threshold_grid
from spectrascope.core.text import sentence

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

UNRELATED, SUB_FEATURE, CO_OCCURRING, PARTIAL = 0, 1, 2, 3
DUPLICATE, NOT_NESTED = hierarchy.DUPLICATE, hierarchy.NOT_NESTED  # 4, 5: pass both thresholds, fail nesting
CLASS_NAMES = {SUB_FEATURE: "sub-feature", DUPLICATE: "near-duplicate", NOT_NESTED: "not nested",
               CO_OCCURRING: "co-occurring", PARTIAL: "partial overlap", UNRELATED: "unrelated"}


@dataclass(frozen=True)
class PairingSettings:
    n_anchors: int = 3
    cos_threshold: float = 0.3
    corr_threshold: float = 0.5
    min_subfeatures: int = 3  # sub-features an anchor needs for GO
    max_rows: int = 50  # pairs listed per anchor (those passing a threshold, best first)
    n_permutations: int = N_PERMUTATIONS  # label shuffles of the permutation test (0: none)

    def __post_init__(self):
        if self.n_anchors < 1:
            raise ValueError("n_anchors must be at least 1")
        if not -1 <= self.cos_threshold <= 1 or not -1 <= self.corr_threshold <= 1:
            raise ValueError("thresholds must be in [-1, 1]")
        if self.n_permutations < 0:
            raise ValueError("n_permutations must be 0 or more")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PairingSettings":
        return cls(**d)


# ---------------------------------------------------------------- math (numpy-testable)

def decoder_cosine(coarse_dirs: Any, fine_W_dec: Any, chunk: int = 8192, device: str | None = None) -> np.ndarray:
    """Cosine of each coarse direction (k, d) with every fine decoder row (F, d). # -> (k, F)"""
    import torch

    with torch.inference_mode():
        a = torch.as_tensor(coarse_dirs).float()
        w = torch.as_tensor(fine_W_dec)
        dev = device or w.device
        a = a.to(dev)
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
        out = []
        for s in range(0, w.shape[0], chunk):
            block = w[s:s + chunk].to(dev).float()  # (c, d)
            block = block / block.norm(dim=1, keepdim=True).clamp_min(1e-12)
            out.append((a @ block.T).cpu())  # (k, c)
        return torch.cat(out, dim=1).numpy().astype(np.float32)


def pearson(x: np.ndarray, Y: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Pearson correlation of x (N,) with each column of Y (N, F); 0 where either is constant. # (F,)

    Columns are processed in chunks (float64 within a chunk), so a 262K-wide fine SAE
    never needs an (N, F) float64 copy.
    """
    x = np.asarray(x, np.float64)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    out = np.zeros(Y.shape[1], np.float32)
    if sxx <= 0:
        return out
    for s in range(0, Y.shape[1], chunk):
        Yc = np.asarray(Y[:, s:s + chunk], np.float64)
        Yc = Yc - Yc.mean(0)
        num = xc @ Yc
        syy = (Yc * Yc).sum(0)
        den = np.sqrt(sxx * syy)
        ok = syy > 1e-12 * max(1.0, float(np.abs(Yc).max(initial=0.0))) ** 2
        r = np.divide(num, den, out=np.zeros_like(num), where=ok)
        out[s:s + chunk] = np.clip(r, -1.0, 1.0)
    return out


def classify(cos: np.ndarray, corr: np.ndarray, cos_threshold: float, corr_threshold: float,
             nesting: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Class codes (see module doc) for arrays of cosine and correlation, and where given the
    nesting arrays (P(coarse | fine), P(fine | coarse), fine tokens) of the same shape. # int8"""
    c_ok = np.asarray(cos) >= cos_threshold
    r_ok = np.asarray(corr) >= corr_threshold
    out = np.full(np.shape(cos), UNRELATED, np.int8)
    out[r_ok & c_ok] = SUB_FEATURE
    out[r_ok & ~c_ok] = CO_OCCURRING
    out[~r_ok & c_ok] = PARTIAL
    if nesting is not None:
        both = r_ok & c_ok
        nested = hierarchy.nesting_classes(np.asarray(cos)[both], *(np.asarray(a)[both] for a in nesting))
        out[both] = np.where(nested == hierarchy.NESTED, SUB_FEATURE, nested)
    return out


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class Pair:
    fine: int
    cosine: float
    correlation: float
    cls: str
    p_coarse_given_fine: float | None = None  # share of the fine feature's tokens inside the anchor
    p_fine_given_coarse: float | None = None  # share of the anchor's tokens the fine feature covers


@dataclass
class AnchorPairing:
    anchor: int
    cosine: np.ndarray  # (F_fine,)
    correlation: np.ndarray  # (F_fine,)
    classes: np.ndarray  # (F_fine,) int8
    p_coarse_given_fine: np.ndarray | None = None  # (F_fine,) token nesting (None: no token firing)
    p_fine_given_coarse: np.ndarray | None = None  # (F_fine,)
    fine_tokens: np.ndarray | None = None  # (F_fine,) tokens each fine feature fires on

    @property
    def nesting(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The arrays `classify` takes for the nesting test (None: classified by thresholds alone)."""
        if self.p_coarse_given_fine is None:
            return None
        return self.p_coarse_given_fine, self.p_fine_given_coarse, self.fine_tokens

    def reclassified(self, cos_threshold: float, corr_threshold: float) -> "AnchorPairing":
        return replace(self, classes=classify(self.cosine, self.correlation, cos_threshold, corr_threshold,
                                              self.nesting))

    def sub_features(self) -> list[int]:
        """Sub-feature ids, best first (by min(cos, corr), then correlation)."""
        ids = np.flatnonzero(self.classes == SUB_FEATURE)
        score = np.minimum(self.cosine[ids], self.correlation[ids])
        order = np.lexsort((ids, -self.correlation[ids], -score))
        return [int(i) for i in ids[order]]

    def pairs(self, limit: int = 50) -> list[Pair]:
        """Fine features passing at least one threshold: sub-features, partial overlap, co-occurring."""
        rank = {SUB_FEATURE: 0, DUPLICATE: 1, NOT_NESTED: 2, PARTIAL: 3, CO_OCCURRING: 4}
        ids = np.flatnonzero(self.classes != UNRELATED)
        keyed = sorted(ids.tolist(), key=lambda i: (rank[int(self.classes[i])],
                                                    -min(self.cosine[i], self.correlation[i]), i))
        nest = self.nesting
        return [Pair(i, float(self.cosine[i]), float(self.correlation[i]), CLASS_NAMES[int(self.classes[i])],
                     *((round(float(nest[0][i]), 4), round(float(nest[1][i]), 4)) if nest is not None else ()))
                for i in keyed[:limit]]

    def counts(self) -> dict[str, int]:
        shown = (SUB_FEATURE, PARTIAL, CO_OCCURRING) + ((DUPLICATE, NOT_NESTED) if self.nesting is not None else ())
        return {CLASS_NAMES[c]: int((self.classes == c).sum()) for c in shown}


@dataclass(frozen=True)
class Verdict:
    go: bool
    anchor: int | None  # the best anchor (most sub-features)
    count: int  # its number of sub-features
    sub_features: tuple[int, ...]
    needed: int
    null: NullModel | None = None  # the same test over all live coarse features
    permutation: PermutationTest | None = None  # the whole decision on shuffled labels
    permutation_note: str = ""  # why there is no permutation test, where there is none
    grid: ThresholdGrid | None = None  # the verdict over a grid of thresholds
    nested: bool = False  # sub-features passed the token nesting test (False: thresholds alone)
    withheld: tuple[str, ...] = ()  # why no verdict is given (core/analysis/set_checks.py); empty: it stands
    confounded: tuple[str, ...] = ()  # the format checks the two sets differ in (core/stats/confounds.py)

    @property
    def status(self) -> str:
        """"GO", "NO-GO", or "WITHHELD" (the rule's answer is then `go`, shown as "the rule alone")."""
        return "WITHHELD" if self.withheld else "GO" if self.go else "NO-GO"

    @property
    def headline(self) -> str:
        if self.withheld:
            return f"NO VERDICT: {'; '.join(self.withheld)}. The rule alone: {self.rule_headline}"
        if self.confounded:  # it stands, but the sets differ in form too: selectivity may be about that
            return f"{self.rule_headline} ⚠ CONFOUNDED: the sets also differ in {', '.join(self.confounded)}"
        return self.rule_headline

    @property
    def rule_headline(self) -> str:
        if self.anchor is None:
            return "NO-GO: no anchor chosen."
        if self.go:
            return (f"GO: coarse #{self.anchor} has {self.count} sub-features (>= {self.needed}): "
                    + ", ".join(f"fine #{i}" for i in self.sub_features))
        return f"NO-GO: the best anchor, coarse #{self.anchor}, has {self.count} sub-feature(s); {self.needed} needed."

    @property
    def permutation_text(self) -> str:
        return self.permutation.text if self.permutation is not None else self.permutation_note

    @property
    def text(self) -> str:
        return " · ".join([self.headline] + [t for t in (self.permutation_text, self.null.text if self.null else "",
                                                         self.grid.text if self.grid else "") if t])

    def to_dict(self) -> dict[str, Any]:
        perm = self.permutation
        return {"go": self.go and not self.withheld, "status": self.status, "rule_go": self.go,
                "withheld": list(self.withheld), "confounded": list(self.confounded), "anchor": self.anchor,
                "count": self.count,
                "sub_features": list(self.sub_features),
                "needed": self.needed, "null_model": self.null.to_dict() if self.null else None,
                "text": self.text, "permutation_p": perm.p_value if perm else None,
                "permutation": perm.to_dict() if perm else None, "permutation_note": self.permutation_note,
                "grid_go_share": self.grid.go_share if self.grid else None,
                "grid": self.grid.to_dict() if self.grid else None, "hierarchy_tested": self.nested,
                "hierarchy_definition": hierarchy.HIERARCHY_DEFINITION if self.nested else
                "not tested: the run has no token firing; sub-features pass the thresholds alone"}


def verdict(pairings: Sequence[AnchorPairing], needed: int = 3) -> Verdict:
    if not pairings:
        return Verdict(False, None, 0, (), needed)
    best = max(pairings, key=lambda p: (len(p.sub_features()), -pairings.index(p)))
    subs = best.sub_features()
    return Verdict(len(subs) >= needed, best.anchor, len(subs), tuple(subs), needed)


def judged(contrast: ContrastResult, pairings: Sequence[AnchorPairing], settings: PairingSettings,
           dirs: tuple[Any, Any], coarse: str = "coarse", fine: str = "fine", grid: ThresholdGrid | None = None,
           tick: Callable[[float], None] | None = None) -> Verdict:
    """The verdict on `pairings` with its null model over all live coarse features, its permutation
    test (where the anchors are the top K by selectivity) and its threshold grid (`grid`: these anchors'
    grid, already made: it does not depend on the thresholds). `tick(fraction done)` after each block of
    the null model's pairing; an exception it raises (Cancelled) stops the work."""
    v = verdict(pairings, settings.min_subfeatures)
    acts_c, acts_f = contrast.per_prompt(coarse), contrast.per_prompt(fine)
    nest = hierarchy.nesting(contrast, coarse, fine)
    # Pair at most ~2^28 (coarse x fine) cells: all 4,096 x 32,768 embedded ones, a sample at 16K x 262K.
    budget = max(256, (1 << 28) // max(1, acts_f.shape[1]))
    live, sampled = live_features(acts_c, min(4096, budget))
    known: dict[int, int] = {}

    span = [0.0, 0.9]  # the share of the whole the current call of counts_of stands for (null, then shuffles)

    def counts_of(ids: np.ndarray) -> np.ndarray:
        """Sub-feature counts at these thresholds, each coarse feature computed once."""
        missing = np.asarray([i for i in np.asarray(ids).tolist() if i not in known], np.int64)
        if len(missing):
            part = None if tick is None else (lambda f, lo=span[0], hi=span[1]: tick(lo + (hi - lo) * f))
            got = subfeature_counts(acts_c, acts_f, dirs[0], dirs[1], missing, settings.cos_threshold,
                                    settings.corr_threshold, nesting=nest, tick=part)
            known.update(zip(missing.tolist(), got.tolist()))
        return np.asarray([known[i] for i in np.asarray(ids).tolist()], np.int64)

    null = null_from_counts(counts_of(live), settings.min_subfeatures, v.anchor, v.count, sampled)
    span[:] = [0.9, 1.0]
    perm, note = None, ""
    anchors = [p.anchor for p in pairings]
    if not settings.n_permutations or v.anchor is None:
        note = "permutation test: not run"
    elif anchors != contrast.stats[coarse].ranked(len(anchors), "out"):
        note = "permutation test: not run (the anchors were picked by hand, not the top ones by selectivity)"
    else:
        key = ("ranks", coarse, contrast.settings.aggregate)
        if key not in contrast.memo:
            from spectrascope.core.analysis.contrast import average_ranks

            contrast.memo[key] = average_ranks(acts_c)
        perm = permutation_test(acts_c, contrast.is_concept, counts_of, len(anchors), settings.min_subfeatures,
                                v.count, settings.n_permutations, ranks=contrast.memo[key])
    if grid is None:
        grid = threshold_grid(lambda c, r: max([int((p.reclassified(c, r).classes == SUB_FEATURE).sum())
                                                for p in pairings], default=0))
    if tick is not None:
        tick(1.0)
    return replace(v, null=null, permutation=perm, permutation_note=note, grid=grid, nested=nest is not None)


@dataclass
class PairingResult:
    contrast: ContrastResult
    settings: PairingSettings
    anchors: list[int]
    pairings: dict[int, AnchorPairing]
    verdict: Verdict
    labels: dict[str, dict[int, str]] = field(default_factory=dict)  # role -> id -> label
    dirs: tuple[Any, Any] | None = None  # (coarse, fine) W_dec: the null model's input on re-classification
    confounds: list[str] = field(default_factory=list)  # format differences between the sets (core/confounds.py)
    checks: Any = None  # set_checks.SetChecks: sizes, sameness, each anchor's concept check and interval
    neuronpedia: dict[str, str] = field(default_factory=dict)  # role -> the SAE's Neuronpedia address, where hosted
    budgets: dict[str, dict] = field(default_factory=dict)  # role -> training budget from its card (sae_info.py)

    def matched_fine(self, limit: int = 24) -> list[int]:
        """Fine features that are a sub-feature of some anchor (best first), for the heatmap."""
        seen: list[int] = []
        for a in self.anchors:
            for f in self.pairings[a].sub_features():
                if f not in seen:
                    seen.append(f)
        return seen[:limit]

    def heatmap(self, fine_ids: Sequence[int] | None = None) -> np.ndarray:
        """Cosine of anchors (rows) x matched fine features (columns)."""
        ids = list(self.matched_fine() if fine_ids is None else fine_ids)
        return np.array([[self.pairings[a].cosine[f] for f in ids] for a in self.anchors], np.float32).reshape(
            len(self.anchors), len(ids))

    def selected_features(self, anchor: int | None = None) -> list[tuple[str, int]]:
        """[("coarse", anchor), ("fine", sub), ...] for the chosen (or verdict's) anchor."""
        a = anchor if anchor is not None else (self.verdict.anchor if self.verdict.anchor is not None
                                               else (self.anchors[0] if self.anchors else None))
        if a is None:
            return []
        p = self.pairings.get(a)
        return [("coarse", a)] + ([("fine", f) for f in p.sub_features()] if p else [])


def sae_dirs(session: Any, role: str) -> Any:
    return session.decoder_directions(role)


def pair(
    contrast: ContrastResult,
    coarse_W_dec: Any,
    fine_W_dec: Any,
    settings: PairingSettings = PairingSettings(),
    anchors: Sequence[int] | None = None,
    device: str | None = None,
    coarse: str = "coarse",
    fine: str = "fine",
) -> PairingResult:
    """Cosine, correlation and classes of each anchor against every fine feature, and the verdict."""
    if anchors is None:
        anchors = contrast.stats[coarse].ranked(settings.n_anchors, "out")  # always-on latents are no concept
    anchors = [int(a) for a in anchors]
    n_coarse = contrast.per_prompt(coarse).shape[1]
    for a in anchors:
        if not 0 <= a < n_coarse:
            raise IndexError(f"Coarse feature {a} does not exist: the coarse SAE has 0..{n_coarse - 1}.")
    import torch

    w_c = torch.as_tensor(coarse_W_dec)
    cos = decoder_cosine(w_c[anchors], fine_W_dec, device=device) if anchors else np.zeros((0, 0), np.float32)
    acts_c = contrast.per_prompt(coarse)
    acts_f = contrast.per_prompt(fine)
    nest = hierarchy.nesting(contrast, coarse, fine)
    p_cf, p_fc = nest.rows(anchors) if nest is not None and anchors else (None, None)
    pairings = {}
    for row, a in enumerate(anchors):
        corr = pearson(acts_c[:, a], acts_f)
        tested = (p_cf[row], p_fc[row], nest.fine_tokens) if nest is not None else (None, None, None)
        pairings[a] = AnchorPairing(a, cos[row], corr, np.zeros(0, np.int8), *tested).reclassified(
            settings.cos_threshold, settings.corr_threshold)
    ordered = [pairings[a] for a in anchors]
    dirs = (coarse_W_dec, fine_W_dec)
    return PairingResult(contrast, settings, anchors, pairings, judged(contrast, ordered, settings, dirs, coarse, fine),
                         dirs=dirs)


PENDING_NOTE = "null model and permutation p: recomputing at these thresholds…"


def reclassify(result: PairingResult, settings: PairingSettings, cancel: threading.Event | None = None,
               progress: Progress | None = None) -> PairingResult:
    """New thresholds on the same cosines and correlations (no model call): the classes, then the verdict's
    null model and permutation test again (all live coarse features paired at the new thresholds: seconds
    at real size; `progress` hears of it, `cancel` stops it with Cancelled). The threshold grid is kept:
    it does not depend on the thresholds."""
    shown = reclassify_classes(result, settings)
    if result.dirs is None:
        return shown
    v = judged(result.contrast, [shown.pairings[a] for a in result.anchors], settings, result.dirs,
               grid=result.verdict.grid, tick=_ticker(cancel, progress, settings))
    return with_checks(replace(shown, verdict=v), result.checks)


def reclassify_classes(result: PairingResult, settings: PairingSettings) -> PairingResult:
    """`reclassify`'s cheap part, to show at once while the rest runs: the classes and what the rule says
    on them, the grid kept; no null model or permutation p (the verdict says they are being recomputed)."""
    pairings = {a: p.reclassified(settings.cos_threshold, settings.corr_threshold) for a, p in result.pairings.items()}
    v = verdict([pairings[a] for a in result.anchors], settings.min_subfeatures)
    old = result.verdict
    v = replace(v, grid=old.grid, nested=old.nested, permutation_note=PENDING_NOTE if result.dirs is not None else "")
    return with_checks(replace(result, settings=settings, pairings=pairings, verdict=v), result.checks)


def _ticker(cancel: threading.Event | None, progress: Progress | None,
            settings: PairingSettings) -> Callable[[float], None] | None:
    """The `tick` of `judged`: raises Cancelled once `cancel` is set, and passes the fraction to `progress`."""
    if cancel is None and progress is None:
        return None
    what = (f"recomputing the null model and permutation p at cos ≥ {settings.cos_threshold:.2f}, "
            f"corr ≥ {settings.corr_threshold:.2f}")

    def tick(fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            from spectrascope.core.engine.values import Cancelled

            raise Cancelled
        if progress is not None:
            progress(f"{what}… {fraction:.0%} (x cancels)", fraction)

    return tick


def with_checks(result: PairingResult, checks: Any) -> PairingResult:
    """`result` with `checks` (set_checks.SetChecks; None: none) for its anchors, and its verdict withheld
    where they say so."""
    if checks is not None:
        result.checks = checks.with_anchors(result.contrast, result.anchors)
        result.verdict = replace(result.verdict, withheld=result.checks.withheld(result.verdict.anchor),
                                 confounded=tuple(c.name for c in result.checks.sets.checks if c.flagged))
    return result


# ---------------------------------------------------------------- labels

def label_text(labels: Any, label: Any, k: int = 5) -> str:
    """A feature's short label: where it fires (shipped labels.json), else its top promoted tokens."""
    from spectrascope.core.text import visible

    promoted = " ".join(v for v in (visible(t, 16) for t in label.promoted[:k]) if v.strip())
    return visible(label.text(k) if label.feature in labels.shipped else promoted, 60, mark_spaces=False)


def feature_labels(session: Any, role: str, ids: Sequence[int], k: int = 5) -> dict[int, str]:
    """A short label per feature (`label_text`); the session's FeatureLabels computes (and caches)
    the missing ones in one batch."""
    labels = getattr(session, "labels", {}).get(role)
    ids = [int(i) for i in ids]
    if not ids or role not in session.saes or labels is None:
        return {}
    return {i: label_text(labels, label, k) for i, label in labels.compute(ids).items()}


def known_labels(session: Any, wanted: Mapping[str, Sequence[int]]) -> dict[str, dict[int, str]]:
    """Role -> feature -> short label, for those of `wanted` that need no computing (cheap: the UI
    thread reads them once a label worker has filled the session's caches)."""
    out: dict[str, dict[int, str]] = {}
    for role, ids in wanted.items():
        labels = getattr(session, "labels", {}).get(role)
        known = [(i, labels.known(i)) for i in ids] if labels is not None and role in session.saes else []
        out[role] = {int(i): label_text(labels, label) for i, label in known if label is not None}
    return out


# ---------------------------------------------------------------- one call for panes and CLI

def analyse(
    session: Any,
    concept: Sequence[str],
    neutral: Sequence[str],
    contrast_settings: ContrastSettings = ContrastSettings(),
    settings: PairingSettings = PairingSettings(),
    cancel: threading.Event | None = None,
    progress: Progress = _quiet,
    use_cache: bool = True,
    anchors: Sequence[int] | None = None,
    labels: bool = True,
) -> PairingResult:
    """Contrast run (cached) -> anchors -> pairing -> verdict, with labels for what is shown."""
    for role in ("coarse", "fine"):
        if role not in session.saes:
            why = session.sae_errors.get(role, "not attached") if hasattr(session, "sae_errors") else "not attached"
            raise ValueError(f"The pairing needs a {role} SAE ({why}).")
    contrast = run_contrast(session, concept, neutral, contrast_settings, cancel, progress, use_cache)
    from spectrascope.core.analysis import set_checks

    result = _pair_session(session, contrast, settings, anchors, {} if labels else None)
    result.confounds = confound_warnings(session, result, concept, neutral)
    return with_checks(result, set_checks.build(contrast, concept, neutral, (), getattr(session, "piece", None)))


def confound_warnings(session: Any, result: PairingResult, concept: Sequence[str], neutral: Sequence[str],
                      top: int = 5) -> list[str]:
    """Format differences between the sets, and top features whose labelled contexts are all punctuation."""
    from spectrascope.core.stats.confounds import format_checks, is_punctuation, warnings

    punctuation = []
    for role in ("coarse", "fine"):
        labels = getattr(session, "labels", {}).get(role)
        for f in result.contrast.stats[role].ranked(top, "out"):
            label = labels.known(f) if labels is not None else None
            marked = label.marked_tokens() if label is not None else []
            if marked and all(is_punctuation(t) for t in marked):
                punctuation.append((role, f))
    return warnings(format_checks(concept, neutral), punctuation)


def repair(session: SessionAPI, previous: PairingResult, settings: PairingSettings,
           anchors: Sequence[int] | None = None) -> PairingResult:
    """`previous` paired again with other anchors (None: the top `settings.n_anchors` by selectivity)
    or other settings, from its contrast run: no model forward. Its labels are kept; new rows get theirs."""
    result = _pair_session(session, previous.contrast, settings, anchors, previous.labels)
    result.confounds = previous.confounds
    return with_checks(result, previous.checks)


def _pair_session(session: SessionAPI, contrast: ContrastResult, settings: PairingSettings,
                  anchors: Sequence[int] | None, labels: Mapping[str, Mapping[int, str]] | None) -> PairingResult:
    """The session's coarse x fine pairing of `contrast`, labelled on top of `labels` (None: unlabelled)."""
    result = pair(contrast, sae_dirs(session, "coarse"), sae_dirs(session, "fine"), settings, anchors,
                  device=str(session.device))
    if labels is not None:
        result.labels = {role: dict(known) for role, known in labels.items()}
        add_labels(session, result)
    for role, lab in getattr(session, "labels", {}).items():
        base = lab.url_base() if hasattr(lab, "url_base") else None
        if base:
            result.neuronpedia[role] = base
    from spectrascope.core.analysis.sae_info import session_budgets

    result.budgets = session_budgets(session)
    return result


def shown_features(result: PairingResult, n_candidates: int = 20) -> dict[str, set[int]]:
    """Role -> the features the pane and the report list: coarse candidates and anchors, and
    each anchor's fine rows at the current thresholds."""
    stats = result.contrast.stats
    coarse = set(stats["coarse"].ranked(n_candidates, "out")) | set(result.anchors) | set(stats["coarse"].ranked(5, "only"))
    fine = {p.fine for a in result.anchors for p in result.pairings[a].pairs(result.settings.max_rows)}
    fine |= set(stats["fine"].ranked(n_candidates, "out")) | set(stats["fine"].ranked(5, "only"))  # the report's fine table
    return {"coarse": coarse, "fine": fine}


def unlabelled(result: PairingResult, n_candidates: int = 20) -> dict[str, list[int]]:
    """Shown features without a label yet (say, fine rows newly listed after a threshold change)."""
    out = {role: sorted(ids - set(result.labels.get(role, {})))
           for role, ids in shown_features(result, n_candidates).items()}
    return {role: ids for role, ids in out.items() if ids}


def labels_for(session: Any, wanted: Mapping[str, Sequence[int]]) -> dict[str, dict[int, str]]:
    """Role -> feature -> short label, one batch per role (the pane's label worker)."""
    return {role: feature_labels(session, role, ids) for role, ids in wanted.items()}


def add_labels(session: Any, result: PairingResult, n_candidates: int = 20) -> None:
    for role, known in labels_for(session, unlabelled(result, n_candidates)).items():
        result.labels.setdefault(role, {}).update(known)


# ---------------------------------------------------------------- export

def budgets(result: PairingResult) -> dict[str, dict[str, Any]]:
    """Role -> each SAE's training budget from its card ("unknown" where none, or a result built by hand)."""
    from spectrascope.core.analysis.sae_info import training_budget

    return {role: result.budgets.get(role) or training_budget(None) for role in ("coarse", "fine")}


def rate_interval_note(n_concept: int, n_neutral: int) -> str:
    """What a firing rate of 0% or 100% means with these set sizes: its exact interval."""
    from spectrascope.core.stats.binomial import DEFINITION, exact_ci

    sizes = [n_concept, n_neutral]
    none_high = exact_ci([0, 0], sizes)[1]  # the upper end for 0 of n
    all_low = exact_ci(sizes, sizes)[0]  # the lower end for n of n
    return (f"Every rate carries its {DEFINITION} in the JSON (rate_concept_ci95, rate_neutral_ci95); with "
            f"{n_concept} / {n_neutral} prompts a rate shown as 0% is [0%, {100 * none_high[0]:.1f}%] / [0%, "
            f"{100 * none_high[1]:.1f}%] and 100% is [{100 * all_low[0]:.1f}%, 100%] / [{100 * all_low[1]:.1f}%, 100%]")


def to_dict(result: PairingResult, n_candidates: int = 20) -> dict[str, Any]:
    from spectrascope.core.stats.binomial import DEFINITION, pair as ci_pair, rate_ci

    c = result.contrast
    coarse = c.stats["coarse"]
    lab = result.labels

    def stat_row(stats, role, i):
        rc, rn = (rate_ci(rate[i], n) for rate, n in ((stats.rate_concept, c.n_concept),
                                                       (stats.rate_neutral, c.n_neutral)))
        return {"feature": i, "mean_concept": round(float(stats.mean_concept[i]), 5),
                "mean_neutral": round(float(stats.mean_neutral[i]), 5),
                "rate_concept": round(float(stats.rate_concept[i]), 4),
                "rate_neutral": round(float(stats.rate_neutral[i]), 4),
                "rate_concept_ci95": ci_pair(*rc), "rate_neutral_ci95": ci_pair(*rn),
                "auroc": round(float(stats.auroc[i]), 5),
                "selectivity": round(float(stats.selectivity[i]), 5), "always_on": bool(stats.always_on[i]),
                "label": lab.get(role, {}).get(i, ""),
                "url": f"{result.neuronpedia[role]}/{i}" if role in result.neuronpedia else None}

    return {
        "format": "spectrascope-pairing-v1",
        "aggregate": c.settings.aggregate,
        "contrast_settings": c.settings.to_dict(),
        "settings": result.settings.to_dict(),
        "info": c.info,
        "cache_key": c.key,
        "cached": c.cached,
        "n_concept": c.n_concept,
        "n_neutral": c.n_neutral,
        "selectivity_definition": SELECTIVITY_DEFINITION,
        "rate_definition": RATE_DEFINITION,
        "rate_ci_definition": DEFINITION + " of each firing rate (its count of prompts over the set's size)",
        "training_budgets": budgets(result),
        "candidates": [stat_row(coarse, "coarse", i) for i in coarse.ranked(n_candidates, "out")],
        "top_fine": [stat_row(c.stats["fine"], "fine", i) for i in c.stats["fine"].ranked(n_candidates, "out")],
        "always_on_definition": ALWAYS_ON_DEFINITION,  # left out of candidates, top_fine and the anchor choice
        "always_on_left_out": {role: {"count": int(c.stats[role].always_on.sum()),
                                      "most_selective": [stat_row(c.stats[role], role, i)
                                                         for i in c.stats[role].ranked(5, "only")]}
                               for role in ("coarse", "fine")},
        "anchors": [{**stat_row(coarse, "coarse", a), **_anchor_checks(result, a), "counts": result.pairings[a].counts(),
                     "sub_features": result.pairings[a].sub_features(),
                     "pairs": [{**asdict(p), "selectivity": round(float(c.stats["fine"].selectivity[p.fine]), 5),
                                "label": lab.get("fine", {}).get(p.fine, ""),
                                "url": f"{result.neuronpedia['fine']}/{p.fine}" if "fine" in result.neuronpedia else None}
                               for p in result.pairings[a].pairs(result.settings.max_rows)]}
                    for a in result.anchors],
        "heatmap": {"anchors": result.anchors, "fine": result.matched_fine(),
                    "cosine": np.round(result.heatmap(), 4).tolist()},
        "verdict": result.verdict.to_dict(),
        "confounds": list(result.confounds),
        "checks": result.checks.to_dict() if result.checks is not None else None,
    }


def _anchor_checks(result: PairingResult, a: int) -> dict[str, Any]:
    """An anchor's selectivity interval and concept check, for its row of the export."""
    checks = result.checks
    ci = checks.ci.get(a) if checks is not None else None
    check = checks.anchors.get(a) if checks is not None else None
    return {"selectivity_ci95": list(ci.to_dict()["selectivity_ci95"]) if ci else None,
            "concept_check": check.to_dict() if check else None}


def _budgets_sentence(found: Mapping[str, Any]) -> str:
    """The SAEs' training budgets side by side, as a sentence of the report."""
    from spectrascope.core.analysis.sae_info import budgets_line

    return sentence(budgets_line(dict(found)))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _verdict_evidence(v: Verdict, settings: Mapping[str, Any]) -> list[str]:
    """The Markdown lines that weigh the verdict: permutation test, sub-feature test, threshold grid."""
    from spectrascope.core.stats.permutation import STATISTIC

    lines = [f"Permutation test: {v.permutation_text}." + (f" Statistic: {STATISTIC}." if v.permutation else ""), "",
             f"Sub-features: {v.to_dict()['hierarchy_definition']}.", ""]
    if v.grid is not None:
        lines += [f"Threshold sensitivity: {v.grid.text}; the best anchor's sub-feature count at each cosine x "
                  f"correlation threshold (a cell says GO for each N <= its count; the current setting in bold):", "",
                  *v.grid.markdown((settings["cos_threshold"], settings["corr_threshold"])), ""]
    return lines


def to_markdown(result: PairingResult) -> str:
    d = to_dict(result)
    s = d["settings"]
    lines = [
        "# Coarse-to-fine pairing report", "",
        f"Model `{d['info'].get('model', '?')}` · {d['n_concept']} concept / {d['n_neutral']} neutral prompts · "
        f"per-prompt **{d['aggregate']}** activation (BOS and pads excluded) · "
        f"thresholds: cosine >= {s['cos_threshold']}, correlation >= {s['corr_threshold']}", "",
        _budgets_sentence(d["training_budgets"]), "",
        f"**Verdict: {result.verdict.headline}**", "",
        *_verdict_evidence(result.verdict, s),
        f"Null model: {result.verdict.null.text if result.verdict.null else 'not computed'}.", "",
        *([f"Confounds: {'; '.join(result.confounds)}.", ""] if result.confounds else
          ["Confounds: none found (sentence endings and final token, quotes, digits, brackets, length, capitalised "
           "words, vocabulary overlap; punctuation features).", ""]),
        *(result.checks.markdown() if result.checks is not None else []),
        f"Selectivity = {d['selectivity_definition']}.", "",
        *([f"Neuronpedia: " + "; ".join(f"{role} {base}/<feature>" for role, base in result.neuronpedia.items()), ""]
          if result.neuronpedia else []),
        f"{sentence(d['rate_definition'])} {rate_interval_note(d['n_concept'], d['n_neutral'])}.", "",
        "## Anchors (coarse)", "",
        "| feature | mean concept | mean neutral | fires c/n | selectivity | 95% CI | on concept words | sub-features "
        "| label |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    coarse = result.contrast.stats["coarse"]
    for a in d["anchors"]:
        cells = coarse.cells(a["feature"])  # the pane's and the CLI's text for the same numbers
        extra = result.checks.cells(a["feature"]) if result.checks is not None else ("–", "–")
        lines.append(f"| {a['feature']} | {cells['mean_concept']} | {cells['mean_neutral']} | {cells['rates']} "
                     f"| {cells['selectivity']} | {extra[0]} | {extra[1]} | {a['counts']['sub-feature']} "
                     f"| {_md(a['label'])} |")
    for a in d["anchors"]:
        lines += ["", f"## Coarse #{a['feature']}: fine features", "",
                  f"counts: {', '.join(f'{k} {v}' for k, v in a['counts'].items())}", "",
                  "| fine | cosine | correlation | P(coarse \\| fine) | P(fine \\| coarse) | class | label |",
                  "|---:|---:|---:|---:|---:|---|---|"]
        for p in a["pairs"]:
            nest = [_share(p.get(k)) for k in ("p_coarse_given_fine", "p_fine_given_coarse")]
            lines.append(f"| {p['fine']} | {p['cosine']:.3f} | {p['correlation']:.3f} | {nest[0]} | {nest[1]} "
                         f"| {p['cls']} | {_md(p['label'])} |")
    return "\n".join(lines + _top_fine_markdown(result, d)) + "\n"


ALWAYS_ON_DEFINITION = ("always on = fires on >= 90% of all prompts of the run (both sets): selective by magnitude "
                        "alone, left out of the rankings and the anchor choice (pair one with --anchor)")


def _top_fine_markdown(result: PairingResult, d: Mapping[str, Any]) -> list[str]:
    """The fine SAE's most selective features, whether or not they pair with an anchor, and the always-on
    latents left out of the rankings."""
    fine = result.contrast.stats["fine"]
    lines = ["", "## Most selective fine features", "",
             "Ranked by selectivity alone: the sharpest concept features, whether or not they pair with an anchor. "
             "Labels: the firing token of the top contexts (k/n: how many share its lemma; \"mixed\" when none has "
             "most) and how often it fires.", "",
             "| fine | mean concept | mean neutral | fires c/n | selectivity | label |", "|---:|---:|---:|---:|---:|---|"]
    for row in d["top_fine"]:
        cells = fine.cells(row["feature"])
        lines.append(f"| {row['feature']} | {cells['mean_concept']} | {cells['mean_neutral']} | {cells['rates']} "
                     f"| {cells['selectivity']} | {_md(row['label'])} |")
    for role, left in d["always_on_left_out"].items():
        if left["count"]:
            top = ", ".join(f"#{r['feature']} ({r['selectivity']:.3f}, {_md(r['label']) or 'unlabelled'})"
                            for r in left["most_selective"])
            lines += ["", f"⚑ {left['count']} always-on {role} latents left out of the rankings "
                          f"({d['always_on_definition']}); the most selective: {top}."]
    return lines


def export(result: PairingResult, path: str | Path) -> Path:
    """Write the report as JSON (.json) or Markdown (anything else), atomically."""
    path = Path(path)
    text = json.dumps(to_dict(result), indent=1, ensure_ascii=False) if path.suffix == ".json" else to_markdown(result)
    atomic_write(path, text)
    return path
