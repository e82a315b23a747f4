"""Foundation benchmarks (issue 2): prompt latency vs bare HF, cold first frame, warm load, peak RSS.

    .venv/bin/python bench/bench_foundation.py [--dtype float32] [--repeats 15]

Ours and the baseline are timed in the same run, interleaved, on the same
model object, so the ratio holds even on a busy machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

PROMPT_12 = "The Eiffel Tower is located in the city of Paris, France"  # 12 tokens with <bos>


def bench_latency(dtype: str, repeats: int) -> dict:
    import torch

    from spectrascope.core.engine.session import Request, Session

    session = Session.load("gemma-3-270m", device="cpu", dtype=dtype)
    ids = torch.tensor([session.tokenize(PROMPT_12)[0]])
    hf = session.model.hf_model
    n_tokens = ids.shape[1]

    def ours():  # what issue 2 times: tokens, resid at the hook, last-position logits
        session.forget_prompt()  # a prompt it has not seen: no prefix reuse (bench_typing times that)
        session.run(Request(PROMPT_12, codes=False))

    def ours_with_saes():  # the same pass plus coarse + fine SAE codes (the app's default)
        session.forget_prompt()
        session.run(Request(PROMPT_12))

    def baseline():
        with torch.inference_mode():
            hf(ids, logits_to_keep=1)

    med = interleaved_medians({"ours": ours, "saes": ours_with_saes, "base": baseline}, repeats)
    med_o, med_b = med["ours"], med["base"]
    sae_names = ", ".join(f"{r} {sae.cfg.d_sae:,}" for r, sae in session.saes.items()) or "none loaded"
    return {
        "with_saes_ms": med["saes"] * 1e3,
        "with_saes_ratio": med["saes"] / med_b,
        "saes": sae_names,
        "dtype": dtype,
        "tokens": n_tokens,
        "ours_ms": med_o * 1e3,
        "hf_logits_to_keep_1_ms": med_b * 1e3,
        "ratio": med_o / med_b,
        "target_ratio": 1.2,
    }


FIRST_FRAME = """
import time
t0 = time.perf_counter()
from spectrascope.tui.app import SpectrascopeApp
import threading
hold = threading.Event()
def factory(progress):
    hold.wait(30)  # the model never arrives: we time the frame, not the load
    raise RuntimeError("not loaded")
class Probe(SpectrascopeApp):
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(self._done)
    def _done(self):
        print("FIRST_FRAME", time.perf_counter() - t0, flush=True)
        hold.set()
        self.exit()
Probe(factory).run(headless=True)
"""

LOAD_RSS = """
import resource, time, sys
t0 = time.perf_counter()
from spectrascope.core.engine.session import Session, Request
s = Session.load("gemma-3-270m", device="cpu", dtype=sys.argv[1])
t1 = time.perf_counter()
s.run(Request("The capital of France is"))
print("LOAD", t1 - t0, "RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
"""

HF_LOAD = """
import time, sys, torch
t0 = time.perf_counter()
from transformers import AutoModelForCausalLM
from spectrascope.core.engine.embedded import ensure_embedded_model
AutoModelForCausalLM.from_pretrained(str(ensure_embedded_model()), dtype=getattr(torch, sys.argv[1]))
print("HFLOAD", time.perf_counter() - t0, flush=True)
"""


def run_py(code: str, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = {"latency": bench_latency(args.dtype, args.repeats)}
    wall, out = run_py(FIRST_FRAME)
    rows["first_frame_s"] = float(out.split("FIRST_FRAME")[1].split()[0])
    rows["first_frame_process_wall_s"] = wall
    _, out = run_py(LOAD_RSS, args.dtype)
    parts = out.split()
    rows["warm_load_s"] = float(parts[1])
    rows["peak_rss_mb"] = float(parts[3])
    _, out = run_py(HF_LOAD, args.dtype)
    rows["bare_hf_load_s"] = float(out.split()[1])
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    lat = rows["latency"]
    print(f"prompt -> result ({lat['tokens']} tokens, cpu {lat['dtype']}), median of {args.repeats}:")
    print(f"  ours (tokens + resid + last logits) {lat['ours_ms']:8.1f} ms")
    print(f"  bare HF forward, logits_to_keep=1   {lat['hf_logits_to_keep_1_ms']:8.1f} ms")
    print(f"  ratio {lat['ratio']:.2f}x   (target <= 1.2x)")
    print(f"  with both SAEs encoded too ({lat['saes']}): {lat['with_saes_ms']:.1f} ms, "
          f"ratio {lat['with_saes_ratio']:.2f}x (the Spectrum target is 1.3x: bench_spectrum.py)")
    print(f"first frame (imports + app + frame): {rows['first_frame_s']:.2f} s  (target < 2 s; "
          f"process wall incl. interpreter {rows['first_frame_process_wall_s']:.2f} s)")
    print(f"warm model load (Session.load):      {rows['warm_load_s']:.2f} s  (target < 10 s; "
          f"bare HF from_pretrained {rows['bare_hf_load_s']:.2f} s, ratio {rows['warm_load_s'] / rows['bare_hf_load_s']:.2f}x)")
    print(f"peak RSS after load + one prompt:    {rows['peak_rss_mb']:.0f} MB  (target < 2500 MB)")


if __name__ == "__main__":
    main()
