"""Steering with SAE feature directions during generation, configuration sweeps, effect vs cost.

Two methods, both applied by a hook on the residual stream at the SAE's layer
(`blocks.L.hook_resid_post`) on every forward of the generation loop:

  * "add":   x <- x + sum_i strength_i * unit_i * u_i, where u_i = W_dec[f_i] / |W_dec[f_i]|
             is the feature's unit decoder direction.
  * "clamp": z = sae.encode(x); x <- x + sum_i (target_i - z[f_i]) * W_dec[f_i] with
             target_i = strength_i * typical_act_i: the reconstruction with the feature set to
             the target plus the unchanged SAE error. Re-encoding gives exactly the target when
             W_enc[:, f] . W_dec[f] = 1 (a trained SAE is close; see the tests). All clamp deltas
             are computed from the same incoming x.

Strength unit (what "strength 1" means), per feature, recorded in `FeatureUnit.basis`:

  * unit="max_act" (default): the feature's typical activation = its MAX activation on held-out
    text, from the SAE's labels.json (`max_act`) when the session's SAE is an embedded one, else
    measured on `CALIBRATION_TEXT` (max over tokens, BOS excluded). Strength 1 (add) adds the
    vector the feature writes when it fires at that max: max_act * |W_dec[f]| along u. Strength 1
    (clamp) pins the activation to that max. A feature that never fires on the calibration text
    falls back to the residual-norm unit (basis says so).
  * unit="resid_norm": the mean L2 norm of the residual at that layer over the calibration text
    (BOS excluded). Strength 1 adds a vector as long as a typical residual.

Positions: "all" steers every position (the prompt in the prefill, then every generated token);
"generated" steers only the positions whose output is a new token: the last prompt position
(it predicts the first generated token) and every generated token fed back.

Reproducibility: token i of the run with seed s is drawn with `step_seed(s, i)` from
`LogitsView(logits).apply(settings)` exactly like `generation.Stepper`, so the baseline and every
steered configuration with the same seed share their random draws, and reruns are identical.

Metrics per run, all read back WITHOUT hooks (one forward of prompt + generation):
  * concept activation: mean activation of the concept feature (a coarse feature) over the
    generated positions, encoded by its SAE; each token's own activation is kept too
    (`SteeredRun.concept_trace`: where the feature fired in the output);
  * concept words: which words of a list occur (case-insensitive, word boundaries, any of a word's
    forms: "French" also counts France and Frenchmen, see core/analysis/word_forms.py); by default
    the words the concept feature fires on most (its label's top contexts) and its whole-word
    promoted tokens (`concept_words`), never a fixed list;
  * perplexity: exp(mean NLL of the generated tokens) under the unsteered model (T=1 logits).
A cell (configuration x strength) reports the mean concept activation over runs, the share of
runs containing a concept word, and the token-weighted perplexity exp(sum NLL / sum tokens), each
with a 95% interval over seeds (`Cell.ci`): percentile bootstrap, except the share's, which is the
exact binomial (Clopper-Pearson) interval. `SteeringReport.matched_cost`
compares two configurations at their best strengths within one perplexity budget, paired by seed.

The edits travel as plain data (`core.plan`) with every `Session.forward` of the generation, so a
keystroke forward from another pane between two steps can neither see nor remove them.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from spectrascope.core.assets import PROMPTS_DIR
from spectrascope.core.records import Record
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.engine.plan import AddFeature, ClampFeature, Edit
from spectrascope.core.engine.values import CALIBRATION_TEXT  # the steering unit is measured on it

# torch (and core.session, which imports it) load lazily inside the functions that run the model:
# the UI parses features and concept words with this module before the model has loaded.
if TYPE_CHECKING:
    import torch

    from spectrascope.core.engine.session import Session

METHODS = ("add", "clamp")
POSITIONS = ("all", "generated")
UNITS = ("max_act", "resid_norm")
CONCEPT_WORDS_DIR = PROMPTS_DIR / "concept_words"
DEFAULT_CONCEPT_WORDS = CONCEPT_WORDS_DIR / "france.txt"



class SteeringError(ValueError):
    """A feature, strength or setting cannot be used as given; the message says why."""


# |strength| in the feature's unit (multiples of its max activation by default), 0 meaning off.
# Beyond 100x a feature's strongest firing the text is already noise, and 1e308 overflowed the
# residual to inf (then "logits contain NaN"); below 0.001 nothing measurable changes and the
# number only prints badly (1e-320 showed as 9.99989e-). Sweep multipliers share the range.
STRENGTH_MIN, STRENGTH_MAX = 0.001, 100.0
STRENGTH_RANGE_TEXT = f"0 or {STRENGTH_MIN:g} to {STRENGTH_MAX:g} in size (either sign)"


def check_strength(value: float, what: str) -> float:
    """`value` if it is a usable strength (or sweep multiplier), else a SteeringError naming the range."""
    if not math.isfinite(value) or not (value == 0 or STRENGTH_MIN <= abs(value) <= STRENGTH_MAX):
        raise SteeringError(f"{what} {value!r} is out of range: use {STRENGTH_RANGE_TEXT}.")
    return float(value)


def format_strength(value: float) -> str:
    """At most 4 significant digits: short enough for any column (the range keeps it so)."""
    return f"{value:.4g}"


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class SteerFeature(Record):  # a Record: it travels in the view's Spec
    role: str  # "coarse" or "fine": which of the session's SAEs
    id: int
    strength: float = 1.0  # in the feature's unit (see module doc)

    def label(self) -> str:
        return f"{self.role}:{self.id}:{format_strength(self.strength)}"


def parse_feature(text: str, default_strength: float = 1.0) -> SteerFeature:
    """`coarse:123` or `fine:77:2.5` -> SteerFeature (format only; see `validate_features`)."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise SteeringError(f"Bad feature {text!r}: write ROLE:ID or ROLE:ID:STRENGTH, e.g. coarse:123:4.")
    role, fid = parts[0].strip().lower(), parts[1].strip()
    if not fid.isdigit():
        raise SteeringError(f"Bad feature id in {text!r}: {fid!r} is not a whole number >= 0.")
    strength = default_strength
    if len(parts) == 3:
        try:
            strength = float(parts[2])
        except ValueError:
            raise SteeringError(f"Bad strength in {text!r}: {parts[2]!r} is not a number.") from None
        check_strength(strength, f"Strength in {text.strip()!r}:")
    return SteerFeature(role, int(fid), strength)


