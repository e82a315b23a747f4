"""Knob-change latency of the Logits pane vs transformers' warpers, at V = 262,144.

    .venv/bin/python bench/bench_sampling.py [--repeats 15] [--threads 1 2]

"ours" is what a knob change costs once the logits are cached in a LogitsView:
`view.apply(settings)` + `dist.top(20)`. The baseline is what transformers does
per call on the same logits: the active warpers (Temperature -> TopK -> TopP) in
sequence + softmax, on a (1, V) tensor. Median wall-clock ms over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from spectrascope.core.stats.sampling import LogitsView, SamplingSettings, apply, compare

VOCAB = 262_144
TARGET_MS = 16.0

CASES = [
    ("all off (T=1)", SamplingSettings()),
    ("T=0.7", SamplingSettings(temperature=0.7)),
    ("greedy (T=0)", SamplingSettings(temperature=0.0)),
    ("T=0.7 k=50", SamplingSettings(temperature=0.7, top_k=50)),
    ("T=0.7 p=0.9", SamplingSettings(temperature=0.7, top_p=0.9)),
    ("T=0.7 k=50 p=0.9", SamplingSettings(temperature=0.7, top_k=50, top_p=0.9)),
    ("T=1.3 k=40000 p=0.95", SamplingSettings(temperature=1.3, top_k=40_000, top_p=0.95)),
]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def load_note() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return ""


def hf_baseline(scores: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    if s.temperature == 0:  # HF greedy decoding skips the warpers: an argmax
        return scores.argmax(dim=-1)
    dummy_ids = torch.zeros((1, 1), dtype=torch.long)
    scores = TemperatureLogitsWarper(s.temperature)(dummy_ids, scores)
    if s.top_k is not None:
        scores = TopKLogitsWarper(s.top_k)(dummy_ids, scores)
    if s.top_p < 1.0:
        scores = TopPLogitsWarper(s.top_p)(dummy_ids, scores)
    return scores.softmax(dim=-1)


def run(threads: int, repeats: int, logits: torch.Tensor) -> None:
    torch.set_num_threads(threads)
    scores = logits.unsqueeze(0)  # (1, V)
    print(f"\ntorch threads = {threads}, V = {VOCAB:,}, median of {repeats} runs; {load_note()}")
    build = median_ms(lambda: LogitsView(logits), repeats)
    print(f"  LogitsView(logits) build, once per new logits vector: {build:7.2f} ms")
    heavy = CASES[-1][1]
    one_shot = median_ms(lambda: apply(logits, heavy).top(20), repeats)
    print(f"  one-shot apply(logits, ...) + top(20), {CASES[-1][0]}: {one_shot:7.2f} ms")
    view = LogitsView(logits)
    header = f"  {'knob setting':<22} {'ours ms':>8} {'HF ms':>8} {'HF/ours':>8}  vs {TARGET_MS:g} ms"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, s in CASES:
        ours = median_ms(lambda: view.apply(s).top(20), repeats)
        theirs = median_ms(lambda: hf_baseline(scores, s), repeats)
        verdict = "ok" if ours <= TARGET_MS else "OVER"
        print(f"  {label:<22} {ours:8.2f} {theirs:8.2f} {theirs / ours:7.1f}x  {verdict}")
    other = LogitsView(logits.roll(7) + 0.1 * torch.randn(VOCAB, generator=torch.Generator().manual_seed(1)))
    s = CASES[-2][1]
    ab = median_ms(lambda: compare(view.apply(s), other.apply(s), top_n=20), repeats)
    print(f"  A/B: two apply + compare(top_n=20), {CASES[-2][0]}: {ab:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({torch.get_num_threads(), 1}))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    # Gemma-like: soft-capped at 30, a few strong candidates over a long flat tail.
    logits = 30 * torch.tanh((torch.randn(VOCAB, generator=generator) * 3) / 30)
    for threads in args.threads:
        run(threads, args.repeats, logits)


if __name__ == "__main__":
    main()
