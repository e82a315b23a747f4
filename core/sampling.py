"""The sampling pipeline behind the Logits pane: temperature -> top-k -> top-p.

Everything here works on ONE vector of last-position logits, shape (V,), and
matches Hugging Face's `TemperatureLogitsWarper`, `TopKLogitsWarper` and
`TopPLogitsWarper` applied in that order (min_tokens_to_keep=1), followed by a
softmax. Computation is float32 whatever the input dtype.

Semantics worth knowing:
  * temperature 0 means greedy: the only survivor is the argmax (the first one
    on ties, like `torch.argmax`); top-k and top-p are then moot.
  * top-k keeps every token tied with the k-th largest value (HF removes only
    `scores < kth`), so more than k tokens can survive.
  * top-p walks the survivors in ASCENDING order and drops those whose
    cumulative probability is <= 1 - top_p, always keeping the top token.
    Among exactly tied logits the lower token ids are dropped first: that is
    what HF's CPU sort does for V <= 16 (insertion sort, stable); for larger V
    HF's tie order is an unspecified detail of `torch.sort`, ours stays stable.
  * a raw logit of -inf (a token banned upstream) is never a survivor; it is
    reported as MASKED rather than blamed on a knob.

Speed: `LogitsView` sorts the raw logits once per vector (a numpy sort of
64-bit keys, ~6 ms at V=262,144). Temperature > 0 never changes that order, so
each knob change afterwards is a handful of O(V) passes with no sort.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

# Below this, logits / T overflows float32 for ordinary logit ranges.
MIN_TEMPERATURE = 1e-6


# --------------------------------------------------------------------------- settings


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_whole(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs a user turns. Invalid values raise ValueError at construction.

    temperature: 0 = greedy, otherwise >= MIN_TEMPERATURE (finite).
    top_k: None (or 0, normalised to None) = off, else a whole number >= 1.
    top_p: in (0, 1]; 1 = off.
    seed: the seed `sample` uses by default; a whole number in [0, 2**64).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise before validating so equal settings compare (and hash) equal.
        if _is_real(self.temperature):
            object.__setattr__(self, "temperature", float(self.temperature))
        if self.top_k is not None and _is_whole(self.top_k):
            object.__setattr__(self, "top_k", int(self.top_k) or None)  # 0 means off
        if _is_real(self.top_p):
            object.__setattr__(self, "top_p", float(self.top_p))
        if _is_whole(self.seed):
            object.__setattr__(self, "seed", int(self.seed))
        self.validate()

    def validate(self) -> "SamplingSettings":
        t = self.temperature
        if not _is_real(t):
            raise ValueError(f"temperature must be a number, got {t!r}")
        if math.isnan(t) or math.isinf(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {t!r}")
        if 0 < t < MIN_TEMPERATURE:
            raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {t!r}")
        k = self.top_k
        if k is not None:
            if not _is_whole(k):
                raise ValueError(f"top_k must be a whole number >= 1 (0 or None turns it off), got {k!r}")
            if k < 1:
                raise ValueError(f"top_k must be >= 1 (0 or None turns it off), got {k!r}")
        p = self.top_p
        if not _is_real(p) or math.isnan(p) or not (0 < p <= 1):
            raise ValueError(f"top_p must be a number in (0, 1] (1 turns it off), got {p!r}")
        s = self.seed
        if not _is_whole(s) or not (0 <= s < 2**64):
            raise ValueError(f"seed must be a whole number in [0, 2**64), got {s!r}")
        return self

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SamplingSettings":
        """Missing keys take defaults; unknown keys are an error (they are usually typos)."""
        unknown = sorted(set(data) - {"temperature", "top_k", "top_p", "seed"})
        if unknown:
            raise ValueError(f"unknown sampling setting(s): {', '.join(unknown)}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- reasons


class Exclusion(enum.IntEnum):
    """Why a token got zero final probability: the FIRST stage that removed it."""

    KEPT = 0
    GREEDY = 1  # temperature 0
    TOP_K = 2
    TOP_P = 3
    MASKED = 4  # raw logit already -inf (banned before any knob)


_REASON_NAMES = {
    Exclusion.GREEDY: "greedy (T=0)",
    Exclusion.TOP_K: "top-k",
    Exclusion.TOP_P: "top-p",
    Exclusion.MASKED: "masked (-inf logit)",
}


def reason_name(code: int) -> str | None:
    """Short label for an exclusion code; None for a kept token."""
    code = Exclusion(int(code))  # ValueError on an unknown code
    return _REASON_NAMES.get(code)


# --------------------------------------------------------------------------- results


class TokenRow(NamedTuple):
    id: int
    logit: float
    raw_p: float
    final_p: float
    excluded_by: str | None  # reason_name(...) or None when kept


@dataclass(frozen=True, eq=False)
class Distribution:
    """The pipeline's result for one logits vector and one SamplingSettings.

    raw_probs: softmax(logits) at T=1, what the model says.          # (V,)
    final_probs: after the pipeline, renormalised; 0 where excluded.  # (V,)
    excluded_by: uint8 Exclusion code per token.                      # (V,)
    entropy_before: nats, of softmax(logits / T); for T=0 it is the raw
        (T=1) entropy, since the greedy "distribution" has none to show.
    entropy_after: nats, of final_probs.
    """

    settings: SamplingSettings
    logits: torch.Tensor  # (V,) float32
    raw_probs: torch.Tensor  # (V,) float32
    final_probs: torch.Tensor  # (V,) float32
    excluded_by: torch.Tensor  # (V,) uint8
    n_survivors: int
    entropy_before: float
    entropy_after: float
    _view: "LogitsView" = field(repr=False)

    @property
    def vocab_size(self) -> int:
        return self.logits.shape[0]

    def survivor_ids(self) -> torch.Tensor:
        """Ids of the tokens that can be sampled, ascending."""
        return torch.nonzero(self.excluded_by == Exclusion.KEPT).squeeze(1)

    def top(self, n: int = 20) -> list[TokenRow]:
        """The n highest tokens by raw logit (ties: lower id first), as display rows."""
        ids = self._view.top_ids(n)
        logits = self.logits[ids].tolist()
        raw = self.raw_probs[ids].tolist()
        final = self.final_probs[ids].tolist()
        codes = self.excluded_by[ids].tolist()
        return [
            TokenRow(int(i), logits[j], raw[j], final[j], reason_name(codes[j]))
            for j, i in enumerate(ids.tolist())
        ]


# --------------------------------------------------------------------------- the engine


def _as_logits_vector(logits: Any) -> torch.Tensor:
    """Validated float32 CPU copy-or-view of a (V,) logits vector."""
    x = torch.as_tensor(logits)
    if x.ndim != 1:
        raise ValueError(f"logits must be one vector of shape (V,), got shape {tuple(x.shape)} (use logits[0, -1])")
    if x.shape[0] == 0:
        raise ValueError("logits must not be empty")
    if not x.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {x.dtype}")
    x = x.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if bool(torch.isnan(x).any()) or bool(torch.isposinf(x).any()):
        raise ValueError("logits contain NaN or +inf")
    if bool(torch.isneginf(x).all()):
        raise ValueError("logits are all -inf: no token can be sampled")
    return x


def _stable_ascending_order(x: torch.Tensor) -> torch.Tensor:
    """Ids sorting x ascending, ties by ascending id (== torch.sort(x, stable=True)).

    ~6x faster than torch's stable sort here: each float is mapped to an
    order-preserving uint32 and packed with its id into one unique uint64 key,
    so numpy's fast (unstable, SIMD) sort yields the stable order.
    """
    bits = (x.numpy() + np.float32(0.0)).view(np.int32)  # + 0.0 turns -0.0 into 0.0: they tie
    ordered = (bits ^ ((bits >> 31) | np.int32(-(2**31)))).view(np.uint32)  # flip sign bit / all bits
    keys = ordered.astype(np.uint64) << np.uint64(32)
    keys |= np.arange(x.shape[0], dtype=np.uint64)
    keys.sort()
    low_words = keys.view(np.uint32)[0::2] if np.little_endian else keys.view(np.uint32)[1::2]
    return torch.from_numpy(low_words.astype(np.int64))


def _entropy_of_logits(z: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(entropy in nats, probs) of softmax(z); z must be finite."""  # z: (n,)
    logp = torch.log_softmax(z, dim=0)
    p = logp.exp()
    return float(-(p * logp).sum()), p


