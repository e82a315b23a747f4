"""Logits pane benchmarks (issue 3).

    .venv/bin/python bench/bench_logits.py [--steps 16] [--dtype float32]

1. Knob change -> re-rendered table at the full 262,144 vocabulary, no forward:
   ours = LogitsPane redraw (pipeline + top 20 + FastTable strips + the screen's
   next paint); baseline = transformers' three warpers + softmax + topk on the
   same logits. Target: ours under 16 ms (one frame at 60 Hz).
2. One generation step with KV cache on the embedded model: ours = Stepper.step
   (pipeline, seeded sample, decode step, bookkeeping); baseline = a bare
   transformers decode step with the same cache type, same model and dtype,
   interleaved in the same run. Target: ratio <= 1.2.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import asyncio
import statistics
import time

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.tui.fake_session

V = 262_144


def knob_change_bench(repeats: int) -> dict:
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.pilot import until
    from tests.tui.fake_session import FakeSession

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(V, generator=gen) * 3  # (V,) roughly the spread of real logits
    knobs = [
        dict(temperature=0.7, top_k=None, top_p=0.9),
        dict(temperature=0.7, top_k=40, top_p=0.95),
        dict(temperature=1.3, top_k=None, top_p=1.0),
        dict(temperature=0.0, top_k=None, top_p=1.0),
    ]

    class Piece(FakeSession):
        def piece(self, token_id):
            return f" tok{token_id}"

    app = SpectrascopeApp(lambda progress: Piece(), prompt="x")
    ours: list[float] = []

    async def drive():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.result is not None, timeout=4)
            pane = app.query_one("#logits")
            from spectrascope.core.stats.sampling import LogitsView

            pane.view = LogitsView(logits)
            for i in range(repeats * len(knobs)):
                k = knobs[i % len(knobs)]
                t0 = time.perf_counter()
                pane._set(**k)
                app.screen._refresh_layout()  # the paint the next frame would do
                app.screen._compositor.render_update()
                ours.append(time.perf_counter() - t0)
                await pilot.pause()

    asyncio.run(drive())

    base: list[float] = []
    scores = logits[None].clone()  # (1, V)
    for i in range(repeats * len(knobs)):
        k = knobs[i % len(knobs)]
        t0 = time.perf_counter()
        s = scores.clone()
        if k["temperature"] > 0:
            s = TemperatureLogitsWarper(k["temperature"])(None, s)
            if k["top_k"]:
                s = TopKLogitsWarper(k["top_k"])(None, s)
            if k["top_p"] < 1:
                s = TopPLogitsWarper(k["top_p"])(None, s)
            p = s.softmax(-1)
            p.topk(20)
        else:
            s.argmax()
        base.append(time.perf_counter() - t0)
    return {"ours_ms": statistics.median(ours) * 1e3, "p90_ours_ms": sorted(ours)[int(0.9 * len(ours))] * 1e3,
            "hf_ms": statistics.median(base) * 1e3}


def decode_step_bench(steps: int, dtype: str) -> dict:
    from transformers import DynamicCache

    from spectrascope.core.engine.generation import Stepper
    from spectrascope.core.stats.sampling import SamplingSettings
    from spectrascope.core.engine.session import Session

    session = Session.load("gemma-3-270m", device="cpu", dtype=dtype)
    hf = session.model.hf_model
    prompt = "The capital of France is"
    stepper = Stepper.start(session, prompt, SamplingSettings(temperature=0.8, top_k=40, top_p=0.95, seed=0))
    ids = torch.tensor([stepper.prompt_ids])
    with torch.inference_mode():
        out = hf(ids, past_key_values=DynamicCache(config=hf.config), use_cache=True, logits_to_keep=1)
    cache, next_id = out.past_key_values, out.logits[0, -1].argmax()
    ours, base = [], []
    for _ in range(steps):  # interleaved; both sequences grow one token per step
        t0 = time.perf_counter()
        stepper.step()
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = hf(next_id.view(1, 1), past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, next_id = out.past_key_values, out.logits[0, -1].argmax()
        base.append(time.perf_counter() - t0)
    o, b = statistics.median(ours[2:]), statistics.median(base[2:])
    return {"ours_ms": o * 1e3, "hf_ms": b * 1e3, "ratio": o / b}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    k = knob_change_bench(args.repeats)
    print(f"knob change -> redrawn table, V={V:,}: ours {k['ours_ms']:.1f} ms median "
          f"(p90 {k['p90_ours_ms']:.1f} ms; target < 16 ms) · HF warpers+softmax+topk alone "
          f"{k['hf_ms']:.1f} ms · ratio {k['ours_ms'] / k['hf_ms']:.2f}x")
    d = decode_step_bench(args.steps, args.dtype)
    print(f"one generation step with KV cache (cpu {args.dtype}): ours {d['ours_ms']:.1f} ms · bare HF decode "
          f"{d['hf_ms']:.1f} ms · ratio {d['ratio']:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
