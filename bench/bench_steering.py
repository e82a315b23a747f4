"""Steering overhead (issue 7): steered vs unsteered generation, same loop, same model, interleaved.

    .venv/bin/python bench/bench_steering.py [--tiny] [--tokens 16] [--repeats N] [--dtype auto]

Both sides run `core.generation.generate` (prefill + KV-cache decode + seeded sampling exactly as
the pane does); the unsteered side passes no edits (no hooks installed), the steered side adds
a coarse and a fine feature direction ("add") or clamps them ("clamp": one encode per SAE per
step). Timings alternate between the modes within each repeat (order rotated) so load on the
shared machine hits both; the figure is the median seconds per generated token (prefill
included, divided by the token count). Target: steered / unsteered <= 1.15.

Without --tiny the embedded Gemma 3 270M is used with its embedded SAEs; if they are not built
yet, random TopK SAEs of the embedded widths (coarse 1024 k=32, fine 8192 k=64) at
blocks.9.hook_resid_post stand in: the hook's cost depends only on the shapes, so they are a
fair timing stand-in (the printed header says which was used).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.conftest helpers

TARGET = 1.15
PROMPT = "The weather in the old town today is"


def load(tiny: bool, dtype: str):
    from spectrascope.core.engine.session import Session
    from tests.conftest import build_tiny_model_dir, make_tiny_sae

    if tiny:
        folder = build_tiny_model_dir(tempfile.mkdtemp(prefix="bench-steer-"), "gemma3")
        session = Session.load(str(folder), device="cpu", dtype="float32")
        session.attach_sae("coarse", make_tiny_sae(64, 128, "blocks.2.hook_resid_post", "topk", k=8, seed=1))
        session.attach_sae("fine", make_tiny_sae(64, 1024, "blocks.2.hook_resid_post", "jumprelu", seed=2))
        return session, "tiny Gemma 3 (random) + random SAEs 128 / 1024 at blocks.2"
    session = Session.load("gemma-3-270m", device="cpu", dtype=None if dtype == "auto" else dtype)
    note = "embedded SAEs"
    stand_in = {"coarse": (1024, 32), "fine": (8192, 64)}
    for role, (width, k) in stand_in.items():
        if role not in session.saes:
            sae = make_tiny_sae(session.model.d_model, width, "blocks.9.hook_resid_post", "topk", k=k, seed=3)
            session.attach_sae(role, sae)
            note = "RANDOM stand-in SAEs of the embedded widths (coarse 1024 k=32, fine 8192 k=64) at blocks.9"
    return session, f"gemma-3-270m ({session.model.dtype}) + {note}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny random model (seconds, for CI)")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=None, help="default 21 with --tiny, else 7")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    import torch

    from spectrascope.core.analysis import steering as st
    from spectrascope.core.engine.generation import generate
    from spectrascope.core.stats.knobs import SamplingSettings

    if args.repeats is None:
        args.repeats = 21 if args.tiny else 7
    session, what = load(args.tiny, args.dtype)
    feats = [st.SteerFeature("coarse", 5, 4.0), st.SteerFeature("fine", 7, 4.0)]
    units = st.feature_units(session, feats)
    prompt_ids, _ = session.tokenize(PROMPT)
    settings = SamplingSettings(temperature=1.0)
    modes = {
        "unsteered": (),
        "add": st.SteeringSpec(tuple(feats), "add").edits(units, len(prompt_ids)),
        "clamp": st.SteeringSpec(tuple(feats), "clamp").edits(units, len(prompt_ids)),
    }
    edited = {m: 0 for m in modes}
    times: dict[str, list[float]] = {m: [] for m in modes}
    tokens: dict[str, int] = {}

    def once(mode: str, seed: int) -> float:
        start = time.perf_counter()
        (run,) = generate(session, prompt_ids, settings, [seed], args.tokens, modes[mode])
        elapsed = time.perf_counter() - start
        tokens[mode] = len(run.steps)
        edited[mode] += run.edited_forwards
        return elapsed / len(run.steps)

    for mode in modes:  # warm-up
        once(mode, 0)
    order = list(modes)
    for rep in range(args.repeats):
        for mode in order[rep % 3:] + order[: rep % 3]:
            times[mode].append(once(mode, rep))
    assert edited["unsteered"] == 0 and edited["add"] > 0 and edited["clamp"] > 0

    print(f"bench_steering · {what}")
    print(f"cpu threads {torch.get_num_threads()} · load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
          f" · {args.tokens} tokens × {args.repeats} repeats, interleaved")
    base = statistics.median(times["unsteered"])
    base_min = min(times["unsteered"])
    print(f"{'mode':<10} {'ms/token (median)':>18} {'min':>8} {'ratio':>7} {'ratio of mins':>14}")
    ok = True
    for mode, ts in times.items():
        med = statistics.median(ts)
        ratio = med / base
        if mode != "unsteered":
            ok &= ratio <= TARGET
        print(f"{mode:<10} {med * 1e3:>18.1f} {min(ts) * 1e3:>8.1f} {ratio:>6.3f}x {min(ts) / base_min:>13.3f}x")
    print(f"target: steered / unsteered (medians) <= {TARGET}x · {'OK' if ok else 'ABOVE TARGET'}"
          " · on a shared machine the ratio of minimums is the steadier figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