def parse_features(text: str) -> list[SteerFeature]:
    """Space- or comma-separated features: `coarse:123:4 fine:77:2`."""
    items = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if not items:
        raise SteeringError("No features given: type e.g. coarse:123:4 fine:77:2.")
    return [parse_feature(t) for t in items]


def validate_features(session: Session, features: Sequence[SteerFeature]) -> list[SteerFeature]:
    if not features:
        raise SteeringError("No features to steer with.")
    for f in features:
        if f.role not in session.saes:
            have = ", ".join(session.saes) or "none loaded"
            raise SteeringError(f"No {f.role!r} SAE in this session (roles: {have}).")
        width = int(session.saes[f.role].cfg.d_sae)
        if not 0 <= f.id < width:
            raise SteeringError(f"Feature {f.role}:{f.id} does not exist: the {f.role} SAE has 0..{width - 1}.")
        check_strength(f.strength, f"Strength of {f.role}:{f.id}:")
    return list(features)


@dataclass(frozen=True)
class FeatureUnit(Record):  # a Record: a session file keeps it (SteeringReport.to_state)
    """What strength 1 of one feature means, in residual-stream terms."""

    role: str
    id: int
    hook: str
    basis: str  # "max_act (labels.json)", "max_act (calibration)", "resid_norm", "resid_norm (feature silent)"
    typical_act: float  # activation that strength 1 stands for (clamp target per unit of strength)
    dec_norm: float  # |W_dec[f]|
    scale: float  # residual norm added per unit of strength (add): typical_act * dec_norm or resid norm


# --------------------------------------------------------------------------- units


def _shipped_max_act(session: Session, role: str, feature: int) -> float | None:
    """The feature's `max_act` from the SAE's shipped labels.json, through the session's labels."""
    labels = session.labels.get(role)
    lat = labels.shipped.get(int(feature)) if labels is not None else None
    value = lat.get("max_act") if lat else None
    return float(value) if value is not None else None


