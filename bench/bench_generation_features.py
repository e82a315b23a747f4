"""Per-step features (issue 16): a generation step that records the new token's SAE codes vs one
that does not. Target: at most 1.10x.

    .venv/bin/python bench/bench_generation_features.py [--tokens 16] [--repeats 7] [--dtype auto]

Both sides run `core.generation.generate` on the embedded Gemma 3 270M with its SAEs, same prompt,
same seed, same settings: features=True captures the residual at the SAE hook in each step's own
forward and encodes that one position with both SAEs (coarse, fine); features=False captures
nothing. The sampled tokens are checked identical. Timed interleaved in the same run (timing.py);
the figure is the median milliseconds per generated token (prefill included, divided by the count).
If the embedded SAEs are not built, random TopK SAEs of their widths stand in (the header says so):
the cost depends only on the shapes.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench_steering's loader uses tests.conftest
from bench_steering import load  # noqa: E402
from timing import interleaved_medians  # noqa: E402

TARGET = 1.10
PROMPT = "The weather in the old town today is"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    import torch

    from spectrascope.core.engine.generation import generate
    from spectrascope.core.stats.knobs import SamplingSettings

    session, what = load(False, args.dtype)
    prompt_ids, _ = session.tokenize(PROMPT)
    settings = SamplingSettings(temperature=1.0)
    runs: dict[bool, list] = {}

    def gen(features: bool):
        runs[features] = generate(session, prompt_ids, settings, [7], args.tokens, features=features)

    med = interleaved_medians({"with": lambda: gen(True), "without": lambda: gen(False)}, args.repeats)
    on, off = runs[True][0], runs[False][0]
    assert on.generated_ids() == off.generated_ids(), "same seed, different tokens"
    assert all(s.codes for s in on.steps) and not any(s.codes for s in off.steps)
    n = len(on.steps)
    per = {k: v / n * 1e3 for k, v in med.items()}
    ratio = med["with"] / med["without"]
    print(f"bench_generation_features · {what}")
    print(f"cpu threads {torch.get_num_threads()} · load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
          f" · {n} tokens × {args.repeats} repeats, interleaved · SAEs {', '.join(session.saes)}")
    print(f"  generate, features=False   {per['without']:8.1f} ms/token")
    print(f"  generate, features=True    {per['with']:8.1f} ms/token   ratio {ratio:.3f}x (target <= {TARGET}x) · "
          f"{'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
