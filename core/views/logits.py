"""The Logits view: the next-token distribution after the knobs (temperature, top-k, top-p), the system-prompt
A/B, seeded runs and a generation's tokens, as one report.

`spectrascope logits` runs the model for it (`build`); the Logits pane assembles the same report from what it
already holds (`LogitsReport.of`, no model call), so the command, the pane's tables and its export agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from spectrascope.core.engine.values import Request, Token
from spectrascope.core.records import Record
from spectrascope.core.stats.knobs import SamplingSettings

if TYPE_CHECKING:
    from spectrascope.core.analysis.step_record import TokenRecord


@dataclass(frozen=True)
class LogitsSpec(Record):
    """What `spectrascope logits` is asked: the prompt, the knobs and which parts to add."""

    prompt: str
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None  # None (or 0) = off
    top_p: float = 1.0  # 1 = off
    seed: int = 0
    system: str | None = None  # compare with this system prompt (the A/B)
    runs: int = 0  # seeded runs, seeds seed..seed+runs-1
    steps: int = 20  # tokens per run, and generated for `features`
    top: int = 20  # rows of the distribution, and the A/B's top N
    features: bool = False  # generate `steps` tokens (seed `seed`) with each one's top SAE features

    def __post_init__(self) -> None:
        self.settings.validate()  # bad knobs: a ValueError before the model loads
        if self.top < 1 or self.runs < 0 or self.steps < 1:
            raise ValueError("--top and --steps must be at least 1, --runs at least 0.")

    @property
    def settings(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p, self.seed)


# ---- the report's parts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate(Record):
    """One next-token row: its logit, its probability before and after the knobs, the knob that cut it."""

    rank: int
    id: int
    token: str
    logit: float
    raw_p: float
    final_p: float
    excluded_by: str | None  # "top-k", "top-p", …; None: kept


@dataclass(frozen=True)
class NextToken(Record):
    """One next-token distribution after the knobs: survivors, entropies and the top rows, excluded ones included."""

    survivors: int
    vocab: int
    entropy_before: float
    entropy_after: float
    top: tuple[Candidate, ...]

    @classmethod
    def of(cls, dist: Any, piece: Callable[[int], str], top: int = 20) -> NextToken:
        """From a `sampling.Distribution` (already computed)."""
        return cls(dist.n_survivors, dist.vocab_size, dist.entropy_before, dist.entropy_after,
                   tuple(Candidate(rank, r.id, piece(r.id), r.logit, r.raw_p, r.final_p, r.excluded_by)
                         for rank, r in enumerate(dist.top(top), start=1)))


def rank_shift(rank_change: int | None, new_in_top: bool, dropped: bool) -> str:
    """How the system prompt moved a token: ↑3 (3 places up), ↓2, = ; ranked on one side only: new, dropped, –."""
    if rank_change is None:
        return "new" if new_in_top else "dropped" if dropped else "–"
    return "=" if rank_change == 0 else f"{'↑' if rank_change > 0 else '↓'}{abs(rank_change)}"


def top_status(new_in_top: bool, dropped: bool) -> str:
    """Where a token stands in the A/B's top N: only with the system prompt, only without it, or in both."""
    return "new in top" if new_in_top else "dropped" if dropped else "in both"


@dataclass(frozen=True)
class ABToken(Record):
    """One token of the A/B: its final probability and rank without and with the system prompt."""

    id: int
    token: str
    p_without: float
    p_with: float
    rank_without: int | None  # None: excluded by a knob
    rank_with: int | None
    rank_change: int | None  # rank_without - rank_with: positive = climbed with the system prompt
    new_in_top: bool  # in the top N with the system prompt only
    dropped: bool  # in the top N without it only

    @property
    def shift(self) -> str:
        return rank_shift(self.rank_change, self.new_in_top, self.dropped)

    @property
    def status(self) -> str:
        return top_status(self.new_in_top, self.dropped)


# Which distributions the A/B's KL compares (`sampling.compare` picks): the rows always show final p.
KL_BASIS_TEXT = {
    "final": "on the final distributions (after T, top-k, top-p: the p columns)",
    "raw": "on the raw distributions (T 1, no knobs: a knob cut tokens, and cut distributions' supports differ; "
           "the p columns are final)",
}


