"""Does a (linear) tuned lens beat the logit lens at early layers of the embedded model? (issue 16)

    .venv/bin/python bench/tuned_lens_trial.py [--fit-on corpus|prompts] [--fit-rows 48] [--eval-rows 4]
                                               [--ridge 1e-4] [--json FILE]

Needs the training pipeline's token rows (`python -m spectrascope.core.train corpus cache`): the
translators are fitted on training rows (or, --fit-on prompts, on the shipped prompt sets as the
Layers view's `u` does), scored on held-out rows (documents disjoint), 128-token
sequences, BOS left out. Prints per layer KL(output || lens) and top-1 agreement for both lenses.
See core/tuned_lens.py for the method.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit-on", choices=["corpus", "prompts"], default="corpus")
    ap.add_argument("--fit-rows", type=int, default=48)
    ap.add_argument("--eval-rows", type=int, default=4)
    ap.add_argument("--ridge", type=float, default=1e-4)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from spectrascope.core.train.activations import ActivationCache, acts_dir, load_session
    from spectrascope.core.analysis.tuned_lens import compare, fit_translators, residual_stream, to_dict, tuned_lens

    session = load_session()
    t0 = time.time()
    eval_rows = ActivationCache(acts_dir("heldout")).tokens()[: args.eval_rows].tolist()
    if args.fit_on == "prompts":
        lens = tuned_lens(session, ridge=args.ridge)
        maps, fitted = list(lens.maps), f"the shipped prompt sets: {lens.fitted_on}"
    else:
        fit = residual_stream(session, ActivationCache(acts_dir("train")).tokens()[: args.fit_rows].tolist())
        maps, fitted = fit_translators(fit, ridge=args.ridge), f"{fit.shape[1]:,} training-corpus positions"
    held = residual_stream(session, eval_rows)
    scores = compare(session, held, maps)
    print(f"fit on {fitted}, scored on {held.shape[1]:,} held-out corpus positions "
          f"(ridge {args.ridge}), {time.time() - t0:.0f} s")
    print(f"{'layer':>5}  {'KL logit':>9}  {'KL tuned':>9}  {'top1 logit':>10}  {'top1 tuned':>10}")
    for s in scores:
        print(f"{s.layer:>5}  {s.kl_logit:>9.3f}  {s.kl_tuned:>9.3f}  {s.top1_logit:>10.1%}  {s.top1_tuned:>10.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"fitted_on": fitted, "eval_positions": held.shape[1], "ridge": args.ridge,
                       "scores": to_dict(scores)}, f, indent=1)


if __name__ == "__main__":
    main()