def feature_units(
    session: Session,
    features: Sequence[SteerFeature],
    unit: str = "max_act",
    calibration: str = CALIBRATION_TEXT,
) -> dict[tuple[str, int], FeatureUnit]:
    """Per (role, id): the unit its strength is measured in (see module doc)."""
    import torch

    if unit not in UNITS:
        raise SteeringError(f"Unknown unit {unit!r}: use one of {', '.join(UNITS)}.")
    validate_features(session, features)
    hooks = {f.role: session.sae_hook(f.role) for f in features}
    ids, _ = session.tokenize(calibration)
    resid = session.forward(ids, capture=sorted(set(hooks.values())), keep_logits=0).resid
    out: dict[tuple[str, int], FeatureUnit] = {}
    codes_by_role: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for f in features:
            sae = session.sae(f.role)
            hook = hooks[f.role]
            x = resid[hook][0, 1:].to(sae.W_enc.dtype)  # (T-1, d): BOS excluded
            norm = float(x.float().norm(dim=-1).mean())
            dec_norm = float(sae.W_dec[f.id].float().norm())
            if unit == "resid_norm":
                out[(f.role, f.id)] = FeatureUnit(f.role, f.id, hook, "resid_norm", norm / max(dec_norm, 1e-12),
                                                  dec_norm, norm)
                continue
            shipped = _shipped_max_act(session, f.role, f.id)
            if shipped is not None and shipped > 0:
                act, basis = shipped, "max_act (labels.json)"
            else:
                if f.role not in codes_by_role:
                    codes_by_role[f.role] = sae.encode(x.to(sae.W_enc.device)).float().cpu()  # (T-1, F)
                act, basis = float(codes_by_role[f.role][:, f.id].max()), "max_act (calibration)"
            if act > 0:
                out[(f.role, f.id)] = FeatureUnit(f.role, f.id, hook, basis, act, dec_norm, act * dec_norm)
            else:
                out[(f.role, f.id)] = FeatureUnit(f.role, f.id, hook, "resid_norm (feature silent)",
                                                  norm / max(dec_norm, 1e-12), dec_norm, norm)
    return out


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True)
class SteeringSpec:
    features: tuple[SteerFeature, ...]
    method: str = "add"
    positions: str = "all"

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        if self.method not in METHODS:
            raise SteeringError(f"Unknown method {self.method!r}: use add or clamp.")
        if self.positions not in POSITIONS:
            raise SteeringError(f"Unknown positions {self.positions!r}: use all or generated.")

    def scaled(self, factor: float) -> "SteeringSpec":
        return replace(self, features=tuple(replace(f, strength=f.strength * factor) for f in self.features))

    def edits(self, units: dict[tuple[str, int], FeatureUnit], prompt_len: int) -> tuple[Edit, ...]:
        """The plain-data edits `Session.forward` applies on every forward of a generation.

        "generated" starts at the last prompt position: its output is the first new token."""
        start = 0 if self.positions == "all" else max(prompt_len - 1, 0)
        if self.method == "add":
            return tuple(AddFeature(f.role, f.id, f.strength * units[(f.role, f.id)].scale, start)
                         for f in self.features)
        return tuple(ClampFeature(f.role, f.id, f.strength * units[(f.role, f.id)].typical_act, start)
                     for f in self.features)



# --------------------------------------------------------------------------- metrics


