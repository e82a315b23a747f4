"""The Layers view (issue 16): the logit lens of a 12-token prompt vs a bare HF forward that returns
all hidden states. Target: at most 1.3x.

    .venv/bin/python bench/bench_lens.py [--dtype float32] [--repeats 9]

Ours is `core.lens.logit_lens`: one forward capturing every layer, the lens at the selected
position for every layer, and the settled grid (every layer x every position through the final
norm and the 262K-token unembedding, scanned in chunks with an early exit: `lens.settled_grid`).
"lens at one position" leaves the grid out, to show what the grid costs; "before" is the grid
as it was first written (every layer's full logits and argmax), kept here as the reference: the
bench checks both grids are identical. Timed interleaved in the same run.
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
    names = lens.hooks(session.model.n_layers)

    def ours():
        lens.logit_lens(session, PROMPT_12)

    def one_position():  # the per-layer table alone, no settled grid
        resid = session.forward(ids, capture=names, keep_logits=0).resid
        session.lens_logits(torch.stack([resid[h][0, -1] for h in names]))

    def before():  # the first version: every layer's (T, V) logits and their argmax
        resid = session.forward(ids, capture=names, keep_logits=0).resid
        stream = torch.stack([resid[h][0].float().cpu() for h in names])
        final_top = session.lens_logits(stream[-1]).argmax(-1)
        session.lens_logits(stream[:, -1])
        return tuple(tuple(bool(v) for v in (session.lens_logits(stream[layer]).argmax(-1) == final_top))
                     for layer in range(stream.shape[0]))

    same = before() == lens.logit_lens(session, PROMPT_12).settled

    def baseline():
        with torch.inference_mode():
            hf(torch.tensor([ids]), output_hidden_states=True)

    med = interleaved_medians({"ours": ours, "one": one_position, "before": before, "base": baseline},
                              args.repeats)
    print(f"logit lens, {len(ids)} tokens, {session.model.n_layers + 1} layers, {args.dtype}")
    print(f"  HF forward with all hidden states  {med['base'] * 1e3:8.1f} ms")
    print(f"  ours: lens + settled grid          {med['ours'] * 1e3:8.1f} ms   ratio {med['ours'] / med['base']:.2f}x"
          f" (target <= 1.3x)")
    print(f"  ours: lens at one position only    {med['one'] * 1e3:8.1f} ms   ratio {med['one'] / med['base']:.2f}x")
    print(f"  before: lens + full-argmax grid    {med['before'] * 1e3:8.1f} ms   ratio "
          f"{med['before'] / med['base']:.2f}x   (grids identical: {same})")


if __name__ == "__main__":
    main()