class LogitsView:
    """One logits vector with its sorted order cached, answering `apply(settings)` fast.

    Build one per new logits vector; every knob change then calls `apply`.
    """

    def __init__(self, logits: Any):
        self.logits = _as_logits_vector(logits)  # (V,) float32
        v = self.logits.shape[0]
        self.ascending_ids = _stable_ascending_order(self.logits)  # (V,) int64
        self.ascending_values = torch.index_select(self.logits, 0, self.ascending_ids)  # (V,)
        # -inf logits sort first; they are masked, never survivors.
        self.n_masked = int(torch.isneginf(self.logits).sum())
        self.raw_entropy, finite_probs = _entropy_of_logits(self.ascending_values[self.n_masked:])
        raw_probs = torch.zeros(v)
        raw_probs.index_copy_(0, self.ascending_ids[self.n_masked:], finite_probs)
        self.raw_probs = raw_probs  # (V,)
        self.greedy_id = int(torch.argmax(self.logits))  # first maximum, as HF greedy

    @property
    def vocab_size(self) -> int:
        return self.logits.shape[0]

    def top_ids(self, n: int) -> torch.Tensor:
        """Ids of the n largest raw logits, ordered by (logit desc, id asc)."""
        v = self.vocab_size
        n = max(0, min(int(n), v))
        if n == 0:
            return torch.zeros(0, dtype=torch.int64)
        values, ids = self.ascending_values, self.ascending_ids
        boundary = values[v - n : v - n + 1]
        n_above = v - int(torch.searchsorted(values, boundary, right=True))
        tie_start = int(torch.searchsorted(values, boundary, right=False))
        # All tokens strictly above the boundary value, then the lowest ids tied with it.
        chosen = torch.cat([ids[v - n_above :], ids[tie_start : tie_start + n - n_above]])
        chosen = chosen.sort().values  # ascending id, so the stable sort below breaks ties by id
        order = torch.sort(self.logits[chosen], descending=True, stable=True).indices
        return chosen[order]

    def apply(self, settings: SamplingSettings) -> Distribution:
        settings.validate()
        if settings.is_greedy:
            return self._greedy(settings)
        v = self.vocab_size
        t = settings.temperature
        # Same float32 op as TemperatureLogitsWarper; dividing by t > 0 keeps the order.
        scaled = self.ascending_values / t  # (V,) ascending
        entropy_before, tempered_probs = _entropy_of_logits(scaled[self.n_masked :])

        # Ascending positions [0, topk_start) are removed by top-k.
        topk_start = 0
        k = settings.top_k
        if k is not None and k < v:
            kth = scaled[v - k : v - k + 1]  # the k-th largest scaled value
            # HF removes only scores < kth: ties with it survive.
            topk_start = int(torch.searchsorted(scaled, kth, right=False))

        # Ascending positions [0, topp_start) are removed by top-p (or earlier).
        topp_start = topk_start
        p = settings.top_p
        if p < 1.0:
            # Rebuild exactly the vector HF sorts (-inf for top-k losers) so softmax and
            # cumsum round the same way and the cut lands on the same token.
            hf_sorted = scaled
            if topk_start:
                hf_sorted = scaled.clone()
                hf_sorted[:topk_start] = -math.inf
            cumulative = hf_sorted.softmax(dim=0).cumsum(dim=0)
            n_removed = int((cumulative <= (1 - p)).sum())  # a prefix: cumulative is monotone
            topp_start = max(topk_start, min(n_removed, v - 1))  # always keep the top token

        start = max(topp_start, self.n_masked)
        codes = torch.zeros(v, dtype=torch.uint8)  # (V,) in ascending order, scattered below
        codes[:topk_start] = Exclusion.TOP_K
        codes[topk_start:topp_start] = Exclusion.TOP_P
        codes[: self.n_masked] = Exclusion.MASKED
        excluded_by = torch.empty(v, dtype=torch.uint8).index_copy_(0, self.ascending_ids, codes)

        final_probs = torch.zeros(v)  # (V,)
        if start == self.n_masked:  # nothing cut by a knob: final is the tempered distribution
            entropy_after, survivor_probs = entropy_before, tempered_probs
        else:
            entropy_after, survivor_probs = _entropy_of_logits(scaled[start:])
        final_probs.index_copy_(0, self.ascending_ids[start:], survivor_probs)
        return Distribution(
            settings=settings,
            logits=self.logits,
            raw_probs=self.raw_probs,
            final_probs=final_probs,
            excluded_by=excluded_by,
            n_survivors=v - start,
            entropy_before=entropy_before,
            entropy_after=entropy_after,
            _view=self,
        )

    def _greedy(self, settings: SamplingSettings) -> Distribution:
        v = self.vocab_size
        excluded_by = torch.full((v,), int(Exclusion.GREEDY), dtype=torch.uint8)
        excluded_by[self.ascending_ids[: self.n_masked]] = Exclusion.MASKED
        excluded_by[self.greedy_id] = Exclusion.KEPT
        final_probs = torch.zeros(v)
        final_probs[self.greedy_id] = 1.0
        return Distribution(
            settings=settings,
            logits=self.logits,
            raw_probs=self.raw_probs,
            final_probs=final_probs,
            excluded_by=excluded_by,
            n_survivors=1,
            entropy_before=self.raw_entropy,  # T=0 has no tempered distribution; show the model's own
            entropy_after=0.0,
            _view=self,
        )


