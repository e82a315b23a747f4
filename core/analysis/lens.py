"""The logit lens: what the residual stream would predict if the model stopped after each layer.

For one prompt position: the residual before block 0 (the scaled embedding) and after every
block, each through the model's final norm, unembedding and (Gemma 2) final softcap
(`Session.lens_logits`). Per layer: the top tokens, the rank and probability of the final
top-1 token, the entropy, and the residual norm with the share held by its three largest
dimensions (Gemma's "massive" dimensions). The commitment layer is the first layer from which
the final top-1 token stays top-1. For the whole prompt, a layers x positions grid says where
each position's final top-1 token is already top-1. The last layer's lens is the model's own
output, so its row equals the next-token distribution.

The table costs one forward and one pass of L+1 rows over the unembedding; the grid reads every
layer x position and costs more, so a view shows the table first and the grid when it is ready
(`read_stream` -> `lens_table` -> `lens_grid`; `logit_lens` does all three).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

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
    settled: tuple[tuple[bool, ...], ...]  # layers x positions: is that position's final top-1 already top-1;
    # () from `lens_table` until `lens_grid` fills it
    lens: str = "logit lens"  # or "tuned lens (fitted on ...)": core.tuned_lens translators before the norm

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hooks(n_layers: int) -> list[str]:
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


CHUNK = 8192  # vocabulary rows in the settled grid's first pass, which every row takes
LATER_CHUNKS = 4  # later passes, for the few rows still alive, take this many CHUNKs at a time


def settled_grid(session: Any, stream: torch.Tensor, final_top: torch.Tensor,
                 chunk: int = CHUNK) -> tuple[tuple[bool, ...], ...]:
    """layers x positions: is `final_top[t]` (the output's top-1) already the lens' top-1 at (layer, t)?

    Exactly `lens_logits(stream[l]).argmax(-1) == final_top` (ties go to the lower id, as argmax),
    without every row reading the whole 262K-row unembedding: the vocabulary is scanned in chunks
    and a row leaves the scan at the first chunk holding a token that beats its target (most rows,
    whose target ranks in the thousands, in the first chunk); only the rows that do settle read all
    of it. That last part has no exact shortcut: bounds on the unembedding (low rank plus
    Cauchy-Schwarz on the rest) prune nothing at d=640 (bench/bench_lens.py prints this floor).
    The output layer settles by definition. # stream (L+1, T, d), final_top (T,)"""
    n_layers, n, d = stream.shape
    rows = stream[:-1].reshape(-1, d)  # (L*T, d): every layer but the output
    target = final_top.repeat(n_layers - 1)  # (L*T,)
    uniq, col = torch.unique(target, return_inverse=True)
    own = session.lens_logits(rows, vocab=uniq).gather(1, col[:, None])[:, 0]  # (L*T,) the target's logit
    alive = torch.ones(len(rows), dtype=torch.bool)
    vocab = session.unembedding().shape[0]
    start, width = 0, chunk
    while start < vocab:
        idx = alive.nonzero()[:, 0]
        if len(idx) == 0:
            break
        stop = min(start + width, vocab)
        logits = session.lens_logits(rows[idx], vocab=slice(start, stop))  # (n, c) float32, a copy
        t, v = target[idx], own[idx]
        mine = ((t >= start) & (t < stop)).nonzero()[:, 0]
        with torch.inference_mode():  # lens_logits' tensors are inference tensors
            logits[mine, t[mine] - start] = -torch.inf  # the target's own column is not a rival
        best, first = logits.max(-1)  # the best rival and its first index, as argmax breaks ties
        alive[idx[(best > v) | ((best == v) & (first + start < t))]] = False
        start, width = stop, chunk * LATER_CHUNKS
    grid = alive.reshape(n_layers - 1, n).tolist()
    return tuple(tuple(r) for r in grid) + (tuple([True] * n),)


@dataclass(frozen=True)
class Stream:
    """One forward's residual stream at every layer (what the table and the grid read), so moving
    to another token or drawing the grid later needs no second forward."""

    prompt: str
    ids: tuple[int, ...]
    resid: torch.Tensor  # (L+1, T, d) float32, CPU: before block 0, then after each block


def layer_residuals(session: Any, ids: Sequence[int], cancel: Any = None) -> torch.Tensor:
    """One forward's residual before block 0 and after each block. # (L+1, T, d) float32, CPU"""
    names = hooks(session.model.n_layers)
    resid = session.forward(list(ids), capture=names, keep_logits=0, cancel=cancel).resid  # hook -> (1, T, d)
    return torch.stack([resid[h][0].float().cpu() for h in names])


def read_stream(session: Any, prompt: str) -> Stream:
    ids, _ = session.tokenize(prompt)
    return Stream(prompt, tuple(ids), layer_residuals(session, ids))


def lens_name(tuned: Any = None) -> str:
    return "logit lens" if tuned is None else f"tuned lens (fitted on {tuned.fitted_on})"


def lens_table(session: Any, stream: Stream, position: int = -1, top: int = 5, tuned: Any = None) -> LensReport:
    """The per-layer table at one position: one pass of L+1 rows over the unembedding (the grid,
    `lens_grid`, is left empty: it reads every layer x position and comes after).

    tuned: a `core.tuned_lens.TunedLens` whose translators map each layer's residual first; the
    norm and massive-dimension columns stay those of the residual itself."""
    n = len(stream.ids)
    if not -n <= position < n:
        raise ValueError(f"Position {position} is outside the prompt (0..{n - 1}).")
    pos = position % n
    read = stream.resid[:, pos] if tuned is None else tuned.apply(stream.resid[:, pos])
    logits = session.lens_logits(read)  # (L+1, V); the last row is the model's output
    # Whole-matrix passes, no (L+1, V) log-softmax or probability copies (bench/bench_lens.py): p = exp(z - lse),
    # entropy = lse - sum_v p_v z_v.
    peak, top1 = logits.max(-1)  # (L+1,): the first maximal index on ties, as argmax
    target = int(top1[-1])
    e = (logits - peak[:, None]).exp_()  # (L+1, V) exp(z - max), the one copy
    mass = e.sum(-1)
    lse = peak + mass.log()
    top_z, top_i = logits.topk(top, -1)  # (L+1, top)
    top_p = (top_z - lse[:, None]).exp()
    own = logits[:, target]
    ranks = (logits > own[:, None]).view(torch.uint8).sum(-1, dtype=torch.int32) + 1  # a bool sum is 20x slower
    expected_z = (e.mul_(logits)).sum(-1) / mass  # E_p[z]
    entropy = (lse - expected_z).clamp_min(0.0)  # no "-0.00" for a one-hot
    target_p = (own - lse).exp()
    rows = []
    for layer in range(stream.resid.shape[0]):
        x = stream.resid[layer, pos]
        sq = x.pow(2)
        rows.append(LayerRow(
            "emb" if layer == 0 else str(layer - 1),
            tuple((int(i), session.piece(int(i)), float(v)) for v, i in zip(top_p[layer], top_i[layer])),
            int(ranks[layer]), float(target_p[layer]), float(entropy[layer]), float(x.norm()),
            float(sq.topk(min(MASSIVE, len(sq))).values.sum() / sq.sum().clamp_min(1e-12))))
    first = len(rows) - 1  # the output always is its own top-1
    while first > 0 and int(top1[first - 1]) == target:  # walk down while it stays top-1 (argmax ties as the grid's)
        first -= 1
    return LensReport(stream.prompt, tuple(session.piece(i) for i in stream.ids), pos, (target, session.piece(target)),
                      tuple(rows), rows[first].layer, (), lens_name(tuned))


def lens_grid(session: Any, stream: Stream, tuned: Any = None) -> tuple[tuple[bool, ...], ...]:
    """The layers x positions settled grid of the whole prompt (`settled_grid`), after the table."""
    final_top = session.lens_logits(stream.resid[-1]).argmax(-1)  # (T,) the model's own top-1
    return settled_grid(session, stream.resid if tuned is None else tuned.apply(stream.resid), final_top)


def logit_lens(session: Any, prompt: str, position: int = -1, top: int = 5, tuned: Any = None) -> LensReport:
    """The whole report (the CLI's): the table at `position` and the grid, from one forward."""
    stream = read_stream(session, prompt)
    n = len(stream.ids)
    if not -n <= position < n:  # before the grid's cost
        raise ValueError(f"Position {position} is outside the prompt (0..{n - 1}).")
    return replace(lens_table(session, stream, position, top, tuned), settled=lens_grid(session, stream, tuned))
