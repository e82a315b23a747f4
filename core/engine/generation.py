"""Step-through generation with a KV cache, seeded reruns, and the system-prompt A/B.

A `Stepper` holds one growing sequence: each step feeds one token through the
model with the cached keys/values (one decode step, not a new forward over the
whole text), keeps the logits of every step so going back needs no model call,
and crops the cache on the way back.

Each step also records what the model held at the new token: the forward that
feeds the token captures the residual at the SAE hooks, and the attached SAEs
(coarse, fine) encode that one position. Same forward, no second pass: the
record of step i is the SAE codes of token i, next to the distribution it was
drawn from.

Reproducibility: the token at step i of a run with seed s is drawn with seed
`step_seed(s, i)`, so going back and stepping again gives the same token, and
N runs differ only by their seed.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import torch

from spectrascope.core.engine.plan import Edit
from spectrascope.core.stats.sampling import Distribution, LogitsView, SamplingSettings, compare, sample
from spectrascope.core.engine.session import Cancelled, PromptError, Request, Session
from spectrascope.core.engine.codes import Spectrum, encode_all


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of one step of one run (distinct per step, stable across reruns)."""
    return (int(seed) * 1_000_003 + int(step)) % 2**63


@dataclass
class Step:
    token_id: int
    how: str  # "greedy", "sampled", "picked"
    dist: Distribution  # the distribution the token was drawn from
    codes: Mapping[str, Spectrum] = field(default_factory=dict)  # role -> this token's SAE codes (one position)

    @property
    def prob(self) -> float:
        """The probability the model (T=1, no knobs) gave this token."""
        return float(self.dist.raw_probs[self.token_id])

    @property
    def rank(self) -> int:
        """1-based rank of this token by logit (1 = the model's top choice)."""
        logits = self.dist.logits
        return int((logits > logits[self.token_id]).sum()) + 1


def pick(view: LogitsView, settings: SamplingSettings, seed: int, step: int) -> tuple[int, str, Distribution]:
    """The token a run with `seed` takes at `step`: greedy at T=0, else a seeded sample."""
    dist = view.apply(settings)
    if settings.is_greedy:
        return int(dist.final_probs.argmax()), "greedy", dist
    return sample(dist, step_seed(seed, step)), "sampled", dist


