"""The logit lens: what the residual stream would predict if the model stopped after each layer.

For one prompt position: the residual before block 0 (the scaled embedding) and after every
block, each through the model's final norm, unembedding and (Gemma 2) final softcap
(`Session.lens_logits`). Per layer: the top tokens, the rank and probability of the final
top-1 token, the entropy, and the residual norm with the share held by its three largest
dimensions (Gemma's "massive" dimensions). The commitment layer is the first layer from which
the final top-1 token stays top-1. For the whole prompt, a layers x positions grid says where
each position's final top-1 token is already top-1. The last layer's lens is the model's own
output, so its row equals the next-token distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

MASSIVE = 3


@dataclass(frozen=True)
class LayerRow:
    layer: str  # "emb" or the block index after which the residual is read
    top: tuple[tuple[int, str, float], ...]  # (token id, piece, probability)
    target_rank: int  # 1-based rank of the final top-1 token here
    target_prob: float
    entropy: float  # nats
    norm: float  # |x|
    massive_share: float  # share of |x|² in its 3 largest dimensions


@dataclass(frozen=True)
class LensReport:
    prompt: str
    tokens: tuple[str, ...]
    position: int
    target: tuple[int, str]  # the final top-1 token at `position`
    rows: tuple[LayerRow, ...]
    commitment: str  # the first layer from which `target` stays top-1 (the last block at the latest)
    settled: tuple[tuple[bool, ...], ...]  # layers x positions: is that position's final top-1 already top-1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hooks(n_layers: int) -> list[str]:
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


CHUNK = 8192  # vocabulary rows per pass of the settled grid


def settled_grid(session: Any, stream: torch.Tensor, final_top: torch.Tensor,
                 chunk: int = CHUNK) -> tuple[tuple[bool, ...], ...]:
    """layers x positions: is `final_top[t]` (the output's top-1) already the lens' top-1 at (layer, t)?

    Exactly `lens_logits(stream[l]).argmax(-1) == final_top` (ties go to the lower id, as argmax),
    without every row reading the whole 262K-row unembedding: the vocabulary is scanned in chunks
    and a row leaves the scan at the first token that beats its target (most rows, whose target
    ranks in the thousands, in the first chunk); only the rows that do settle read all of it.
    The output layer settles by definition. # stream (L+1, T, d), final_top (T,)"""
    n_layers, n, d = stream.shape
    rows = stream[:-1].reshape(-1, d)  # (L*T, d): every layer but the output
    target = final_top.repeat(n_layers - 1)  # (L*T,)
    uniq, col = torch.unique(target, return_inverse=True)
    own = session.lens_logits(rows, vocab=uniq).gather(1, col[:, None])[:, 0]  # (L*T,) the target's logit
    alive = torch.ones(len(rows), dtype=torch.bool)
    vocab = session.unembedding().shape[0]
    for start in range(0, vocab, chunk):
        idx = alive.nonzero()[:, 0]
        if len(idx) == 0:
            break
        logits = session.lens_logits(rows[idx], vocab=slice(start, min(start + chunk, vocab)))  # (n, c)
        ids = torch.arange(start, start + logits.shape[1])
        t, v = target[idx, None], own[idx, None]
        beaten = ((logits > v) | ((logits == v) & (ids < t))) & (ids != t)  # the target's own column is not a rival
        alive[idx[beaten.any(-1)]] = False
    grid = alive.reshape(n_layers - 1, n).tolist()
    return tuple(tuple(r) for r in grid) + (tuple([True] * n),)


def logit_lens(session: Any, prompt: str, position: int = -1, top: int = 5) -> LensReport:
    ids, _ = session.tokenize(prompt)
    n = len(ids)
    if not -n <= position < n:
        raise ValueError(f"Position {position} is outside the prompt (0..{n - 1}).")
    pos = position % n
    names = hooks(session.model.n_layers)
    resid = session.forward(ids, capture=names, keep_logits=0).resid  # hook -> (1, T, d)
    stream = torch.stack([resid[h][0].float().cpu() for h in names])  # (L+1, T, d)
    # One pass over the unembedding for the output row of every position and every layer at `pos`.
    both = session.lens_logits(torch.cat([stream[-1], stream[:, pos]]))  # (T + L+1, V)
    final_top, logits = both[:n].argmax(-1), both[n:]  # (T,) the model's own top-1; (L+1, V)
    settled = settled_grid(session, stream, final_top)
    target = int(final_top[pos])
    logp = torch.log_softmax(logits, -1)
    probs = logp.exp()
    rows = []
    for layer in range(stream.shape[0]):
        p, idx = probs[layer].topk(top)
        x = stream[layer, pos]
        sq = x.pow(2)
        rows.append(LayerRow(
            "emb" if layer == 0 else str(layer - 1),
            tuple((int(i), session.piece(int(i)), float(v)) for v, i in zip(p, idx)),
            int((logits[layer] > logits[layer, target]).sum()) + 1, float(probs[layer, target]),
            max(0.0, float(-(probs[layer] * logp[layer]).sum())), float(x.norm()),  # no "-0.00" for a one-hot
            float(sq.topk(min(MASSIVE, len(sq))).values.sum() / sq.sum().clamp_min(1e-12))))
    column = [s[pos] for s in settled]
    first = len(column) - 1  # the output always is its own top-1
    while first > 0 and column[first - 1]:  # walk down while the target stays top-1
        first -= 1
    commitment = rows[first].layer
    return LensReport(prompt, tuple(session.piece(i) for i in ids), pos, (target, session.piece(target)), tuple(rows),
                      commitment, tuple(settled))
