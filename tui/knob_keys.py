"""The sampling knobs as the Logits pane's keys turn them and as its knobs line shows them."""

from __future__ import annotations

from typing import Any

from spectrascope.core.stats.knobs import SamplingSettings

TOP_K_STEPS = [None, 1, 2, 3, 5, 10, 20, 40, 50, 100, 200, 500, 1000]  # k and K walk this ladder


def turned(s: SamplingSettings, knob: str, amount: float) -> dict[str, Any]:
    """`knob` ("temperature", "top_k", "top_p", "seed") moved by `amount` (top-k: rungs of TOP_K_STEPS), as the
    change to make to `s`: temperature stops at 0 (greedy), top-p between 0.05 and 1 (off)."""
    if knob == "seed":
        return {"seed": s.seed + int(amount)}
    if knob == "temperature":
        t = round(max(0.0, s.temperature + amount), 2)
        return {"temperature": 0.0 if t < 0.05 else t}
    if knob == "top_k":
        rung = TOP_K_STEPS.index(s.top_k) if s.top_k in TOP_K_STEPS else 0
        return {"top_k": TOP_K_STEPS[max(0, min(len(TOP_K_STEPS) - 1, rung + int(amount)))]}
    return {"top_p": round(min(1.0, max(0.05, s.top_p + amount)), 2)}


def knob_text(s: SamplingSettings) -> str:
    temp = "0 (greedy)" if s.is_greedy else f"{s.temperature:.2f}"
    k = "off" if s.top_k is None else str(s.top_k)
    p = "off" if s.top_p >= 1.0 else f"{s.top_p:.2f}"
    return f"T {temp}   top-k {k}   top-p {p}   seed {s.seed}"