def load_concept_words(path: str | Path = DEFAULT_CONCEPT_WORDS) -> list[str]:
    """One word or phrase per line; blank lines and lines starting with # are ignored."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line)
    return words


def concept_pattern(words: Sequence[str]) -> re.Pattern | None:
    """One pattern for every form of `words` (core/analysis/word_forms.py: "French" also finds France,
    Frenchman, Frenchmen; "lawyer" also lawyers), case-insensitive, on whole words."""
    from spectrascope.core.analysis.word_forms import forms

    every = {f for w in words for f in forms(w)}
    if not every:
        return None
    # Longest first so a phrase wins over a word inside it; no word character may touch either
    # end, so "Paris" does not match inside "Parisian" (list "Parisian" too if it should count).
    alternatives = "|".join(re.escape(w) for w in sorted(every, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def match_concept(text: str, words: Sequence[str] | re.Pattern | None) -> list[str]:
    """Concept words found in `text` (any of their forms, case-insensitive, whole words) as written there,
    lower-cased, in order, unique."""
    pattern = concept_pattern(words) if not isinstance(words, (re.Pattern, type(None))) else words
    if pattern is None:
        return []
    seen: dict[str, None] = {}
    for m in pattern.finditer(text):
        seen.setdefault(m.group(0).lower(), None)
    return list(seen)


def words_from_label(session: Session, concept: tuple[str, int]) -> list[str]:
    """The words the concept feature fires on most (the marked tokens of its top snippets), so the
    word count measures *this* feature's concept; a SteeringError when its label has no snippets."""
    words = _context_words(_label_of(session, concept))
    if not words:
        role, feature = concept
        raise SteeringError(f"{role}:{feature} has no labelled contexts to take concept words from: "
                            f"give a word list (steer --words FILE, or the pane's words field).")
    return words


PROMOTED_WORDS = 4  # at most this many promoted tokens join the concept words (the lens's strongest first)


def concept_words(session: Session, concept: tuple[str, int]) -> tuple[list[str], str]:
    """The default concept words and where they came from: the concept feature's top contexts (the tokens
    it fires on most) and its promoted tokens that are whole words (a word-initial token of 3+ letters:
    word pieces such as "oinette" and punctuation are left out). Matching adds each word's other forms
    (core/analysis/word_forms.py: "French" also counts France). A SteeringError when there are none."""
    role, feature = concept
    label = _label_of(session, concept)
    context = _context_words(label)
    seen = {w.casefold() for w in context}
    promoted = [w for w in _promoted_words(label) if w.casefold() not in seen][:PROMOTED_WORDS]
    if not context and not promoted:
        raise SteeringError(f"{role}:{feature} has no labelled contexts or whole-word promoted tokens to take "
                            f"concept words from: give a word list (steer --words FILE, or the pane's words field).")
    parts = [name for name, words in (("top contexts", context), ("promoted tokens", promoted)) if words]
    return context + promoted, f"{role}:{feature}'s {' and '.join(parts)}"


def _label_of(session: Session, concept: tuple[str, int]) -> Any:
    labels = session.labels.get(concept[0])
    return labels.get(concept[1]) if labels is not None else None


def _context_words(label: Any) -> list[str]:
    words = [t.strip() for t in (label.marked_tokens() if label else []) if sum(c.isalpha() for c in t) >= 2]
    return list(dict.fromkeys(words))


def _promoted_words(label: Any) -> list[str]:
    tokens = label.promoted if label else ()
    words = [t.strip() for t in tokens if t[:1].isspace() and t.strip().isalpha() and len(t.strip()) >= 3]
    return list(dict.fromkeys(words))


def perplexity(nll: Sequence[float]) -> float:
    """exp(mean NLL): a run's perplexity, or a cell's over all its tokens (token-weighted)."""
    return math.exp(sum(nll) / len(nll)) if nll else float("nan")


@dataclass(frozen=True)
class Readback:
    concept_act: float | None  # mean concept-feature activation over the generated positions
    nll: tuple[float, ...]  # per generated token, nats, under the unsteered model
    concept_trace: tuple[float, ...] = ()  # the concept feature's activation at each generated token

    @property
    def perplexity(self) -> float:
        return perplexity(self.nll)


