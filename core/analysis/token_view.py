"""Which tokens of a prompt set a feature fires on: the per-token view behind the per-prompt max.

Selectivity ranks prompts by their strongest token; this shows that token in its prompt, for
the concept prompts where the feature fires most and least and the neutral prompts where it
fires most (its false positives), so a reader can tell a concept feature from one that fires
on a format cue (the final full stop, a quote) or on one word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class PromptTokens:
    set_name: str  # "concept" or "neutral"
    index: int  # line in its set
    tokens: tuple[str, ...]  # BOS left out
    acts: tuple[float, ...]  # the feature's activation on each token

    @property
    def peak(self) -> float:
        return max(self.acts, default=0.0)


def token_activations(session: Any, prompt: str, role: str, feature: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The tokens of `prompt` (BOS left out) and `feature`'s activation on each."""
    import torch

    ids, _ = session.tokenize(prompt)
    hook = session.sae_hook(role)
    resid = session.forward(ids, capture=[hook], stop_after=hook, keep_logits=0).resid[hook][0]  # (T, d)
    sae = session.sae(role)
    with torch.inference_mode():
        acts = sae.encode(resid.to(sae.W_enc.dtype))[:, feature].float().cpu().tolist()
    first = 1 if ids and ids[0] == getattr(session.tokenizer, "bos_token_id", None) else 0
    return tuple(session.piece(i) for i in ids[first:]), tuple(acts[first:])


def token_view(session: Any, concept: Sequence[str], neutral: Sequence[str], per_prompt: np.ndarray,
               is_concept: np.ndarray, role: str, feature: int, n_top: int = 5, n_low: int = 2,
               n_neutral: int = 4) -> list[PromptTokens]:
    """The `n_top` concept prompts where `feature`'s per-prompt max is highest, the `n_low` where it is
    lowest, and the `n_neutral` neutral prompts where it is highest, each token by token.
    `per_prompt` is the contrast run's (N, F) per-prompt activations, concept prompts first."""
    col = per_prompt[:, feature]
    c_idx = np.flatnonzero(is_concept)
    n_idx = np.flatnonzero(~is_concept)
    order_c = c_idx[np.argsort(-col[c_idx], kind="stable")]
    picks = [("concept", i) for i in order_c[:n_top]]
    picks += [("concept", i) for i in order_c[::-1][:n_low] if i not in order_c[:n_top]]
    order_n = n_idx[np.argsort(-col[n_idx], kind="stable")]
    picks += [("neutral", i) for i in order_n[:n_neutral]]
    out = []
    for set_name, i in picks:
        index = int(i) if set_name == "concept" else int(i - len(c_idx))
        text = concept[index] if set_name == "concept" else neutral[index]
        tokens, acts = token_activations(session, text, role, feature)
        out.append(PromptTokens(set_name, index, tokens, acts))
    return out
