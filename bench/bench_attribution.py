"""Attribution benchmarks (issue 32): ours against the forward it is built on, in the same run.

    .venv/bin/python bench/bench_attribution.py                    # the embedded default, CPU
    .venv/bin/python bench/bench_attribution.py --real-size ROOT   # Gemma 2 2B + Gemma Scope 16K/262K, random
        weights, from the HF cache `bench/smoke_real_size.py --keep --only build --root ROOT` builds

Embedded (13 tokens, both SAEs), interleaved medians:
  attribution     `core.views.attribution.build` with --verify 0: one forward and one backward to the SAE
                  layer, both SAEs' active latents read, labels of the top rows
  forward         one fresh forward with both SAEs' codes (Session.run on a cleared prompt cache)
  verify 20       the ablation check of 20 features: one batched forward of 21 rows with their edits
  batched 20      one batched forward of 20 rows, no edits
Targets: attribution / forward <= 3; verify 20 / batched 20 <= 1.5.

Real size: `spectrascope spectrum`'s work (the same view's build) vs one attribution, each timed
once after a warm-up of both (labels of a random SAE are computed on first use, then cached), and the process's peak RSS after each (the attribution runs second, so its
extra peak is the growth). Targets: <= 3x the spectrum run, peak <= the spectrum run's + 1.5 GB.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

PROMPT_13 = "The Eiffel Tower is in Paris. The capital of France is"


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def embedded(repeats: int) -> None:
    from spectrascope.core.engine.plan import AblateFeatures
    from spectrascope.core.engine.session import Session
    from spectrascope.core.engine.values import Request
    from spectrascope.core.views.attribution import AttributionSpec, build

    session = Session.load()
    ids, _ = session.tokenize(PROMPT_13)
    print(f"{session.describe()} · {len(ids)} tokens (BOS included) · torch threads {torch.get_num_threads()}")
    spec = AttributionSpec(PROMPT_13, target=" Paris", vs=" the", verify=0)
    report = build(session, spec)

    def forward():
        session.forget_prompt()
        session.run(Request(PROMPT_13))

    t = interleaved_medians({"attribution": lambda: build(session, spec), "forward": forward}, repeats)
    print(f"attribution {t['attribution'] * 1e3:7.1f} ms · forward with both SAEs {t['forward'] * 1e3:7.1f} ms · "
          f"ratio {t['attribution'] / t['forward']:.2f} (target <= 3)")

    rows = [(f.role, f.position, f.feature) for f in report.features[:20]]
    batch20 = torch.tensor([ids] * 20)
    batch21 = torch.tensor([ids] * 21)
    edits = [AblateFeatures(role, ((pos, feat),), row=r + 1) for r, (role, pos, feat) in enumerate(rows)]
    scores = [report.target_id, report.vs_id]
    t = interleaved_medians({
        "verify": lambda: session.forward(batch21, edits=edits, keep_logits=0, scores=scores),
        "batched": lambda: session.forward(batch20, keep_logits=1),
    }, repeats)
    print(f"verify 20 {t['verify'] * 1e3:7.1f} ms · batched forward of 20 {t['batched'] * 1e3:7.1f} ms · "
          f"ratio {t['verify'] / t['batched']:.2f} (target <= 1.5)")


def real_size(root: Path) -> None:
    os.environ.update(HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    from spectrascope.core.engine.saes import parse_role_spec
    from spectrascope.core.engine.session import Session
    from spectrascope.core.views.attribution import AttributionSpec
    from spectrascope.core.views.attribution import build as attribute
    from spectrascope.core.views.spectrum import SpectrumSpec
    from spectrascope.core.views.spectrum import build as spectrum

    saes = [parse_role_spec(f"{role}=gemma-scope-2b-pt-res/layer_12/width_{w}/average_l0_{l0}")
            for role, w, l0 in (("coarse", "16k", 82), ("fine", "262k", 121))]
    t0 = time.perf_counter()
    session = Session.load("gemma-2-2b", device="cpu", dtype="bfloat16", saes=saes)
    print(f"loaded {session.describe()} in {time.perf_counter() - t0:.0f} s; peak RSS {peak_gb():.2f} GB")
    spectrum(session, SpectrumSpec(PROMPT_13))  # warm-ups: first-call allocations, each view's labels computed
    attribute(session, AttributionSpec(PROMPT_13, target=" Paris", vs=" the", verify=0))
    session.forget_prompt()
    t0 = time.perf_counter()
    spectrum(session, SpectrumSpec(PROMPT_13))
    t_spec, rss_spec = time.perf_counter() - t0, peak_gb()
    print(f"spectrum run {t_spec:6.2f} s, peak RSS {rss_spec:.2f} GB")
    for verify in (0, 20):
        t0 = time.perf_counter()
        rep = attribute(session, AttributionSpec(PROMPT_13, target=" Paris", vs=" the", verify=verify))
        t_attr, rss = time.perf_counter() - t0, peak_gb()
        print(f"attribution (verify {verify:2}) {t_attr:6.2f} s = {t_attr / t_spec:.2f}x the spectrum run (<= 3); "
              f"peak RSS {rss:.2f} GB = spectrum's + {rss - rss_spec:.2f} GB (target <= 1.5); "
              f"{sum(s.active for s in rep.saes):,} active latents read")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--real-size", type=Path, metavar="ROOT", help="the smoke script's kept build folder")
    args = ap.parse_args()
    real_size(args.real_size) if args.real_size else embedded(args.repeats)


if __name__ == "__main__":
    main()