def readback(
    session: Session, prompt_ids: list[int], gen_ids: Sequence[int], concept: tuple[str, int] | None
) -> Readback:
    """One unsteered forward of prompt + generation: NLL of each generated token, the concept
    feature's activation at each generated token and its mean. Unsteered on purpose: in the steered
    forward the added direction itself would light the feature."""
    import torch

    if not gen_ids:
        return Readback(None, ())
    ids = list(prompt_ids) + list(gen_ids)
    p = len(prompt_ids)
    hooks = []
    if concept is not None:
        sae = session.sae(concept[0])
        hooks = [session.sae_hook(concept[0])]
    out = session.forward(ids, capture=hooks, keep_logits=len(gen_ids) + 1)
    resid = {h: x[0] for h, x in out.resid.items()}
    logits = out.logits[0]  # (n+1, V)
    with torch.inference_mode():
        logp = torch.log_softmax(logits[:-1], dim=-1)  # (n, V): positions p-1 .. T-2
        target = torch.tensor(list(gen_ids), device=logp.device)
        nll = (-logp.gather(1, target[:, None])[:, 0]).cpu().tolist()
        act, trace = None, ()
        if concept is not None:
            x = resid[hooks[0]][p:].to(sae.W_enc.dtype)  # (n, d) generated positions
            z = sae.encode(x)[:, concept[1]].float().cpu()  # (n,)
            act, trace = float(z.mean()), tuple(z.tolist())
    return Readback(act, tuple(nll), trace)


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class Piece(Record):  # a Record: a session file keeps it (SteeringReport.to_state)
    """One unit of generated text as shown: a token's text, or a control token's name (`special`)."""

    text: str
    special: bool = False
    tokens: int = 1  # how many token ids it shows (a multi-byte character's byte tokens make one piece)


# A character split over byte tokens decodes to U+FFFD until its last byte: up to 4 tokens are joined.
_MAX_BYTES = 4


def token_pieces(session: Session, ids: Sequence[int]) -> tuple[Piece, ...]:
    """`ids` as display units: one per token (a multi-byte character's tokens make one unit), special
    tokens flagged, so a view can mark them and wrap text between units, never inside one."""
    out: list[Piece] = []
    pending: list[int] = []

    def flush() -> None:
        if pending:
            out.append(Piece(session.decode(pending), tokens=len(pending)))
            pending.clear()

    for i in ids:
        if session.is_special(i):
            flush()
            out.append(Piece(session.piece(i), True))
            continue
        pending.append(int(i))
        if "\ufffd" not in session.decode(pending) or len(pending) >= _MAX_BYTES:
            flush()
    flush()
    return tuple(out)