def apply(logits: Any, settings: SamplingSettings) -> Distribution:
    """One-shot pipeline. For repeated knob changes on the same logits, keep a LogitsView."""
    return LogitsView(logits).apply(settings)


def greedy(logits: Any) -> int:
    """The argmax token (the first one on ties, like HF greedy decoding)."""
    return int(torch.argmax(_as_logits_vector(logits)))


def sample(dist_or_probs: Distribution | torch.Tensor, seed: int | None = None) -> int:
    """Draw one token id, reproducibly: same probabilities + same seed -> same id.

    Uses its own torch.Generator, so the global RNG is neither used nor disturbed.
    With a Distribution, `seed` defaults to its settings.seed.
    Inverse-CDF draw: a zero-probability token can never be returned.
    """
    if isinstance(dist_or_probs, Distribution):
        probs = dist_or_probs.final_probs
        if seed is None:
            seed = dist_or_probs.settings.seed
    else:
        probs = torch.as_tensor(dist_or_probs)
        if seed is None:
            raise ValueError("seed is required when sampling from a bare probability tensor")
        if probs.ndim != 1 or probs.shape[0] == 0 or not probs.is_floating_point():
            raise ValueError("probs must be a non-empty floating-point vector of shape (V,)")
        if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()) or not bool((probs > 0).any()):
            raise ValueError("probs must be finite, non-negative and not all zero")
    if not _is_whole(seed) or not (0 <= seed < 2**64):
        raise ValueError(f"seed must be a whole number in [0, 2**64), got {seed!r}")
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    u = torch.rand((), generator=generator, dtype=torch.float64)
    cdf = torch.cumsum(probs.detach().cpu().to(torch.float64), dim=0)  # (V,)
    # First index whose cdf exceeds u * total: its own probability is > 0.
    index = int(torch.searchsorted(cdf, (u * cdf[-1]).reshape(1), right=True))
    if index >= cdf.shape[0]:  # u * total rounded up to total: take the last positive token
        index = int(torch.nonzero(probs > 0)[-1])
    return index


