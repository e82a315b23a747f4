"""Several prompts' incremental forwards as one forward: their tokens packed in one sequence.

A keystroke with the system-prompt A/B on extends two texts (the prompt, and the prompt under the
system text), each from its own cached prefix. One after the other they cost two forwards; one
forward over both costs little more than one, since the weights are read once. So the rows live
in one `RowGroup` between keystrokes: a single-sequence KV cache whose every column belongs to a
row (its owner) at a token position, or is a hole:

    owner:     0 0 0 0 0 1 1 1 1 1 1 1 | 0 1 1       (cached columns | this call's new tokens)
    position:  0 1 2 3 4 0 1 2 3 4 5 6 | 5 7 8

A keystroke turns each row's changed tail into holes, cuts columns that are holes at the end, and
appends every row's new tokens. The attention masks are block-causal: a query sees a key of its
own row at a position <= its own (and within the sliding window on the layers that have one), so
no row sees another's tokens or a hole, and the window counts tokens, not columns. RoPE positions
go in per token. Packing, not a batch of padded rows: a batch of two makes the bridged attention
copy every layer's expanded keys (grouped-query heads cannot be flattened with a batch), which
cost more than the second row's own compute. Each row's result equals that row run alone
(tests/core/test_kv_batch.py). Only `Session` runs the forward.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch

HOLE = -1  # the owner of a column that holds no token of any row
COMPACT_SHARE = 0.25  # rebuild a group once this share of its columns are holes


def attention_masks(owner_k: torch.Tensor, pos_k: torch.Tensor, owner_q: torch.Tensor, pos_q: torch.Tensor,
                    layer_types: Sequence[str], window: int | None, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The additive (1, 1, N, K) mask of each layer type from the keys' and queries' owners and
    positions ((K,) and (N,); the queries are the last N keys): a query sees a key of its own row at a
    position <= its own, and less than `window` back on a "sliding_attention" layer."""
    same = (owner_k[None, :] == owner_q[:, None]) & (owner_k[None, :] != HOLE)
    back = pos_q[:, None] - pos_k[None, :]
    causal = same & (back >= 0)
    masks = {}
    for kind in dict.fromkeys(layer_types):
        allowed = causal & (back < window) if kind == "sliding_attention" and window else causal
        masks[kind] = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[None, None]
    return masks


@functools.cache  # one class: transformers is imported only when a group is first made
def _growing_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views of a buffer with room to spare: a keystroke's
        tokens are written in place, where DynamicLayer copies the whole cache (torch.cat) per call."""

        _buffers: tuple[torch.Tensor, torch.Tensor] | None = None

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n = self.keys.shape[-2] if self.keys.numel() else 0
            t = key_states.shape[-2]
            bufs = self._buffers
            if bufs is None or n + t > bufs[0].shape[-2] or (n and self.keys.data_ptr() != bufs[0].data_ptr()):
                room = max(64, 2 * (n + t))  # doubling: a copy now and then, not on every keystroke
                bufs = tuple(x.new_empty((*x.shape[:-2], room, x.shape[-1])) for x in (key_states, value_states))
                if n:
                    bufs[0][..., :n, :], bufs[1][..., :n, :] = self.keys, self.values
                self._buffers = bufs
            bufs[0][..., n:n + t, :], bufs[1][..., n:n + t, :] = key_states, value_states
            self.keys, self.values = bufs[0][..., :n + t, :], bufs[1][..., :n + t, :]
            return self.keys, self.values

    return GrowingLayer


def row_keys(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of every layer of a one-row cache, or [] when it holds none."""
    layers = list(getattr(cache, "layers", None) or ())
    if not layers or not all(getattr(layer, "is_initialized", False) for layer in layers):
        return []
    return [(layer.keys, layer.values) for layer in layers]


