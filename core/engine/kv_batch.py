"""Several prompts' incremental forwards as one batch: their KV caches side by side, kept that way.

A keystroke with the system-prompt A/B on extends two texts (the prompt, and the prompt under the
system text), each from its own cached prefix. One after the other they cost two forwards; a
forward of two rows costs little more than one, since the weights are read once. So the rows'
caches live side by side in one `RowGroup` between keystrokes, each column holding one token
position per row, or a hole:

    row 0:  [hole hole][past 0 ........][hole][new 0 ..]
    row 1:  [past 1 ..................][new 1 ......]

A keystroke turns each row's changed tail into holes, cuts columns that are holes in every row,
and appends the new tokens right-aligned. The attention masks (causal, and the sliding window of
the layers that have one) come from each column's real token position, so no real query attends
a hole and the window counts tokens, not columns; RoPE positions go in per row. Every layer of a
group keeps all its keys (a plain `DynamicLayer`), because the window is in the mask. Each row's
result equals that row run alone (tests/core/test_kv_batch.py). Only `Session` runs the forward.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

HOLE = -1  # the position of a column that holds no token of this row
COMPACT_SHARE = 0.25  # rebuild a group once this share of its columns are holes


def attention_masks(keys: torch.Tensor, queries: torch.Tensor, layer_types: Sequence[str], window: int | None,
                    dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The additive (B, 1, N, K) mask of each layer type, from key positions (B, K) and query
    positions (B, N) (HOLE where a column holds no token; the queries are the last N keys).

    A real query at position q sees a real key at k when k <= q, and q - k < window on a
    "sliding_attention" layer. A hole query sees only its own column, so its softmax is defined;
    nothing reads it."""
    q, k = queries[:, :, None], keys[:, None, :]
    n, width = queries.shape[1], keys.shape[1]
    own = torch.zeros(n, width, dtype=torch.bool)
    own[torch.arange(n), width - n + torch.arange(n)] = True
    causal = (q != HOLE) & (k != HOLE) & (k <= q)
    masks = {}
    for kind in dict.fromkeys(layer_types):
        allowed = causal & (q - k < window) if kind == "sliding_attention" and window else causal
        allowed = allowed | ((q == HOLE) & own)
        masks[kind] = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
    return masks


def row_keys(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) of every layer of a one-row cache, or [] when it holds none."""
    layers = list(getattr(cache, "layers", None) or ())
    if not layers or not all(getattr(layer, "is_initialized", False) for layer in layers):
        return []
    return [(layer.keys, layer.values) for layer in layers]


class RowGroup:
    """Rows' KV caches in one batch: `cache` holds (B, heads, K, d) per layer, `positions` (B, K)."""

    def __init__(self, cache: Any, positions: torch.Tensor):
        self.cache = cache
        self.positions = positions

    @property
    def size(self) -> int:
        return self.positions.shape[0]

    @classmethod
    def merge(cls, rows: Sequence[tuple[Any, int]]) -> "RowGroup | None":
        """A group from one-row caches and their lengths (right-aligned, holes on the left), or
        None where a cache does not hold exactly its row's tokens in every layer (a sliding layer
        that dropped old keys)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        width = max(p for _, p in rows)
        layers = [row_keys(cache) if p else [] for cache, p in rows]
        if any(p and (not kv or any(k.shape[-2] != p for k, _ in kv)) for kv, (_, p) in zip(layers, rows)):
            return None
        positions = torch.full((len(rows), width), HOLE, dtype=torch.long)
        for i, (_, p) in enumerate(rows):
            positions[i, width - p:] = torch.arange(p)
        cache = DynamicCache()
        template = next((kv for kv in layers if kv), None)
        for index in range(len(template) if template and width else 0):
            like_k, like_v = template[index]
            stacked = []
            for part in (0, 1):
                like = (like_k, like_v)[part]
                stacked.append(torch.cat([
                    torch.cat([like.new_zeros((1, *like.shape[1:-2], width - p, like.shape[-1])),
                               *([kv[index][part]] if p else [])], dim=-2)
                    for kv, (_, p) in zip(layers, rows)]))
            layer = DynamicLayer()
            layer.lazy_initialization(*stacked)
            layer.keys, layer.values = stacked
            cache.layers.append(layer)
        return cls(cache, positions)

    def lengths(self) -> list[int]:
        """Each row's tokens in the cache."""
        return (self.positions != HOLE).sum(dim=1).tolist()

    def crop(self, keep: Sequence[int]) -> None:
        """Row i keeps its first keep[i] tokens; columns that are holes in every row at the end go."""
        self.positions = torch.where(self.positions < torch.tensor(keep)[:, None], self.positions,
                                     torch.full_like(self.positions, HOLE))
        live = (self.positions != HOLE).any(dim=0).nonzero()
        width = int(live.max()) + 1 if live.numel() else 0
        self.positions = self.positions[:, :width]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[..., :width, :], layer.values[..., :width, :]

    def hole_share(self) -> float:
        return float((self.positions == HOLE).float().mean()) if self.positions.numel() else 0.0

    def inputs(self, new: Sequence[Sequence[int]], pad_id: int, layer_types: Sequence[str], window: int | None,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """input_ids (B, N) right-aligned, position ids (B, N), and the masks, for appending `new`."""
        n = max(len(ids) for ids in new)
        ids = torch.full((self.size, n), pad_id, dtype=torch.long)
        queries = torch.full((self.size, n), HOLE, dtype=torch.long)
        for i, (row, p) in enumerate(zip(new, self.lengths())):
            ids[i, n - len(row):] = torch.tensor(list(row), dtype=torch.long)
            queries[i, n - len(row):] = torch.arange(p, p + len(row))
        keys = torch.cat([self.positions, queries], dim=1)
        masks = attention_masks(keys, queries, layer_types, window, dtype)
        self._queries = queries
        return ids, queries.clamp(min=0), masks

    def appended(self) -> None:
        """The forward has appended the new columns to every layer: record their positions."""
        self.positions = torch.cat([self.positions, self._queries], dim=1)

    def row_cache(self, index: int, keep: int, new_cache: Callable[[], Any]) -> Any:
        """Row `index`'s first `keep` tokens as a one-row cache of its own (`Session.new_cache`)."""
        columns = ((self.positions[index] != HOLE) & (self.positions[index] < keep)).nonzero().flatten()
        cache = new_cache()
        if columns.numel() == 0:
            return cache
        for layer, batched in zip(cache.layers, self.cache.layers):
            keys = batched.keys[index:index + 1].index_select(-2, columns.to(batched.keys.device))
            values = batched.values[index:index + 1].index_select(-2, columns.to(batched.values.device))
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = int(columns.numel())
        return cache


class GroupRow:
    """A slot's cache when it lives in a `RowGroup`: the group and its row there."""

    def __init__(self, group: RowGroup, index: int):
        self.group, self.index = group, index
