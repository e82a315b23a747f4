"""The verdict's label-permutation test (issue 34): ours vs the straightforward loop, same run.

    .venv/bin/python bench/bench_permutation.py [--concept FILE --neutral FILE] [--n 200] [--repeats 3]

ours     = core.stats.permutation.permutation_test: the per-feature ranks of the coarse activations are
           label-free, so every shuffle's Mann-Whitney U (and firing rates) is one (n, N) x (N, F) product;
           anchors by one row-wise lexsort; the anchors' sub-feature counts looked up.
baseline = for each shuffle: feature_stats(acts, shuffled labels).ranked(K) (the AUROC ranked again per
           shuffle, as a notebook would), then the same count lookup.
Both use the same shuffles and must give the same statistic for each. The sub-feature counts of the
live coarse features (the null model's, shared) are computed once before and timed apart. The contrast
run comes from the cache (run `spectrascope contrast` on the same sets first, or it runs here).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.timing import interleaved_medians  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concept", default=None)
    ap.add_argument("--neutral", default=None)
    ap.add_argument("--n", type=int, default=200, help="label shuffles")
    ap.add_argument("--anchors", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from spectrascope.core.analysis import pairing
    from spectrascope.core.analysis.contrast import default_sets, feature_stats, load_prompts, run_contrast
    from spectrascope.core.engine.session import Session
    from spectrascope.core.stats import hierarchy
    from spectrascope.core.stats.null_model import live_features, subfeature_counts
    from spectrascope.core.stats.permutation import permutation_test, shuffled_labels

    session = Session.load("gemma-3-270m")
    paths = (args.concept or default_sets()[0], args.neutral or default_sets()[1])
    concept, neutral = (load_prompts(p) for p in paths)
    t = time.perf_counter()
    run = run_contrast(session, concept, neutral)
    print(f"{session.describe()} · {len(concept)}/{len(neutral)} prompts · contrast run "
          f"{'from cache' if run.cached else 'computed'} in {time.perf_counter() - t:.1f} s")
    acts_c, acts_f = run.per_prompt("coarse"), run.per_prompt("fine")
    wc, wf = session.decoder_directions("coarse"), session.decoder_directions("fine")
    settings = pairing.PairingSettings(n_anchors=args.anchors)

    t = time.perf_counter()
    nest = hierarchy.nesting(run)
    live, _ = live_features(acts_c)
    counts = np.zeros(acts_c.shape[1], np.int64)
    counts[live] = subfeature_counts(acts_c, acts_f, wc, wf, live, settings.cos_threshold,
                                     settings.corr_threshold, nesting=nest)
    t_counts = time.perf_counter() - t
    print(f"sub-feature counts of {len(live):,} live coarse features (shared with the null model): {t_counts:.2f} s")

    anchors = run.stats["coarse"].ranked(args.anchors)
    observed = int(counts[anchors].max())
    labels = shuffled_labels(run.is_concept, args.n)

    def ours():
        return permutation_test(acts_c, run.is_concept, lambda ids: counts[ids], args.anchors,
                                settings.min_subfeatures, observed, args.n)

    def baseline():
        t_perm = [counts[feature_stats(acts_c, lab).ranked(args.anchors)].max() for lab in labels]
        at_least = int((np.asarray(t_perm) >= observed).sum())
        return (1 + at_least) / (1 + args.n)

    assert ours().p_value == baseline(), "the two paths disagree"
    times = interleaved_medians({"ours": ours, "baseline": baseline}, args.repeats, warmup=1)
    test = ours()
    print(f"anchors {anchors}, observed T = {observed}: {test.text}")
    print(f"ours     {times['ours']:7.3f} s for {args.n} shuffles")
    print(f"baseline {times['baseline']:7.3f} s")
    print(f"ratio    {times['baseline'] / times['ours']:7.1f} x")
    t = time.perf_counter()
    res = pairing.pair(run, wc, wf, settings)
    print(f"whole pair() with null model, permutation test and grid: {time.perf_counter() - t:.2f} s · "
          f"{res.verdict.text}")


if __name__ == "__main__":
    main()
