"""The Layers view (issue 16): the logit lens of a 12-token prompt vs a bare HF forward that returns
all hidden states. Target: at most 1.3x, for what the pane shows first.

    .venv/bin/python bench/bench_lens.py [--dtype float32] [--repeats 9]

The pane (tui/panes/layers.py) shows the per-layer table as soon as it is ready and then the
settled grid, from the same forward. Printed separately, all timed interleaved in the same run:
  * to the table: `lens.read_stream` (one forward capturing every layer) + `lens.lens_table`
    (L+1 rows through the final norm and the 262K-token unembedding) -- the 1.3x target;
  * the grid after it: `lens.lens_grid` (every layer x every position, chunked scan with an early
    exit: `lens.settled_grid`), and table + grid together (`lens.logit_lens`, the CLI's report);
  * another token of the same prompt: `lens_table` on the kept stream (no forward).
The grid is checked identical to the plain reference (every layer's full logits and argmax).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

PROMPT_12 = "The Eiffel Tower is located in the city of Paris, France"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()

    import torch

    from spectrascope.core import lens
    from spectrascope.core.session import Session

    session = Session.load("gemma-3-270m", device="cpu", dtype=args.dtype, saes=())
    ids = session.tokenize(PROMPT_12)[0]
    hf = session.model.hf_model

    stream = lens.read_stream(session, PROMPT_12)

    def table():  # what the pane shows first
        lens.lens_table(session, lens.read_stream(session, PROMPT_12))

    def grid():  # what follows it, from the same stream
        lens.lens_grid(session, stream)

    def whole():  # table + grid: the CLI's report
        lens.logit_lens(session, PROMPT_12)

    def other_token():  # ←/→ in the pane: the kept stream, no forward
        lens.lens_table(session, stream, 3)

    def reference():  # the plain grid: every layer's (T, V) logits and their argmax
        final_top = session.lens_logits(stream.resid[-1]).argmax(-1)
        return tuple(tuple(bool(v) for v in (session.lens_logits(stream.resid[layer]).argmax(-1) == final_top))
                     for layer in range(stream.resid.shape[0]))

    same = reference() == lens.logit_lens(session, PROMPT_12).settled

    def baseline():
        with torch.inference_mode():
            hf(torch.tensor([ids]), output_hidden_states=True)

    med = interleaved_medians({"base": baseline, "table": table, "grid": grid, "whole": whole, "other": other_token},
                              args.repeats)
    base = med["base"]

    def line(name: str, key: str, note: str = "") -> None:
        print(f"  {name:<42} {med[key] * 1e3:8.1f} ms   ratio {med[key] / base:.2f}x{note}")

    print(f"logit lens, {len(ids)} tokens, {session.model.n_layers + 1} layers, {args.dtype}, "
          f"{args.repeats} repeats interleaved, load average {os.getloadavg()[0]:.2f}")
    print(f"  {'HF forward with all hidden states':<42} {base * 1e3:8.1f} ms")
    line("to the table (forward + L+1 lens rows)", "table",
         f"   (target <= 1.3x: {'OK' if med['table'] / base <= 1.3 else 'ABOVE TARGET'})")
    line("the settled grid after it (same stream)", "grid")
    line("table + grid (logit_lens, the CLI)", "whole")
    line("another token's table (kept stream)", "other")
    print(f"  grid identical to the full-argmax reference: {same}")


if __name__ == "__main__":
    main()