@dataclass(frozen=True)
class SteeredRun(Record):  # a Record: a session file keeps it (SteeringReport.to_state)
    config: str
    strength: float  # the sweep multiplier (1.0 = the features' own strengths)
    seed: int
    token_ids: tuple[int, ...]
    text: str
    concept_act: float | None
    concept_words: tuple[str, ...]
    nll: tuple[float, ...]
    pieces: tuple[Piece, ...] = ()  # token_pieces(token_ids): what a view shows, unit by unit
    concept_trace: tuple[float, ...] = ()  # per token id: the concept feature's unsteered readback

    @property
    def perplexity(self) -> float:
        return perplexity(self.nll)

    def piece_trace(self) -> tuple[float, ...]:
        """The concept trace per piece (the strongest of the tokens a piece shows); () without one."""
        if len(self.concept_trace) != sum(p.tokens for p in self.pieces):
            return ()
        out, i = [], 0
        for p in self.pieces:
            out.append(max(self.concept_trace[i:i + p.tokens]))
            i += p.tokens
        return tuple(out)

    @property
    def special_count(self) -> int:
        return sum(p.special for p in self.pieces)


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(runs: Sequence[Any], stat: Callable[[Sequence[Any]], float | None],
                 n: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `stat` over `runs` resampled with replacement (seeds are the
    unit of replication: each run is one seed). None with fewer than 2 runs."""
    import numpy as np

    if len(runs) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for idx in rng.integers(0, len(runs), size=(n, len(runs))):
        v = stat([runs[i] for i in idx])
        if v is not None:
            values.append(v)
    if not values:
        return None
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def share_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """The exact (Clopper-Pearson) interval of a proportion k/n; None with fewer than 2 trials."""
    from scipy.stats import binomtest

    if n < 2:
        return None
    ci = binomtest(k, n).proportion_ci(level, method="exact")
    return float(ci.low), float(ci.high)


def _mean_act(runs: Sequence["SteeredRun"]) -> float | None:
    acts = [r.concept_act for r in runs if r.concept_act is not None]
    return sum(acts) / len(acts) if acts else None


def _word_share(runs: Sequence["SteeredRun"]) -> float:
    return sum(1 for r in runs if r.concept_words) / len(runs) if runs else 0.0


def _pooled_perplexity(runs: Sequence["SteeredRun"]) -> float:
    return perplexity([x for r in runs for x in r.nll])


CELL_METRICS = {"concept_act": _mean_act, "concept_share": _word_share, "perplexity": _pooled_perplexity}


@dataclass(frozen=True)
class Cell(Record):  # a Record: a session file keeps it (SteeringReport.to_state)
    """One configuration at one sweep strength, over all seeds."""

    config: str
    strength: float
    features: tuple[SteerFeature, ...]  # with the strengths actually applied
    runs: tuple[SteeredRun, ...]

    @property
    def concept_act(self) -> float | None:
        return _mean_act(self.runs)

    @property
    def concept_share(self) -> float:
        return _word_share(self.runs)

    @property
    def perplexity(self) -> float:
        return _pooled_perplexity(self.runs)

    def ci(self, metric: str) -> tuple[float, float] | None:
        """95% interval of one of CELL_METRICS over this cell's seeds: the share of runs with a concept word
        is a binomial proportion, so its interval is the exact (Clopper-Pearson) one, which a percentile
        bootstrap is not: with 0 (or all) of the runs it would read [0, 0] ([1, 1]); the others bootstrap."""
        if metric == "concept_share":
            return share_ci(sum(1 for r in self.runs if r.concept_words), len(self.runs))
        return bootstrap_ci(self.runs, CELL_METRICS[metric])

    def summary(self) -> dict[str, Any]:
        return {"config": self.config, "strength": self.strength, "n_seeds": len(self.runs),
                **{m: getattr(self, m) for m in CELL_METRICS},
                **{f"{m}_ci95": self.ci(m) for m in CELL_METRICS}}


@dataclass(frozen=True)
class SteeringReport:
    prompt: str
    spec: SteeringSpec
    settings: SamplingSettings
    seeds: tuple[int, ...]
    tokens: int
    strengths: tuple[float, ...]
    concept: tuple[str, int] | None
    units: dict[tuple[str, int], FeatureUnit]
    cells: tuple[Cell, ...]
    seconds: float = 0.0
    words: tuple[str, ...] = ()
    words_source: str = "given"

    def cell(self, config: str, strength: float | None = None) -> Cell:
        for c in self.cells:
            if c.config == config and (strength is None or c.config == "baseline" or c.strength == strength):
                return c
        raise KeyError(config)

    @property
    def configs(self) -> list[str]:
        return list(dict.fromkeys(c.config for c in self.cells))

    def curve(self, config: str) -> list[Cell]:
        """Cells of one configuration by ascending strength; the baseline stands in at strength 0."""
        cells = [c for c in self.cells if c.config == config]
        if config != "baseline" and 0.0 not in [c.strength for c in cells]:
            cells = [c for c in self.cells if c.config == "baseline"] + cells
        return sorted(cells, key=lambda c: c.strength)

    def targeting(self, budget: float = 1.5) -> list[dict[str, Any]]:
        """Per steered configuration: its strongest concept activation among the cells whose
        perplexity stays within `budget` x the baseline's (None when none does). Comparing these
        rows answers "which configuration buys the most concept for a given loss of fluency"."""
        limit = budget * self.cell("baseline").perplexity
        rows = []
        for name in self.configs:
            if name == "baseline":
                continue
            ok = [c for c in self.cells if c.config == name and c.perplexity <= limit and c.concept_act is not None]
            best = max(ok, key=lambda c: (c.concept_act, c.concept_share), default=None)
            rows.append({"config": name, "budget": budget, **(best.summary() if best else
                         {"strength": None, "concept_act": None, "concept_share": None, "perplexity": None})})
        return rows

    def matched_cost(self, a: str = "coarse", b: str = "coarse+fine", budget: float = 1.5) -> dict[str, Any] | None:
        """`b` against `a`, each at its best strength within the same perplexity budget (targeting):
        the paired differences over the shared seeds of concept activation and word share, and the
        perplexity ratio, each with a 95% bootstrap interval. None when either has no such strength."""
        picks = {row["config"]: row["strength"] for row in self.targeting(budget)}
        if picks.get(a) is None or picks.get(b) is None:
            return None
        ca, cb = self.cell(a, picks[a]), self.cell(b, picks[b])
        pairs = list(zip(ca.runs, cb.runs))  # same seeds, same order

        def diff(metric: str) -> Callable[[Sequence[Any]], float | None]:
            def stat(sample: Sequence[Any]) -> float | None:
                va, vb = CELL_METRICS[metric]([p[0] for p in sample]), CELL_METRICS[metric]([p[1] for p in sample])
                if va is None or vb is None:
                    return None
                return vb / va if metric == "perplexity" else vb - va
            return stat

        out: dict[str, Any] = {"a": a, "b": b, "budget": budget, "strength_a": picks[a], "strength_b": picks[b],
                               "n_seeds": len(pairs)}
        for metric, name in (("concept_act", "delta_concept_act"), ("concept_share", "delta_concept_share"),
                             ("perplexity", "perplexity_ratio")):
            out[name] = diff(metric)(pairs)
            out[f"{name}_ci95"] = bootstrap_ci(pairs, diff(metric))
        return out

    def to_state(self) -> dict[str, Any]:
        """Everything the report holds, for a session file: `from_state` gives the same report back (`to_dict`
        is `steer --json`, which leaves each token's NLL and the pieces out)."""
        concept = None if self.concept is None else SteerFeature(*self.concept)
        return SavedSteering(
            self.prompt, self.spec.features, self.spec.method, self.spec.positions, self.settings.to_dict(),
            self.seeds, self.tokens, self.strengths, concept, tuple(self.units.values()), self.cells, self.seconds,
            self.words, self.words_source).to_dict()

    @classmethod
    def from_state(cls, data: dict[str, Any], **more: Any) -> "SteeringReport":
        """The report `to_state` wrote; a bad field is a ValueError naming it (`more`: a subclass's fields)."""
        saved = SavedSteering.from_dict(data)
        if not isinstance(saved.settings, dict):
            raise ValueError(f"SavedSteering.settings: expected the sampling knobs, not {saved.settings!r}.")
        if not any(c.config == "baseline" for c in saved.cells) or not all(c.runs for c in saved.cells):
            raise ValueError("SteeringReport.cells: a baseline cell and runs in every cell are needed.")
        concept = None if saved.concept is None else (saved.concept.role, saved.concept.id)
        return cls(saved.prompt, SteeringSpec(saved.features, saved.method, saved.positions),
                   SamplingSettings.from_dict(saved.settings), saved.seeds, saved.tokens, saved.strengths, concept,
                   {(u.role, u.id): u for u in saved.units}, saved.cells, saved.seconds, saved.words,
                   saved.words_source, **more)

    def to_dict(self) -> dict[str, Any]:
        return {
            "targeting": self.targeting(),
            "matched_cost": self.matched_cost(),
            "words": list(self.words),
            "words_source": self.words_source,
            "prompt": self.prompt,
            "method": self.spec.method,
            "positions": self.spec.positions,
            "features": [asdict(f) for f in self.spec.features],
            "sampling": self.settings.to_dict(),
            "seeds": list(self.seeds),
            "tokens": self.tokens,
            "strengths": list(self.strengths),
            "concept": list(self.concept) if self.concept else None,
            "units": [asdict(u) for u in self.units.values()],
            "cells": [
                {**c.summary(), "features": [asdict(f) for f in c.features],
                 "runs": [{"seed": r.seed, "text": r.text, "token_ids": list(r.token_ids),
                           "special_tokens": r.special_count,
                           "concept_act": r.concept_act, "concept_trace": list(r.concept_trace),
                           "concept_words": list(r.concept_words),
                           "perplexity": r.perplexity} for r in c.runs]}
                for c in self.cells
            ],
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class SavedSteering(Record):
    """A SteeringReport as a session file keeps it: typed fields, so a hand-edited file's bad value is named."""

    prompt: str
    features: tuple[SteerFeature, ...]
    method: str
    positions: str
    settings: dict  # SamplingSettings.to_dict()
    seeds: tuple[int, ...]
    tokens: int
    strengths: tuple[float, ...]
    concept: SteerFeature | None  # (role, id); its strength unused
    units: tuple[FeatureUnit, ...]
    cells: tuple[Cell, ...]
    seconds: float
    words: tuple[str, ...]
    words_source: str


def configurations(features: Sequence[SteerFeature]) -> dict[str, tuple[SteerFeature, ...]]:
    """baseline, coarse only, fine only, coarse + fine (those that have features)."""
    coarse = tuple(f for f in features if f.role == "coarse")
    fine = tuple(f for f in features if f.role == "fine")
    other = tuple(f for f in features if f.role not in ("coarse", "fine"))
    out: dict[str, tuple[SteerFeature, ...]] = {"baseline": ()}
    if coarse:
        out["coarse"] = coarse
    if fine:
        out["fine"] = fine
    if coarse and fine:
        out["coarse+fine"] = coarse + fine
    if other or not (coarse or fine):
        out["all"] = tuple(features)
    return out


def default_concept(features: Sequence[SteerFeature]) -> tuple[str, int] | None:
    """The concept is read with the first coarse feature (or the first feature if none is coarse)."""
    for f in features:
        if f.role == "coarse":
            return (f.role, f.id)
    return (features[0].role, features[0].id) if features else None


def run_experiment(
    session: Session,
    prompt: str,
    features: Sequence[SteerFeature],
    settings: SamplingSettings | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    tokens: int = 20,
    strengths: Sequence[float] | None = None,
    method: str = "add",
    positions: str = "all",
    unit: str = "max_act",
    concept: tuple[str, int] | None = None,
    words: Sequence[str] | None = None,
    units: dict[tuple[str, int], FeatureUnit] | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[str, float | None], None] | None = None,
) -> SteeringReport:
    """Every configuration x strength x seed, same seeds everywhere, measured unsteered.

    `strengths` (a sweep) multiplies each feature's own strength; None = the own strengths once.
    The baseline does not depend on strength and is run once.
    """
    from spectrascope.core.engine.generation import generate
    from spectrascope.core.engine.session import Cancelled

    t0 = time.perf_counter()
    settings = (settings or SamplingSettings(temperature=1.0)).validate()
    features = validate_features(session, features)
    spec = SteeringSpec(tuple(features), method, positions)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise SteeringError("At least one seed is needed.")
    strengths = tuple(float(s) for s in (strengths if strengths is not None else (1.0,)))
    if not strengths:
        raise SteeringError("Sweep strengths must be finite numbers.")
    for s in strengths:
        check_strength(s, "Sweep multiplier")
    concept = concept if concept is not None else default_concept(features)
    if concept is not None:
        validate_features(session, [SteerFeature(concept[0], concept[1])])
    words_source = "given"
    if words is None:
        if concept is None:
            raise SteeringError("No concept feature to take words from: give a word list.")
        words, words_source = concept_words(session, concept)
    words = list(words)
    pattern = concept_pattern(words)
    prompt_ids, _ = session.tokenize(prompt)
    units = dict(units or {})
    missing = [f for f in features if (f.role, f.id) not in units]
    if missing:
        units.update(feature_units(session, missing, unit))
    configs = configurations(features)
    jobs = [("baseline", 0.0)] + [(name, s) for s in strengths if s != 0.0 for name in configs if name != "baseline"]
    total = len(jobs) * len(seeds) * tokens
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(f"{done[0]}/{total} tokens", done[0] / total)

    cells = []
    for name, strength in jobs:
        cell_spec = SteeringSpec(configs[name], method, positions).scaled(strength)
        edits = cell_spec.edits(units, len(prompt_ids))
        gens = generate(session, prompt_ids, settings, seeds, tokens, edits, cancel, tick)
        runs = []
        for seed, gen in zip(seeds, gens):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            ids = gen.generated_ids()
            rb = readback(session, prompt_ids, ids, concept)
            text = session.decode(ids)
            runs.append(SteeredRun(name, strength, seed, ids, text, rb.concept_act,
                                   tuple(match_concept(text, pattern)), rb.nll, token_pieces(session, ids),
                                   rb.concept_trace))
        cells.append(Cell(name, strength, cell_spec.features, tuple(runs)))
    return SteeringReport(prompt, spec, settings, seeds, tokens, strengths, concept, units, tuple(cells),
                          time.perf_counter() - t0, tuple(words), words_source)
