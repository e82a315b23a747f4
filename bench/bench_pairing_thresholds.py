"""The Pairing pane's threshold keys (issue 34): what the key handler does on the UI thread now vs before.

    .venv/bin/python bench/bench_pairing_thresholds.py [--concept FILE --neutral FILE] [--repeats 3]

before   = the old handler: `reclassify` on the UI thread, with the verdict's null model (every live coarse
           feature paired with every fine one at the new thresholds), its permutation test and its
           threshold grid recomputed: the app froze for this long.
ui now   = the new handler's work on the UI thread: `PairingReport.provisional` (the classes and what the
           rule says on them; the grid kept). The rest runs as a job (tui/pairing_thresholds.py).
job now  = that job: `PairingReport.reclassified` (the null model and permutation p again, the grid kept,
           since it does not depend on the thresholds). It must give the same numbers as `before`.
All three on the same report, interleaved; the contrast run comes from the cache (or runs here first).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.timing import interleaved_medians  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concept", default=None)
    ap.add_argument("--neutral", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from spectrascope.core.analysis import pairing
    from spectrascope.core.analysis.contrast import default_sets, load_prompts
    from spectrascope.core.engine.session import Session
    from spectrascope.core.views.pairing import PairingReport

    session = Session.load("gemma-3-270m")
    paths = (args.concept or default_sets()[0], args.neutral or default_sets()[1])
    concept, neutral = (load_prompts(p) for p in paths)
    t = time.perf_counter()
    report = PairingReport(pairing.analyse(session, concept, neutral, labels=False))
    run = report.result.contrast
    print(f"{session.describe()} · {len(concept)}/{len(neutral)} prompts · contrast run "
          f"{'from cache' if run.cached else 'computed'}, pairing in {time.perf_counter() - t:.1f} s")
    moved = replace(report.result.settings, corr_threshold=round(report.result.settings.corr_threshold + 0.05, 2))

    def before():
        r = report.result  # the old reclassify: everything judged again on the UI thread, the grid too
        pairings = {a: p.reclassified(moved.cos_threshold, moved.corr_threshold) for a, p in r.pairings.items()}
        v = pairing.judged(r.contrast, [pairings[a] for a in r.anchors], moved, r.dirs)
        return pairing.with_checks(replace(r, settings=moved, pairings=pairings, verdict=v), r.checks)

    out = {}
    times = interleaved_medians({"before": lambda: out.__setitem__("before", before()),
                                 "ui now": lambda: report.provisional(moved),
                                 "job now": lambda: out.__setitem__("job", report.reclassified(moved).result)},
                                args.repeats, warmup=1)
    a, b = out["before"].verdict, out["job"].verdict
    same = (a.null == b.null and a.grid == b.grid and a.permutation.p_value == b.permutation.p_value
            and a.count == b.count and a.go == b.go)
    print(f"corr {report.result.settings.corr_threshold:.2f} -> {moved.corr_threshold:.2f}, median of {args.repeats}:")
    for name, s in times.items():
        print(f"  {name:8s} {s * 1000:10.1f} ms")
    print(f"UI thread: before / now = {times['before'] / times['ui now']:.0f}x less time blocked; "
          f"the job itself: before / job = {times['before'] / times['job now']:.2f}x; same numbers: {same}")


if __name__ == "__main__":
    main()