@dataclass(frozen=True)
class ABReport(Record):
    """A system-prompt A/B: KL both ways and the top tokens' rank shifts."""

    system: str
    kl_with_vs_without: float
    kl_without_vs_with: float
    kl_basis: str  # "final" or "raw": see KL_BASIS_TEXT
    kl_summary: str  # the KL line, word for word the pane's and the command's
    top_n: int
    rows: tuple[ABToken, ...]
    without: NextToken | None = None  # both distributions in full (the pane's export)
    with_system: NextToken | None = None

    @classmethod
    def of(cls, system: str, comp: Any, piece: Callable[[int], str], without: NextToken | None = None,
           with_system: NextToken | None = None) -> ABReport:
        """From a `sampling.ABComparison` (already computed), with both distributions where given."""
        summary = (f"KL(with ‖ without) {comp.kl_b_a:.3f} nats · KL(without ‖ with) {comp.kl_a_b:.3f} nats "
                   f"{KL_BASIS_TEXT[comp.kl_basis]}")
        rows = tuple(ABToken(r.token_id, piece(r.token_id), r.prob_a, r.prob_b, r.rank_a, r.rank_b, r.rank_change,
                             r.new_in_top_n, r.dropped_from_top_n) for r in comp.rows)
        return cls(system, comp.kl_b_a, comp.kl_a_b, comp.kl_basis, summary, comp.top_n, rows, without, with_system)

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        return {k: v for k, v in doc.items() if v is not None or k not in ("without", "with_system")}


@dataclass(frozen=True)
class SeededRun(Record):
    """One seeded continuation and the first step where it differs from the first run's."""

    seed: int
    text: str
    token_ids: tuple[int, ...]
    diverges_at: int | None  # None: the same as the first run

    @classmethod
    def of(cls, run: Any) -> SeededRun:
        """From a `generation.Run`."""
        return cls(run.seed, run.text, tuple(run.token_ids), run.diverges_at)


@dataclass(frozen=True)
class Move(Record):
    """One step of the pane's generation: the token and how it was chosen (greedy, sampled, picked)."""

    id: int
    token: str
    how: str


@dataclass(frozen=True)
class SavedStep(Record):
    """One step of the pane's generation as a session file keeps it: the token, how it was chosen and the knobs
    it was drawn with, so `replay` gives the same steps (and the same p, final p and rank) back."""

    id: int
    how: str
    temperature: float
    top_k: int | None
    top_p: float
    seed: int

    def __post_init__(self) -> None:
        if self.how not in ("greedy", "sampled", "picked"):
            raise ValueError(f"SavedStep.how: {self.how!r} is not greedy, sampled or picked.")
        self.settings  # bad knobs: a ValueError naming them

    @property
    def settings(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p, self.seed)

    @classmethod
    def of(cls, step: Any) -> SavedStep:
        """From a `generation.Step`."""
        knobs = step.dist.settings
        return cls(step.token_id, step.how, knobs.temperature, knobs.top_k, knobs.top_p, knobs.seed)