@dataclass
class Stepper:
    """One prompt, stepped forward token by token and back (edits, if any, apply to every step)."""

    session: Session
    prompt_ids: list[int]
    settings: SamplingSettings
    steps: list[Step] = field(default_factory=list)
    edits: tuple[Edit, ...] = ()
    _views: list[LogitsView] = field(default_factory=list)  # logits after prompt + each step
    _cache: Any = None
    edited_forwards: int = 0  # forwards in which an edit fired (a steered Stepper: one per forward)
    features: bool = True  # record each token's SAE codes (False: tokens and distributions only)
    prompt_codes: dict[str, Spectrum] = field(default_factory=dict)  # role -> codes of the prompt tokens

    @classmethod
    def start(cls, session: Session, prompt: str | list[int], settings: SamplingSettings,
              edits: Sequence[Edit] = (), cancel: threading.Event | None = None,
              features: bool = True) -> "Stepper":
        ids = session.tokenize(prompt)[0] if isinstance(prompt, str) else list(prompt)
        stepper = cls(session, ids, settings.validate(), edits=tuple(edits), features=features)
        logits, stepper._cache, stepper.prompt_codes = stepper._forward(ids, session.new_cache(), cancel)
        stepper._views = [LogitsView(logits)]
        return stepper

    def _forward(self, ids: list[int], cache: Any, cancel: threading.Event | None = None,
                 logits: bool = True) -> tuple[Any, Any, dict[str, Spectrum]]:
        """Feed `ids`: the next-token logits (V,), the cache, and the SAE codes of the fed positions.

        The residual at the SAE hooks is captured in this same forward (after this Stepper's
        edits there: a steered run records what the steered model held). logits=False stops
        right after the deepest SAE hook (the last token of a fixed-length run: only its codes
        are read) and cuts the cache back, since the blocks before the stop extended it."""
        saes = dict(self.session.saes) if self.features else {}
        hooks = sorted({sae.cfg.metadata.hook_name for sae in saes.values()})
        if not logits and not hooks:
            return None, cache, {}
        stop = max(hooks, key=lambda h: int(h.split(".")[1])) if not logits else None
        out = self.session.forward(ids, capture=hooks, edits=self.edits, cache=cache, keep_logits=int(logits),
                                   stop_after=stop, cancel=cancel)
        self.edited_forwards += out.edits_applied
        codes = encode_all(saes, {h: out.resid[h][0] for h in hooks}, self.session.resid_stats) if saes else {}
        if not logits:
            if not self.session.crop_cache(cache, len(self.ids)):
                cache = None  # not exactly restorable: a later step rebuilds it
            return None, cache, codes
        return out.logits[0, -1].cpu(), out.cache, codes  # (V,)

    # ---- state ---------------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + [s.token_id for s in self.steps]

    @property
    def view(self) -> LogitsView:
        """Logits for the next token, cached: knob changes re-render without a model call."""
        return self._views[-1]

    def distribution(self, settings: SamplingSettings | None = None) -> Distribution:
        return self.view.apply(settings or self.settings)

    def generated_ids(self) -> tuple[int, ...]:
        return tuple(s.token_id for s in self.steps)

    def generated_text(self) -> str:
        return self.session.decode(self.generated_ids())

    # ---- moves ---------------------------------------------------------------------------
    def step(self, token_id: int | None = None, settings: SamplingSettings | None = None,
             cancel: threading.Event | None = None, feed: bool = True) -> Step:
        """Append one token: `token_id` if given, else greedy (T=0) or a seeded sample.

        feed=False records the token without its logits (the last token of a fixed-length run:
        nothing will read them); its SAE codes are still recorded, from a forward that stops at
        the SAE hook."""
        settings = (settings or self.settings).validate()
        self.settings = settings
        if token_id is not None:
            dist = self.view.apply(settings)
            if not 0 <= int(token_id) < dist.vocab_size:
                raise PromptError(f"Token id {token_id} is outside the vocabulary (0..{dist.vocab_size - 1}).")
            chosen, how = int(token_id), "picked"
        else:
            chosen, how, dist = pick(self.view, settings, settings.seed, len(self.steps))
        if len(self.ids) + 1 > self.session.max_prompt_tokens:
            raise PromptError(
                f"The sequence reached the context limit of {self.session.max_prompt_tokens} tokens."
            )
        if self._cache is None:  # a partial last feed could not be cut back exactly
            _, self._cache, _ = self._forward(self.ids, self.session.new_cache(), cancel)
        logits, cache, codes = self._forward([chosen], self._cache, cancel, logits=feed)
        self._cache = cache
        if feed:
            self._views.append(LogitsView(logits))
        step = Step(chosen, how, dist, codes)
        self.steps.append(step)
        return step

    def back(self) -> Step | None:
        """Undo the last step; the previous distribution comes back from memory."""
        if not self.steps:
            return None
        last = self.steps.pop()
        self._views = self._views[: len(self.steps) + 1]
        if self._cache is None or not self.session.crop_cache(self._cache, len(self.ids)):
            _, self._cache, _ = self._forward(self.ids, self.session.new_cache())
        return last

    def branch(self) -> "Stepper":
        """A copy with its own steps and logits that shares this Stepper's KV cache (no cache copy): one of
        the two may move on, and the other must then be dropped or `unshare`d (its cache moved too)."""
        return replace(self, steps=list(self.steps), _views=list(self._views))

    def unshare(self) -> None:
        """Forget the cache a branch moved on with: the next step rebuilds it from the ids."""
        self._cache = None

    def fork(self, seed: int | None = None) -> "Stepper":
        """An independent copy (cache included) to continue differently, optionally with another seed."""
        settings = self.settings if seed is None else replace(self.settings, seed=int(seed))
        return Stepper(self.session, list(self.prompt_ids), settings, list(self.steps), self.edits,
                       list(self._views), copy.deepcopy(self._cache), self.edited_forwards, self.features,
                       self.prompt_codes)

    def spectra(self) -> dict[str, Spectrum]:
        """role -> the codes of every token so far, prompt then generated (steps without a record end it)."""
        out = {}
        for role, head in self.prompt_codes.items():
            parts = [head]
            for step in self.steps:
                if role not in step.codes:
                    break
                parts.append(step.codes[role])
            out[role] = concat_spectra(parts)
        return out


def concat_spectra(parts: Sequence[Spectrum]) -> Spectrum:
    """Consecutive positions' spectra of one SAE as one spectrum."""
    if len(parts) == 1:
        return parts[0]
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    return Spectrum(parts[0].role, cat("codes"), cat("l0"), cat("fidelity"), cat("rel_error"), cat("massive_share"),
                    cat("fidelity_rest"), parts[-1].poor_below, parts[-1].poor_source)


