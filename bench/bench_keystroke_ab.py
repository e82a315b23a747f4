"""A keystroke with the system-prompt A/B on vs off (issue 31), at 13 and 512 prompt tokens.

    .venv/bin/python bench/bench_keystroke_ab.py [--dtype auto] [--keystrokes 9] [--lengths 13,512]

A keystroke appends one character to the prompt and does what the app does, on the embedded
default model with its SAEs:
  off      Session.run(Request(prompt)): the prompt pane's run (residuals, logits, both SAEs' codes),
           and the next-token distribution under the knobs that the Logits pane draws from it
  on       what the app does with the A/B on: the prompt's run carries the with-system text as a
           companion (Request.companions), so both extend their caches in one forward (packed in one
           sequence: core/engine/kv_batch.py), then
           system_prompt_ab(session, prompt, system, settings) finds both answers kept (no forward)
  separate the same without companions (the previous way): the A/B's variants run after the
           prompt's run, each from its own cache slot: a second forward per keystroke
  old      the same three runs all through one cache slot, as before per-slot caches: each request
           evicts the previous one's state, so every keystroke costs three full forwards
  ab math  the A/B's work that is not a model call: both variants' distributions and their comparison
Each mode is timed on the same keystrokes, interleaved (the state before each keystroke is rebuilt
untimed). Target: on / off <= 1.3x.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import statistics
import sys
import time
from pathlib import Path

TEXT = (Path(__file__).resolve().parent.parent / "assets" / "prompts" / "france.txt").read_text()
SYSTEM = "You are a geography teacher. Answer in one word."
TYPED = " Paris is the capital"  # typed one character at a time after the prompt head


def head_of(session, n_tokens: int) -> str:
    """A prompt head of about `n_tokens` tokens (BOS included) before the typing starts."""
    ids = session.tokenizer(TEXT, add_special_tokens=False)["input_ids"][: n_tokens - 2]
    return session.decode(ids)


def bench_length(session, n_tokens: int, keystrokes: int) -> dict:
    from spectrascope.core.engine.generation import ab_companions, system_prompt_ab, with_system_prompt
    from spectrascope.core.engine.session import Request
    from spectrascope.core.stats.knobs import SamplingSettings
    from spectrascope.core.stats.sampling import LogitsView, compare

    settings = SamplingSettings()
    head = head_of(session, n_tokens)
    prompts = [head + TYPED[:k] for k in range(1, keystrokes + 2)]  # prompts[i] -> prompts[i + 1] is one keystroke

    def off(prompt: str) -> None:  # the Logits pane draws the distribution under the knobs on each result
        LogitsView(session.run(Request(prompt)).logits).apply(settings)

    def on(prompt: str) -> None:
        session.run(Request(prompt, companions=ab_companions(session, prompt, SYSTEM)))
        system_prompt_ab(session, prompt, SYSTEM, settings)

    def separate(prompt: str) -> None:
        session.run(Request(prompt))
        system_prompt_ab(session, prompt, SYSTEM, settings)

    def old(prompt: str) -> None:
        session.run(Request(prompt))
        for system in ("", SYSTEM):  # the old A/B's requests, through the prompt's own slot
            session.run(Request(with_system_prompt(session, system, prompt), layers=(0,), codes=False))

    without = session.run(Request(prompts[0], codes=False)).logits
    with_system = session.run(Request(with_system_prompt(session, SYSTEM, prompts[0]), codes=False)).logits

    def ab_math(prompt: str) -> None:
        compare(LogitsView(without).apply(settings), LogitsView(with_system).apply(settings), top_n=20)

    modes = {"off": off, "on": on, "separate": separate, "old": old, "ab_math": ab_math}
    times: dict[str, list[float]] = {name: [] for name in modes}
    for before, after in zip(prompts, prompts[1:]):
        for name, keystroke in modes.items():
            keystroke(before)  # the state the keystroke starts from (untimed)
            t0 = time.perf_counter()
            keystroke(after)
            times[name].append(time.perf_counter() - t0)
    return {"tokens": len(session.tokenize(prompts[1])[0]),
            **{name: statistics.median(t[1:]) * 1e3 for name, t in times.items()}}  # the first one warms up


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--keystrokes", type=int, default=9)
    ap.add_argument("--lengths", default="13,512")
    args = ap.parse_args()

    import torch

    from spectrascope.core.engine.session import Session

    session = Session.load(dtype=None if args.dtype == "auto" else args.dtype)
    print(f"bench_keystroke_ab · {session.describe()} · cpu threads {torch.get_num_threads()} · "
          f"load average {os.getloadavg()[0]:.2f} · medians of {args.keystrokes - 1} keystrokes, interleaved")
    print(f"{'tokens':>6} {'A/B off':>9} {'A/B on':>9} {'separate':>9} {'old on':>9} {'ab math':>9} {'on/off':>7} "
          f"{'sep/off':>8} {'old/off':>8}")
    ok = True
    for n in (int(x) for x in args.lengths.split(",")):
        r = bench_length(session, n, args.keystrokes)
        ratio, old_ratio = r["on"] / r["off"], r["old"] / r["off"]
        ok &= ratio <= 1.3
        print(f"{r['tokens']:>6} {r['off']:>7.1f}ms {r['on']:>7.1f}ms {r['separate']:>7.1f}ms {r['old']:>7.1f}ms "
              f"{r['ab_math']:>7.1f}ms {ratio:>6.2f}x {r['separate'] / r['off']:>7.2f}x {old_ratio:>7.2f}x")
    print(f"target: A/B on <= 1.3x A/B off · {'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