@dataclass(frozen=True)
class SavedLogits(Record):
    """What the Logits pane shows that took the model, as a session file keeps it: its generation's steps on
    `prompt` (`replay` takes them again) and the seeded runs with what they were computed for."""

    prompt: str = ""
    steps: tuple[SavedStep, ...] = ()
    runs: tuple[SeededRun, ...] | None = None
    runs_prompt: str = ""
    runs_knobs: str = ""

    @classmethod
    def of(cls, prompt: str, stepper: Any, runs: Sequence[Any] | None, basis: Any) -> SavedLogits:
        """From a `generation.Stepper` (or None), `generation.Run`s (or None) and what they were computed for
        (a `Basis`: prompt and knobs)."""
        steps = tuple(map(SavedStep.of, stepper.steps)) if stepper is not None else ()
        return cls(prompt, steps, None if runs is None else tuple(map(SeededRun.of, runs)),
                   *((basis.prompt, basis.knobs) if runs is not None else ()))

    def note(self) -> str:
        """What a restore does with it, in a few words: "3 steps fed again, 5 seeded runs as saved"."""
        parts = ([f"{len(self.steps)} steps fed again"] if self.steps else []) + (
            [f"{len(self.runs)} seeded runs as saved"] if self.runs is not None else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class LogitsReport:
    """The distribution after the knobs, with whichever of the A/B, the seeded runs and the generation were made.

    The command's report names the model and the prompt's tokens; the pane's has its steps and the A/B's two
    distributions in full. A part left out is None and absent from `to_dict`."""

    prompt: str
    settings: SamplingSettings
    next_token: NextToken
    model: str | None = None
    tokens: tuple[Token, ...] | None = None
    truncated: int | None = None
    seconds: float | None = None
    steps: tuple[Move, ...] | None = None
    system_ab: ABReport | None = None
    runs: tuple[SeededRun, ...] | None = None
    generation: tuple[TokenRecord, ...] | None = None  # each generated token's p, rank and top SAE features

    @classmethod
    def of(cls, prompt: str, settings: SamplingSettings, dist: Any, piece: Callable[[int], str], top: int = 20, *,
           system: str = "", ab: Any = None, full_ab: bool = False, runs: Sequence[Any] | None = None,
           steps: Sequence[Any] | None = None, generation: Sequence[TokenRecord] | None = None,
           result: Any = None, model: str | None = None, labels: Any = None) -> LogitsReport:
        """The report of what is already computed, no model call: `dist` a `sampling.Distribution`, `ab` a
        `generation.SystemAB` for `system` (full_ab: with both distributions), `runs` `generation.Run`s, `steps`
        a generation's `Step`s and `generation` their `TokenRecord`s (else, with `labels`, made from them with
        the labels known so far), `result` the prompt's `Result` on `model`."""
        if generation is None and steps is not None and labels is not None:
            from spectrascope.core.analysis.step_record import step_records

            generation = step_records(steps, piece, labels, compute_labels=False)
        full = full_ab and ab is not None
        both = (NextToken.of(ab.without, piece, top), NextToken.of(ab.with_system, piece, top)) if full else ()
        return cls(
            prompt, settings, NextToken.of(dist, piece, top), model,
            None if result is None else tuple(result.tokens),
            None if result is None else result.truncated,
            None if result is None else result.seconds,
            None if steps is None else tuple(Move(s.token_id, piece(s.token_id), s.how) for s in steps),
            None if ab is None else ABReport.of(system, ab.comparison, piece, *both),
            None if runs is None else tuple(SeededRun.of(r) for r in runs),
            None if generation is None else tuple(generation),
        )

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "model": self.model, "prompt": self.prompt, "settings": self.settings.to_dict(),
            "tokens": None if self.tokens is None else [{"id": t.id, "text": t.text} for t in self.tokens],
            "truncated": self.truncated, "seconds": self.seconds, **self.next_token.to_dict(),
            "steps": None if self.steps is None else [s.to_dict() for s in self.steps],
            "system_ab": None if self.system_ab is None else self.system_ab.to_dict(),
            "runs": None if self.runs is None else [r.to_dict() for r in self.runs],
            "generation": None if self.generation is None else [r.to_dict() for r in self.generation],
        }
        return {k: v for k, v in doc.items() if v is not None}


# ---- the model work: `build`, and the pane's jobs (each takes cancel= and progress=, as `Pane.run_job` calls it)
def step(session: Any, prompt: str, stepper: Any, settings: SamplingSettings, token_id: int | None = None,
         cancel: Any = None, progress: Any = None) -> Any:
    """`stepper` (a `generation.Stepper`; None: a new one on `prompt`) one token further, as a new Stepper:
    `token_id`, else greedy or a seeded sample."""
    from spectrascope.core.engine.generation import Stepper

    if stepper is not None:
        return _moved(stepper, lambda s: s.step(token_id=token_id, settings=settings))
    stepper = Stepper.start(session, prompt, settings, cancel=cancel)
    stepper.step(token_id=token_id, settings=settings)
    return stepper