# --------------------------------------------------------------------------- A/B comparison


@dataclass(frozen=True)
class ABRow:
    token_id: int
    prob_a: float
    prob_b: float
    rank_a: int | None  # 1 + number of tokens with strictly higher final prob; None if excluded
    rank_b: int | None
    rank_change: int | None  # rank_a - rank_b: positive = climbed in B; None if either is None
    new_in_top_n: bool  # in B's top-N, not in A's
    dropped_from_top_n: bool  # in A's top-N, not in B's


@dataclass(frozen=True)
class ABComparison:
    """How distribution B (e.g. with a system prompt) differs from A (e.g. without).

    rows: the union of both top-N by final probability (survivors only), B's
    top-N first in B's order, then the tokens that dropped out, in A's order.

    KL divergences, in nats, computed in float64 from log-probabilities:
      * kl_basis "final": neither distribution had a token excluded by a knob,
        so the final distributions (softmax(logits / T)) are compared.
      * kl_basis "raw": some knob excluded tokens on either side. Truncated
        distributions usually have different supports, which makes KL infinite
        and meaningless, so the raw T=1 distributions (what the model says) are
        compared instead.
    Terms where the first argument has zero probability contribute 0 (the
    p log p -> 0 limit). The result is +inf only if the first argument gives
    mass to a token the second masks with a -inf logit.
    """

    rows: tuple[ABRow, ...]
    top_n: int
    kl_b_a: float  # KL(B || A)
    kl_a_b: float  # KL(A || B)
    kl_basis: str  # "final" or "raw"


