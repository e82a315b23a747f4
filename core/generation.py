"""Step-through generation with a KV cache, seeded reruns, and the system-prompt A/B.

A `Stepper` holds one growing sequence: each step feeds one token through the
model with the cached keys/values (one decode step, not a new forward over the
whole text), keeps the logits of every step so going back needs no model call,
and crops the cache on the way back.

Reproducibility: the token at step i of a run with seed s is drawn with seed
`step_seed(s, i)`, so going back and stepping again gives the same token, and
N runs differ only by their seed.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from .sampling import Distribution, LogitsView, SamplingSettings, compare, sample
from .session import Cancelled, PromptError, Session


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of one step of one run (distinct per step, stable across reruns)."""
    return (int(seed) * 1_000_003 + int(step)) % 2**63


@dataclass
class Step:
    token_id: int
    how: str  # "greedy", "sampled", "picked"
    dist: Distribution  # the distribution the token was drawn from


@dataclass
class Stepper:
    """One prompt, stepped forward token by token and back."""

    session: Session
    prompt_ids: list[int]
    settings: SamplingSettings
    steps: list[Step] = field(default_factory=list)
    _views: list[LogitsView] = field(default_factory=list)  # logits after prompt + each step
    _cache: Any = None

    @classmethod
    def start(cls, session: Session, prompt: str, settings: SamplingSettings) -> "Stepper":
        ids, _ = session.tokenize(prompt)
        stepper = cls(session, ids, settings.validate())
        stepper._prefill()
        return stepper

    # ---- model calls ---------------------------------------------------------------------
    def _model_call(self, ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
        model = self.session.model.hf_model
        input_ids = torch.tensor([ids], device=self.session.model.device)  # (1, t)
        with torch.inference_mode():
            out = model(input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float().cpu(), out.past_key_values  # (V,)

    def _prefill(self) -> None:
        from transformers import DynamicCache

        logits, self._cache = self._model_call(
            self.prompt_ids, DynamicCache(config=self.session.model.hf_model.config)
        )
        self._views = [LogitsView(logits)]

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

    def generated_text(self) -> str:
        return self.session.tokenizer.decode([s.token_id for s in self.steps])

    # ---- moves ---------------------------------------------------------------------------
    def step(self, token_id: int | None = None, settings: SamplingSettings | None = None) -> Step:
        """Append one token: `token_id` if given, else greedy (T=0) or a seeded sample."""
        settings = (settings or self.settings).validate()
        self.settings = settings
        dist = self.view.apply(settings)
        vocab = dist.vocab_size
        if token_id is not None:
            if not 0 <= int(token_id) < vocab:
                raise PromptError(f"Token id {token_id} is outside the vocabulary (0..{vocab - 1}).")
            chosen, how = int(token_id), "picked"
        elif settings.is_greedy:
            chosen, how = int(dist.final_probs.argmax()), "greedy"
        else:
            chosen, how = sample(dist, step_seed(settings.seed, len(self.steps))), "sampled"
        if len(self.ids) + 1 > self.session.max_prompt_tokens:
            raise PromptError(
                f"The sequence reached the context limit of {self.session.max_prompt_tokens} tokens."
            )
        logits, self._cache = self._model_call([chosen], self._cache)
        step = Step(chosen, how, dist)
        self.steps.append(step)
        self._views.append(LogitsView(logits))
        return step

    def back(self) -> Step | None:
        """Undo the last step; the previous distribution comes back from memory."""
        if not self.steps:
            return None
        last = self.steps.pop()
        self._views.pop()
        try:
            self._cache.crop(len(self.ids))
        except Exception:  # noqa: BLE001 - sliding-window caches cannot always crop
            self._rebuild_cache()
        return last

    def _rebuild_cache(self) -> None:
        from transformers import DynamicCache

        _, self._cache = self._model_call(
            self.ids, DynamicCache(config=self.session.model.hf_model.config)
        )

    def fork(self) -> "Stepper":
        """An independent copy (cache included) to continue differently."""
        twin = Stepper(self.session, list(self.prompt_ids), self.settings, list(self.steps),
                       list(self._views), copy.deepcopy(self._cache))
        return twin


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
    base = Stepper.start(session, prompt, settings)
    runs: list[Run] = []
    for seed in seeds:
        stepper = base.fork()
        stepper.settings = SamplingSettings(**{**settings.to_dict(), "seed": int(seed)})
        for _ in range(steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            stepper.step()
            if stepper.steps[-1].token_id == session.tokenizer.eos_token_id:
                break
        ids = tuple(s.token_id for s in stepper.steps)
        first = runs[0].token_ids if runs else ids
        diverge = next((i for i, (a, b) in enumerate(zip(first, ids)) if a != b), None)
        if diverge is None and len(first) != len(ids):
            diverge = min(len(first), len(ids))
        runs.append(Run(int(seed), ids, stepper.generated_text(), diverge))
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


def system_prompt_ab(
    session: Session, user: str, system: str, settings: SamplingSettings, top_n: int = 20
) -> SystemAB:
    """Next-token distribution of `user` without (A) and with (B) the system prompt."""
    from .session import Request

    if not system:
        raise PromptError("The system prompt is empty: type one to compare against.")
    # Only the logits matter here: no SAE codes, and the cheapest residual capture.
    a = session.run(Request(with_system_prompt(session, "", user), layers=(0,), codes=False))
    b = session.run(Request(with_system_prompt(session, system, user), layers=(0,), codes=False))
    dist_a = LogitsView(a.logits).apply(settings)
    dist_b = LogitsView(b.logits).apply(settings)
    return SystemAB(dist_a, dist_b, compare(dist_a, dist_b, top_n=top_n))