def replay(session: Any, prompt: str, steps: Sequence[SavedStep], cancel: Any = None, progress: Any = None) -> Any:
    """A new Stepper on `prompt` with `steps` taken again (a saved session's generation): each token fed as it
    was chosen, under the knobs it was drawn with, so its distribution, p and rank are the ones shown then."""
    from spectrascope.core.engine.generation import Stepper
    from spectrascope.core.engine.values import Cancelled

    stepper = Stepper.start(session, prompt, steps[0].settings if steps else SamplingSettings(), cancel=cancel)
    for i, saved in enumerate(steps):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        stepper.step(token_id=saved.id, settings=saved.settings, cancel=cancel).how = saved.how
        if progress is not None:
            progress(f"step {i + 1} of {len(steps)}", (i + 1) / len(steps))
    return stepper


def back(stepper: Any, cancel: Any = None, progress: Any = None) -> Any:
    """`stepper` one step back, as a new Stepper: usually a cache crop, a rebuild needs the model."""
    return _moved(stepper, lambda s: s.back())


def _moved(stepper: Any, move: Callable[[Any], Any]) -> Any:
    """`move` applied to a copy of `stepper` with its own steps and logits that shares its KV cache (a deep copy
    would copy the cache on every step). A worker moves the copy while the UI still draws the original and has
    handed it to other panes; none of them reads the cache, and the UI adopts the copy when the job returns."""
    moved = stepper.branch()
    try:
        move(moved)
    except Exception:
        stepper.unshare()  # the shared cache may hold part of the failed move: the original rebuilds it
        raise
    return moved


def seeded(session: Any, prompt: str, settings: SamplingSettings, runs: int, steps: int, cancel: Any = None,
           progress: Any = None) -> list[Any]:
    """`runs` continuations of `steps` tokens, seeds settings.seed, settings.seed + 1, …; `generation.Run`s."""
    from spectrascope.core.engine.generation import seeded_runs

    return seeded_runs(session, prompt, settings, [settings.seed + i for i in range(runs)], steps, cancel)


def ab_companions(session: Any, prompt: str, system: str) -> tuple[Request, ...]:
    """The A/B's variants of `prompt`, for the prompt's own run to extend in its own forward."""
    from spectrascope.core.engine.generation import ab_companions as variants

    return variants(session, prompt, system) if system.strip() else ()


def system_ab(session: Any, prompt: str, system: str, settings: SamplingSettings, top_n: int = 20,
              cancel: Any = None, progress: Any = None) -> Any:
    """The next-token distribution without and with the system prompt, compared (a `generation.SystemAB`)."""
    from spectrascope.core.engine.generation import system_prompt_ab

    return system_prompt_ab(session, prompt, system, settings, top_n=top_n)


def generation_records(session: Any, prompt: str, settings: SamplingSettings, steps: int,
                       top: int = 3) -> tuple[TokenRecord, ...]:
    """`logits --features`: each generated token (seed settings.seed, at most `steps`, up to the end of text)
    with how it was picked, its probability and rank, and its strongest SAE features, from the generation's
    own forwards."""
    from spectrascope.core.analysis.step_record import step_records
    from spectrascope.core.engine.generation import Stepper

    stepper = Stepper.start(session, prompt, settings)
    for _ in range(steps):
        if stepper.step().token_id == session.eos_id:
            break
    return tuple(step_records(stepper.steps, session.piece, session.labels, top=top))


def build(session: Any, spec: LogitsSpec, cancel: Any = None, progress: Any = None) -> LogitsReport:
    """Everything `spectrascope logits` prints: the knob pipeline, the A/B (spec.system), seeded runs
    (spec.runs) and one generation's tokens with their top SAE features (spec.features)."""
    from spectrascope.core.stats.sampling import LogitsView

    settings = spec.settings
    result = session.run(Request(spec.prompt, layers=(0,), codes=False), cancel)
    dist = LogitsView(result.logits).apply(settings)
    ab = system_ab(session, spec.prompt, spec.system, settings, spec.top) if spec.system else None
    runs = seeded(session, spec.prompt, settings, spec.runs, spec.steps, cancel) if spec.runs else None
    records = generation_records(session, spec.prompt, settings, spec.steps) if spec.features else None
    return LogitsReport.of(spec.prompt, settings, dist, session.piece, spec.top, system=spec.system or "", ab=ab,
                           runs=runs, generation=records, result=result, model=session.model.spec.name)
