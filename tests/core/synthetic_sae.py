"""A synthetic coarse/fine SAE world with token firing, for the hierarchy, permutation and grid tests.

Each prompt has `tokens` tokens and one or two "topics" (coarse features); a topic fires on most of its
prompt's tokens. Each coarse feature c has children[c] fine features that fire on a random part of
c's tokens (P(fine | coarse) ~ `cover`) and nowhere else, with decoder directions at cosine ~0.55 to
c's: true sub-features. `extra` adds planted near-duplicates and non-nested look-alikes to coarse 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from spectrascope.core.analysis.contrast import ContrastResult, ContrastSettings, TokenFiring


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _near(rng: np.random.Generator, direction: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector at cosine `cos` to the unit `direction`."""
    r = rng.normal(size=direction.shape)
    r = _unit(r - (r @ direction) * direction)
    return cos * direction + np.sqrt(1 - cos**2) * r


def world(children: Sequence[int], n_concept: int = 30, n_neutral: int = 30, tokens: int = 8, cover: float = 0.3,
          concept_topic: int | None = None, extra: bool = False, d: int = 64, topic_rate: float | None = None,
          seed: int = 0):
    """-> (ContrastResult with token firing, coarse W_dec (C, d), fine W_dec (F, d), parent (F,) of each fine).

    concept_topic: every concept prompt gets this topic too (planted signal); None: both sets are
    drawn alike (the null). extra: coarse 0 also gets a near-duplicate by coverage (fires on ~90% of
    its tokens), one by cosine (0.85) and a look-alike that fires as often outside it (not nested).
    topic_rate: each prompt has each topic with this probability (None: one or two topics a prompt)."""
    rng = np.random.default_rng(seed)
    n_coarse = len(children)
    n = n_concept + n_neutral
    wc = _unit(rng.normal(size=(n_coarse, d)))
    parent = [c for c in range(n_coarse) for _ in range(children[c])]
    covers = [cover] * len(parent)
    cosines = [0.55] * len(parent)
    outside = [0.0] * len(parent)
    if extra:
        parent += [0, 0, 0]
        covers += [0.9, 0.3, 0.35]
        cosines += [0.55, 0.85, 0.55]
        outside += [0.0, 0.0, 0.9]  # also on 90% of the other tokens of coarse 0's prompts
    wf = np.stack([_near(rng, wc[p], c) for p, c in zip(parent, cosines)]) if parent else np.zeros((0, d))
    parent_a = np.asarray(parent, np.int64)
    is_concept = np.r_[np.ones(n_concept, bool), np.zeros(n_neutral, bool)]
    T = n * tokens
    coarse_fire = np.zeros((T, n_coarse), bool)
    in_topic = np.zeros((T, n_coarse), bool)  # the token is in a prompt of that topic
    for i in range(n):
        topics = (list(np.flatnonzero(rng.random(n_coarse) < topic_rate)) if topic_rate is not None
                  else list(rng.choice(n_coarse, size=1 + int(rng.random() < 0.5), replace=False)))
        if concept_topic is not None and is_concept[i] and concept_topic not in topics:
            topics.append(concept_topic)
        rows = slice(i * tokens, (i + 1) * tokens)
        for t in topics:
            coarse_fire[rows, t] = rng.random(tokens) < 0.75
            in_topic[rows, t] = True
    fine_fire = np.zeros((T, len(parent)), bool)
    for j, p in enumerate(parent):
        fine_fire[:, j] = coarse_fire[:, p] & (rng.random(T) < covers[j])
        if outside[j]:  # same prompts, other tokens: correlated per prompt, not nested token by token
            fine_fire[:, j] |= in_topic[:, p] & ~coarse_fire[:, p] & (rng.random(T) < outside[j])
    act_c = coarse_fire * rng.uniform(1, 3, coarse_fire.shape)
    act_f = fine_fire * rng.uniform(1, 3, fine_fire.shape)
    prompt = np.repeat(np.arange(n), tokens).astype(np.int32)

    def per_prompt(a: np.ndarray, how: str) -> np.ndarray:
        return getattr(a.reshape(n, tokens, -1), how)(1).astype(np.float32)

    acts = {"coarse": {"max": per_prompt(act_c, "max"), "mean": per_prompt(act_c, "mean")},
            "fine": {"max": per_prompt(act_f, "max"), "mean": per_prompt(act_f, "mean")}}
    firing = TokenFiring(prompt, np.tile(np.arange(1, tokens + 1), n).astype(np.int32), np.zeros(T, np.int32),
                         {"coarse": sp.csr_matrix(coarse_fire), "fine": sp.csr_matrix(fine_fire)})
    result = ContrastResult(("coarse", "fine"), acts, is_concept, ContrastSettings(), tokens=firing)
    return result, wc.astype(np.float32), wf.astype(np.float32), parent_a
