"""Poor-fit flag rates on held-out-like text: the old rule vs the percentile rule, per shipped prompt file.

    .venv/bin/python bench/fidelity_poor_rate.py [--dtype float32] [--all]

Runs the odd-numbered lines of assets/prompts/*.txt (the half the shipped poor-fit percentile was not set
on; --all: every line) through the embedded model and both SAEs, as the Spectrum pane does (Session.run),
and prints per file and overall: tokens, share flagged by the old rule (fidelity with the massive dims
< 0.5) and by the new one (fidelity without them < the SAE's shipped 5th percentile), the headline
fidelity's percentiles, and BOS. No timing: a figure, not a benchmark.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default=None, help="model dtype (default: the CLI's)")
    ap.add_argument("--all", action="store_true", help="every line, not only the odd ones")
    args = ap.parse_args()
    import torch
    from spectrascope.core.analysis.contrast import load_prompts
    from spectrascope.core.assets import PROMPTS_DIR
    from spectrascope.core.engine.session import Request, Session

    torch.set_num_threads(2)
    session = Session.load("gemma-3-270m", dtype=args.dtype)
    rows: dict[str, dict[str, list]] = {}
    i = 0
    for path in sorted(PROMPTS_DIR.glob("*.txt")):
        for text in load_prompts(path):  # the same order as load_prompts(PROMPTS_DIR): line i of the whole list
            i += 1
            if not args.all and i % 2 == 1:  # i - 1 even: a reference line
                continue
            result = session.run(Request(text))
            for role, spec in result.spectra.items():
                r = rows.setdefault(role, {}).setdefault(path.stem, [])
                r.append((spec.fidelity_rest.numpy(), spec.fidelity.numpy(), spec.poor_below))
    print(f"model dtype {session.model.dtype}; {'all' if args.all else 'odd'} lines of assets/prompts/*.txt")
    for role, by_file in rows.items():
        stats = session.resid_stats[role]
        print(f"\n{role}: poor below {stats.poor_threshold:.4f} ({stats.poor_threshold_source})")
        print(f"  {'file':<18}{'tokens':>7}{'old rule':>10}{'new rule':>10}{'p5':>8}{'median':>8}{'mean':>8}{'mean w/':>9}")
        every_rest, every_full = [], []
        bos_poor = 0
        for name, parts in by_file.items():
            rest = np.concatenate([p[0][1:] for p in parts])  # BOS left out
            full = np.concatenate([p[1][1:] for p in parts])
            bos_poor += sum(bool(p[0][0] < p[2]) for p in parts)
            every_rest.append(rest)
            every_full.append(full)
            print(f"  {name:<18}{len(rest):>7}{(full < 0.5).mean():>10.2%}{(rest < stats.poor_threshold).mean():>10.2%}"
                  f"{np.percentile(rest, 5):>8.3f}{np.median(rest):>8.3f}{rest.mean():>8.3f}{full.mean():>9.3f}")
        rest, full = np.concatenate(every_rest), np.concatenate(every_full)
        n_prompts = sum(len(p) for p in by_file.values())
        print(f"  {'all':<18}{len(rest):>7}{(full < 0.5).mean():>10.2%}{(rest < stats.poor_threshold).mean():>10.2%}"
              f"{np.percentile(rest, 5):>8.3f}{np.median(rest):>8.3f}{rest.mean():>8.3f}{full.mean():>9.3f}")
        q = np.percentile(rest, [1, 5, 25, 50, 75, 95, 99])
        print(f"  headline fidelity percentiles 1/5/25/50/75/95/99: {' / '.join(f'{v:.3f}' for v in q)}; "
              f"BOS flagged on {bos_poor} of {n_prompts} prompts")


if __name__ == "__main__":
    main()
