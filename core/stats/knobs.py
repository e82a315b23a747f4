"""The knobs a user turns (temperature, top-k, top-p, seed), validated.

Kept apart from the sampling math so the UI can hold and validate settings
without importing torch (which would delay the first frame by ~2 s).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

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
