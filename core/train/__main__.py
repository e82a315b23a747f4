"""One resumable pipeline for the embedded SAEs.

    python -m spectrascope.core.train all          # corpus -> cache -> train -> eval -> labels -> fidelity
    python -m spectrascope.core.train corpus|cache|train|eval|labels [options]
    python -m spectrascope.core.train card     # rewrite CARD.md from the stored records only
    python -m spectrascope.core.train concepts # best features per shipped concept set (concept_sets.json)
    python -m spectrascope.core.train fidelity # the poor-fit percentile per SAE (fidelity_reference.json)
    python -m spectrascope.core.train trial --d-sae 4096 --k 32 --minutes 20   # a width/tokens point, not shipped
    python -m spectrascope.core.train curve --which fine --points DIR_OR_CKPT ...  # held-out metrics vs tokens
    python -m spectrascope.core.train curve --which coarse --record-shipped "LABEL"  # after eval: the shipped SAE as a point

Every stage skips or resumes work already on disk (data under $SPECTRASCOPE_CACHE/train
or ~/.cache/spectrascope/train), so a killed run is restarted with the same command.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spectrascope.core.train")
    ap.add_argument("stage", choices=["corpus", "cache", "train", "eval", "labels", "card", "trial", "concepts", "curve", "fidelity", "all"])
    ap.add_argument("--d-sae", type=int, default=4096, help="trial: dictionary width")
    ap.add_argument("--k", type=int, default=32, help="trial: active latents per token (TopK)")
    ap.add_argument("--train-tokens", type=int, default=10_000_000, help="activations to cache for training")
    ap.add_argument("--heldout-tokens", type=int, default=65_000, help="activations to cache for evaluation")
    ap.add_argument("--which", choices=["coarse", "fine", "both"], default="both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget per SAE for training")
    ap.add_argument("--export-only", action="store_true", help="train: export the latest checkpoint as is")
    ap.add_argument("--continue-from", default=None,
                    help="train: continue this exported SAE folder (e.g. the shipped one) instead of a fresh init")
    ap.add_argument("--points", nargs="*", default=[],
                    help="curve: exported SAE folders or trainer checkpoints (ckpt.pt) to score")
    ap.add_argument("--record-shipped", default=None, metavar="LABEL",
                    help="curve: add the shipped SAE's metrics.json (from eval) to its heldout_curve.json as "
                         "point LABEL, refit and rewrite the card")
    ap.add_argument("--lr", type=float, default=None, help="train: override the preset's learning rate")
    ap.add_argument("--tokens", type=int, default=None,
                    help="train: tokens to train on (the step count and LR schedule; instead of --minutes, a budget "
                         "that does not depend on how much CPU the run gets, for like-for-like arms)")
    ap.add_argument("--k-aux", type=int, default=None, help="train: override the AuxK latents (dead-latent revival)")
    ap.add_argument("--aux-coef", type=float, default=None, help="train: override the AuxK loss weight")
    ap.add_argument("--resample-every", type=int, default=None,
                    help="train: restart dead latents every N steps (trainer.resample_dead; off in the presets)")
    ap.add_argument("--out", default=None, help="train: export here instead of assets/saes/<name>")
    ap.add_argument("--ce-seqs", type=int, default=256, help="held-out sequences for the CE-loss splice")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    stages = ["corpus", "cache", "train", "eval", "labels", "fidelity", "concepts"] if args.stage == "all" else [args.stage]
    which = ["coarse", "fine"] if args.which == "both" else [args.which]
    for stage in stages:
        print(f"== {stage}", file=sys.stderr, flush=True)
        if stage == "corpus":
            from spectrascope.core.train.corpus import build, format_mix

            print(format_mix(build()), flush=True)
        elif stage == "cache":
            from spectrascope.core.train.activations import build_cache

            build_cache("heldout", args.heldout_tokens)
            build_cache("train", args.train_tokens)
        elif stage == "train":
            from spectrascope.core.train.trainer import export_checkpoint, train_preset

            from pathlib import Path

            out = Path(args.out) if args.out else None
            start = Path(args.continue_from) if args.continue_from else None
            for w in which:
                print(export_checkpoint(w, out) if args.export_only
                      else train_preset(w, minutes=args.minutes, continue_from=start, out=out,
                                   overrides={"lr": args.lr, "total_tokens": args.tokens, "k_aux": args.k_aux, "aux_coef": args.aux_coef,
                                              "resample_every": args.resample_every}), flush=True)
        elif stage == "eval":
            from spectrascope.core.train.evaluate import evaluate_preset

            for w in which:
                evaluate_preset(w, ce_seqs=args.ce_seqs)
        elif stage == "card":
            from spectrascope.core.train.evaluate import write_card_preset

            for w in which:
                print(write_card_preset(w))
        elif stage == "trial":  # a point on the width/tokens curve, outside assets/ (issue 15)
            import json

            from spectrascope.core.train.trainer import train_trial

            print(json.dumps(train_trial(args.d_sae, args.k, args.minutes or 20), indent=1), flush=True)
        elif stage == "curve":
            from spectrascope.core.train.curve import format_curve, record_shipped, score_points

            for w in which:
                if args.record_shipped:
                    from spectrascope.core.train.evaluate import write_card_preset

                    print(format_curve(record_shipped(w, args.record_shipped)), flush=True)
                    print(write_card_preset(w), flush=True)
                else:
                    print(format_curve(score_points(w, args.points, ce_seqs=args.ce_seqs)), flush=True)
        elif stage == "concepts":  # the product check on every shipped concept set
            from spectrascope.core.train.concepts import write_concept_report

            print(write_concept_report(), flush=True)
        elif stage == "fidelity":  # the poor-fit percentile beside residual_stats.json
            from spectrascope.core.train.fidelity_reference import reference_preset

            for w in which:
                reference_preset(w)
        elif stage == "labels":
            from spectrascope.core.train.labels import labels_preset

            for w in which:
                labels_preset(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
