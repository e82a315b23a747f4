"""The Layers view (issue 16): the logit lens of a 12-token prompt vs a bare HF forward that returns
all hidden states. Target: at most 1.3x, for what the pane shows first.

    .venv/bin/python bench/bench_lens.py [--dtype auto|bfloat16|float32] [--repeats 9] [--bounds]

The pane (tui/panes/layers.py) shows the per-layer table as soon as it is ready and then the
settled grid, from the same forward. Printed separately, all timed interleaved in the same run:
  * to the table: `lens.read_stream` (one forward capturing every layer) + `lens.lens_table`
    (L+1 rows through the final norm and the 262K-token unembedding) -- the 1.3x target;
  * the grid after it: `lens.lens_grid` (every layer x every position, chunked scan with an early
    exit: `lens.settled_grid`), and table + grid together (`lens.logit_lens`, the CLI's report);
  * another token of the same prompt: `lens_table` on the kept stream (no forward).
The grid is checked identical to the plain reference (every layer's full logits and argmax).

Also printed, the grid's floor for any exact method: the output's top-1 at every position (one pass
of T rows over the 262K-row unembedding) plus one pass of the rows that do settle, which must be
compared with every token, with no scan overhead. An exact grid cannot cost less than that, and it
alone is about half a bare forward: the whole view cannot reach 1.3x, only what it shows first.
`--bounds` measures why no exact pruning helps: for the settled rows, how many tokens an upper
bound from the unembedding's top-r singular directions plus Cauchy-Schwarz on the rest leaves to
check (all but a few thousand of 262K even at r=512 of 640).
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
    ap.add_argument("--dtype", default="auto", help="the session's dtype; auto: what the app picks (bf16 on this CPU)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--bounds", action="store_true", help="also measure low-rank pruning bounds")
    args = ap.parse_args()

    import torch

    from spectrascope.core.analysis import lens
    from spectrascope.core.engine.session import Session

    session = Session.load("gemma-3-270m", device="cpu", dtype=args.dtype, saes=())
    args.dtype = session.model.dtype
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
    final_rows = stream.resid[-1]
    settled = torch.tensor(lens.lens_grid(session, stream)[:-1]).reshape(-1)
    settled_rows = stream.resid[:-1].reshape(-1, stream.resid.shape[-1])[settled]

    def floor():  # the two passes over the unembedding no exact grid avoids
        session.lens_logits(final_rows)
        session.lens_logits(settled_rows)

    def baseline():
        with torch.inference_mode():
            hf(torch.tensor([ids]), output_hidden_states=True)

    med = interleaved_medians({"base": baseline, "table": table, "grid": grid, "whole": whole, "other": other_token,
                               "floor": floor},
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
    line(f"grid floor ({len(final_rows)} + {len(settled_rows)} settled rows, 1 pass each)", "floor")
    print(f"  grid identical to the full-argmax reference: {same}")
    if args.bounds:
        low_rank_bounds(session, settled_rows, settled, stream)


def low_rank_bounds(session, settled_rows, settled, stream) -> None:
    """Tokens left to check per settled row when W v.u <= (W_r v).(u_r) + |W_perp v| |u_perp|."""
    import torch

    weight = session.unembedding().float()
    with torch.inference_mode():
        u = session.model.hf_model.model.norm(settled_rows.to(session.unembedding().dtype)).float()
    final_top = session.lens_logits(stream.resid[-1]).argmax(-1)
    n_layers = stream.resid.shape[0]
    target = final_top.repeat(n_layers - 1)[settled]  # settled: the grid's (L*T,) mask, output layer excluded
    own = (u * weight[target]).sum(-1)
    evecs = torch.linalg.eigh((weight.T @ weight).double())[1].flip(-1).float()  # right singular vectors, largest first
    print(f"  low-rank + Cauchy-Schwarz bounds, {len(u)} settled rows, {weight.shape[0]:,} tokens:")
    for r in (64, 128, 256, 384, 512):
        basis = evecs[:, :r]
        w_r, u_r = weight @ basis, u @ basis
        w_perp = (weight - w_r @ basis.T).norm(dim=-1)
        u_perp = (u - u_r @ basis.T).norm(dim=-1)
        left = ((u_r @ w_r.T + u_perp[:, None] * w_perp[None]) >= own[:, None]).sum(-1).float()
        print(f"    r={r:<4} tokens left to check per row: median {left.median():,.0f}, max {left.max():,.0f}")


if __name__ == "__main__":
    main()