def _top_final_ids(dist: Distribution, n: int) -> torch.Tensor:
    """Survivor ids with the n highest final probs, ordered by (prob desc, id asc)."""
    probs = dist.final_probs
    n = min(n, dist.n_survivors)
    if n <= 0:
        return torch.zeros(0, dtype=torch.int64)
    nth = torch.topk(probs, n, sorted=False).values.min()
    above = torch.nonzero(probs > nth).squeeze(1)
    tied = torch.nonzero(probs == nth).squeeze(1)[: n - above.shape[0]]  # lowest ids among ties
    chosen = torch.cat([above, tied]).sort().values
    return chosen[torch.sort(probs[chosen], descending=True, stable=True).indices]


def _competition_ranks(probs: torch.Tensor, ids: list[int]) -> dict[int, int | None]:
    """1 + number of tokens with strictly higher prob, for each id; None for zero-prob ids."""
    values = probs[ids]  # (R,)
    counts = (probs.unsqueeze(0) > values.unsqueeze(1)).sum(dim=1)  # (R,)
    return {i: (int(c) + 1 if float(p) > 0 else None) for i, p, c in zip(ids, values, counts)}


def _log_probs_for_kl(dist: Distribution, basis: str) -> torch.Tensor:
    if basis == "raw":
        z = dist.logits
    else:
        z = dist.logits / dist.settings.temperature  # same float32 op as the pipeline
    return torch.log_softmax(z.to(torch.float64), dim=0)  # (V,)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(P || Q) from log-probabilities; 0 log 0 = 0, and inf where Q masks P's support."""
    support = torch.isfinite(log_p)
    if bool((support & ~torch.isfinite(log_q)).any()):
        return math.inf
    lp, lq = log_p[support], log_q[support]
    return max(0.0, float((lp.exp() * (lp - lq)).sum()))  # clamp tiny negative rounding


def compare(dist_a: Distribution, dist_b: Distribution, top_n: int = 20) -> ABComparison:
    if dist_a.vocab_size != dist_b.vocab_size:
        raise ValueError(f"cannot compare vocabularies of {dist_a.vocab_size} and {dist_b.vocab_size} tokens")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    top_a = _top_final_ids(dist_a, top_n).tolist()
    top_b = _top_final_ids(dist_b, top_n).tolist()
    in_a, in_b = set(top_a), set(top_b)
    ids = top_b + [i for i in top_a if i not in in_b]
    ranks_a = _competition_ranks(dist_a.final_probs, ids)
    ranks_b = _competition_ranks(dist_b.final_probs, ids)
    probs_a = dist_a.final_probs[ids].tolist()
    probs_b = dist_b.final_probs[ids].tolist()
    rows = []
    for j, i in enumerate(ids):
        ra, rb = ranks_a[i], ranks_b[i]
        rows.append(ABRow(
            token_id=i,
            prob_a=probs_a[j],
            prob_b=probs_b[j],
            rank_a=ra,
            rank_b=rb,
            rank_change=None if ra is None or rb is None else ra - rb,
            new_in_top_n=i in in_b and i not in in_a,
            dropped_from_top_n=i in in_a and i not in in_b,
        ))

    knob_cut = any(
        bool(((d.excluded_by != Exclusion.KEPT) & (d.excluded_by != Exclusion.MASKED)).any())
        for d in (dist_a, dist_b)
    )
    basis = "raw" if knob_cut else "final"
    log_a, log_b = _log_probs_for_kl(dist_a, basis), _log_probs_for_kl(dist_b, basis)
    return ABComparison(
        rows=tuple(rows),
        top_n=top_n,
        kl_b_a=_kl(log_b, log_a),
        kl_a_b=_kl(log_a, log_b),
        kl_basis=basis,
    )