def generate(
    session: Session,
    prompt_ids: list[int],
    settings: SamplingSettings,
    seeds: Sequence[int],
    steps: int,
    edits: Sequence[Edit] = (),
    cancel: threading.Event | None = None,
    on_token: Callable[[], None] | None = None,
    features: bool = True,
) -> list[Stepper]:
    """The one generation loop: `prompt_ids` continued up to `steps` tokens once per seed.

    The prompt is prefilled once (with `edits`); each seed continues from a copy of that
    cache, token i drawn with step_seed(seed, i). Stops early at EOS. Returns one Stepper
    per seed (its `steps` hold the tokens, the distributions they were drawn from and, with
    `features`, each token's SAE codes from the forward that fed it).
    """
    if steps < 1:
        raise PromptError("The number of tokens to generate must be at least 1.")
    if len(prompt_ids) + steps > session.max_prompt_tokens:
        raise PromptError(f"Prompt + {steps} tokens exceed the context limit of {session.max_prompt_tokens}.")
    base = Stepper.start(session, prompt_ids, settings, edits, cancel, features)
    runs = []
    for seed in seeds:
        if len(seeds) > 1:
            stepper = base.fork(seed)
        else:
            stepper, base.settings = base, replace(base.settings, seed=int(seed))
        for i in range(steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            last = i == steps - 1
            token = stepper.step(cancel=cancel, feed=not last).token_id
            if on_token is not None:
                on_token()
            if token == session.eos_id:
                break
        runs.append(stepper)
    return runs


@dataclass(frozen=True)
class Run:
    seed: int
    token_ids: tuple[int, ...]
    text: str
    diverges_at: int | None  # first step where this run differs from run 0; None if identical


def seeded_runs(
    session: Session,
    prompt: str,
    settings: SamplingSettings,
    seeds: list[int],
    steps: int,
    cancel: threading.Event | None = None,
) -> list[Run]:
    """The same prompt continued `steps` tokens once per seed; the prompt is prefilled once."""
    if steps < 1:
        raise ValueError("steps must be at least 1.")
    ids, _ = session.tokenize(prompt)
    runs: list[Run] = []
    for stepper in generate(session, ids, settings, seeds, steps, cancel=cancel):
        out = stepper.generated_ids()
        first = runs[0].token_ids if runs else out
        diverge = next((i for i, (a, b) in enumerate(zip(first, out)) if a != b), None)
        if diverge is None and len(first) != len(out):
            diverge = min(len(first), len(out))
        runs.append(Run(stepper.settings.seed, out, stepper.generated_text(), diverge))
    return runs


def with_system_prompt(session: Session, system: str, user: str) -> str:
    """The text the model sees for `user` under `system`.

    Base models get the system text prepended as plain text; chat models go
    through their chat template (Gemma's has no system role, so, as Google
    does, the system text opens the first user turn).
    """
    tok = session.tokenizer
    if session.model.spec.chat and getattr(tok, "chat_template", None):
        messages = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = tok.bos_token or ""
        return text[len(bos):] if bos and text.startswith(bos) else text  # Session adds BOS
    return f"{system}\n\n{user}" if system else user


@dataclass(frozen=True)
class SystemAB:
    without: Distribution
    with_system: Distribution
    comparison: Any  # sampling.ABComparison


def ab_companions(session: Session, user: str, system: str) -> tuple[Request, ...]:
    """The A/B's variant texts as companions of the prompt's run (`Request.companions`): each keystroke
    extends them in the prompt's own forward, and `system_prompt_ab` then finds them kept."""
    if not system:
        return ()
    return tuple(Request(with_system_prompt(session, text, user), layers=(), codes=False, slot=slot)
                 for text, slot in (("", "ab-without"), (system, "ab-with")))


def system_prompt_ab(
    session: Session, user: str, system: str, settings: SamplingSettings, top_n: int = 20
) -> SystemAB:
    """Next-token distribution of `user` without (A) and with (B) the system prompt."""
    if not system:
        raise PromptError("The system prompt is empty: type one to compare against.")
    # Only the logits matter here: no residuals, no SAE codes. Each variant keeps its own cache slot,
    # so a keystroke runs only its new tokens and the prompt's own slot is left alone; a base
    # model's "without" text is the prompt itself, answered by the prompt's slot with no forward.
    # When the prompt's run carried them as companions (the app does), both are answered from there.
    a, b = (session.run(variant) for variant in ab_companions(session, user, system))
    dist_a = LogitsView(a.logits).apply(settings)
    dist_b = LogitsView(b.logits).apply(settings)
    return SystemAB(dist_a, dist_b, compare(dist_a, dist_b, top_n=top_n))
