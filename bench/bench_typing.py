"""Typing latency (issue 12): a one-token change at the end of a prompt, 13 / 128 / 512 tokens.

    .venv/bin/python bench/bench_typing.py [--dtype auto] [--repeats 9] [--lengths 13,128,512]

Per prompt length, timed interleaved in the same run on the same model object:
  incremental  Session.run after the previous prompt (same but its last token): reuses the KV
               cache, runs 1 token; residuals + last-position logits (+ both SAEs' codes)
  full         Session.run of a prompt it has not seen (forget_prompt first): what every
               keystroke cost before the incremental forward
  hf full      bare HF: a full forward of the prompt (logits_to_keep=1), no hooks, no SAEs
  decode       bare HF: one KV-cache decode step (logits_to_keep=1) on a cache of T-1 tokens
Targets at 512 tokens: incremental <= 1.5x decode, and at least 4x less than a full forward
(ours and bare HF's).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

TEXT = (Path(__file__).resolve().parent.parent / "assets" / "prompts" / "france.txt").read_text()


def prompt_of(session, n_tokens: int) -> tuple[str, str]:
    """Two prompts of about `n_tokens` tokens (BOS included) that differ only in the last word."""
    ids = session.tokenizer(TEXT, add_special_tokens=False)["input_ids"][: n_tokens - 2]
    head = session.decode(ids)
    return head + " Paris", head + " Lyon"


def bench_length(session, n_tokens: int, repeats: int, codes: bool) -> dict:
    import torch

    from spectrascope.core.engine.session import Request

    a, b = prompt_of(session, n_tokens)
    ids = session.tokenize(a)[0]
    hf = session.model.hf_model
    cache = session.new_cache()
    with torch.inference_mode():
        hf(torch.tensor([ids[:-1]]), past_key_values=cache, use_cache=True, logits_to_keep=1)
    turn = [0]
    session.run(Request(a, codes=codes))  # the prompt the first keystroke edits

    def incremental():
        turn[0] ^= 1
        r = session.run(Request(b if turn[0] else a, codes=codes))
        assert r.reused == len(ids) - 1, (r.reused, len(ids))

    def full():
        session.forget_prompt()
        session.run(Request(a, codes=codes))

    def hf_full():
        with torch.inference_mode():
            hf(torch.tensor([ids]), logits_to_keep=1)

    def decode():
        with torch.inference_mode():
            hf(torch.tensor([ids[-1:]]), past_key_values=cache, use_cache=True, logits_to_keep=1)
        session.crop_cache(cache, len(ids) - 1)

    med = interleaved_medians({"incremental": incremental, "full": full, "hf_full": hf_full, "decode": decode},
                              repeats)
    return {"tokens": len(ids), **{k: v * 1e3 for k, v in med.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--lengths", default="13,128,512")
    args = ap.parse_args()

    import torch

    from spectrascope.core.engine.session import Session

    session = Session.load("gemma-3-270m", dtype=None if args.dtype == "auto" else args.dtype)
    print(f"bench_typing · {session.describe()} · cpu threads {torch.get_num_threads()} · "
          f"load average {os.getloadavg()[0]:.2f} · medians of {args.repeats}, interleaved")
    print(f"{'codes':<6} {'tokens':>6} {'incremental':>12} {'full':>9} {'hf full':>9} {'decode':>9} "
          f"{'inc/decode':>11} {'full/inc':>9} {'hf full/inc':>12}")
    ok = True
    for codes in (False, True):
        for n in (int(x) for x in args.lengths.split(",")):
            r = bench_length(session, n, args.repeats, codes)
            inc_dec, full_inc = r["incremental"] / r["decode"], r["full"] / r["incremental"]
            hf_inc = r["hf_full"] / r["incremental"]
            if n >= 512:
                ok &= inc_dec <= 1.5 and full_inc >= 4 and hf_inc >= 4
            print(f"{'SAEs' if codes else 'none':<6} {r['tokens']:>6} {r['incremental']:>10.1f}ms "
                  f"{r['full']:>7.1f}ms {r['hf_full']:>7.1f}ms {r['decode']:>7.1f}ms {inc_dec:>10.2f}x "
                  f"{full_inc:>8.1f}x {hf_inc:>11.1f}x")
    print(f"targets at 512 tokens: incremental <= 1.5x decode, full forwards >= 4x incremental · "
          f"{'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