class RowGroup:
    """Rows' KV caches packed in one sequence: `cache` (1, heads, K, d) per layer; `owner` and
    `positions` (K,) say whose token each column is, and where in that row."""

    def __init__(self, cache: Any, owner: torch.Tensor, positions: torch.Tensor, size: int):
        self.cache, self.owner, self.positions, self.size = cache, owner, positions, size
        self._new: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def merge(cls, rows: Sequence[tuple[Any, int]]) -> "RowGroup | None":
        """A group from one-row caches and their lengths, or None where a cache does not hold exactly
        its row's tokens in every layer (a sliding layer that dropped old keys)."""
        from transformers import DynamicCache

        layer_class = _growing_layer_class()
        layers = [row_keys(cache) if p else [] for cache, p in rows]
        if any(p and (not kv or any(k.shape[-2] != p for k, _ in kv)) for kv, (_, p) in zip(layers, rows)):
            return None
        owner = torch.cat([torch.full((p,), i, dtype=torch.long) for i, (_, p) in enumerate(rows)])
        positions = torch.cat([torch.arange(p) for _, p in rows])
        cache = DynamicCache()
        cache.layer_class_to_replicate = layer_class  # layers the first forward adds (no past yet)
        filled = [kv for kv in layers if kv]
        for index in range(len(filled[0]) if filled else 0):
            layer = layer_class()
            keys = torch.cat([kv[index][0] for kv in filled], dim=-2)
            values = torch.cat([kv[index][1] for kv in filled], dim=-2)
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
            cache.layers.append(layer)
        return cls(cache, owner, positions, len(rows))

    def lengths(self) -> list[int]:
        """Each row's tokens in the cache."""
        return [int((self.owner == i).sum()) for i in range(self.size)]

    def crop(self, keep: Sequence[int]) -> None:
        """Row i keeps its first keep[i] tokens; the holes at the end are cut."""
        limit = torch.tensor(list(keep))[self.owner.clamp(min=0)]
        self.owner = torch.where(self.positions < limit, self.owner, torch.full_like(self.owner, HOLE))
        live = (self.owner != HOLE).nonzero()
        width = int(live.max()) + 1 if live.numel() else 0
        self.owner, self.positions = self.owner[:width], self.positions[:width]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[..., :width, :], layer.values[..., :width, :]

    def hole_share(self) -> float:
        return float((self.owner == HOLE).float().mean()) if self.owner.numel() else 0.0

    def inputs(self, new: Sequence[Sequence[int]], layer_types: Sequence[str], window: int | None,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list[slice]]:
        """input_ids (1, N), position ids (1, N), the masks, and each row's slice of the N new tokens."""
        lengths = self.lengths()
        owner_q = torch.cat([torch.full((len(ids),), i, dtype=torch.long) for i, ids in enumerate(new)])
        pos_q = torch.cat([torch.arange(p, p + len(ids)) for p, ids in zip(lengths, new)])
        ids = torch.tensor([t for row in new for t in row], dtype=torch.long)[None]
        masks = attention_masks(torch.cat([self.owner, owner_q]), torch.cat([self.positions, pos_q]),
                                owner_q, pos_q, layer_types, window, dtype)
        self._new = (owner_q, pos_q)
        ends = torch.tensor([len(row) for row in new]).cumsum(0).tolist()
        return ids, pos_q[None], masks, [slice(end - len(row), end) for end, row in zip(ends, new)]

    def appended(self) -> None:
        """The forward has appended the new tokens to every layer: record whose they are."""
        owner_q, pos_q = self._new
        self.owner, self.positions = torch.cat([self.owner, owner_q]), torch.cat([self.positions, pos_q])

    def row_cache(self, index: int, keep: int, new_cache: Callable[[], Any]) -> Any:
        """Row `index`'s first `keep` tokens as a one-row cache of its own (`Session.new_cache`)."""
        columns = ((self.owner == index) & (self.positions < keep)).nonzero().flatten()
        cache = new_cache()
        if columns.numel() == 0:
            return cache
        for layer, packed in zip(cache.layers, self.cache.layers):
            keys = packed.keys.index_select(-2, columns.to(packed.keys.device))
            values = packed.values.index_select(-2, columns.to(packed.values.device))
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = int(columns.numel())
        return cache


class GroupRow:
    """A slot's cache when it lives in a `RowGroup`: the group and its row there."""

    def __init__(self, group: RowGroup, index: int):
        self.group, self.index = group, index
