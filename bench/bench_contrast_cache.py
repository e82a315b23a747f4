"""Contrast cache benchmark (issue 13): the compact format against the dense float32 one, same run.

    .venv/bin/python bench/bench_contrast_cache.py [--prompts 400] [--width 262144] [--density 0.003]

One (prompts x width) array of per-prompt activations shaped like a Gemma Scope 262K run
(--density of the entries nonzero, positive log-normal values) is written and read back:

baseline = format 1: the dense float32 array through np.savez (891 MB for a real 400-prompt run
           at 262K, which stores four such arrays: max and mean of each SAE, the coarse one narrower).
ours     = format 2: core.contrast.encode_compact (CSR or dense, float16 values) through np.savez,
           read back with decode_compact.

Prints the file sizes, write and read times (best of --repeat) and the ratios, and checks the
read-back array against the original (exact zeros, relative error <= 2^-11).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def random_sparse(n: int, f: int, density: float, seed: int = 0) -> np.ndarray:
    """(n, f) float32, `density` of it nonzero, drawn without an (n, f) float64 temporary."""
    rng = np.random.default_rng(seed)
    flat = np.unique(rng.integers(0, n * f, int(n * f * density)))
    a = np.zeros(n * f, np.float32)
    a[flat] = rng.lognormal(0.0, 1.0, flat.size).astype(np.float32)
    return a.reshape(n, f)


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    from spectrascope.core.analysis.contrast import decode_compact, encode_compact

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--width", type=int, default=262_144)
    ap.add_argument("--density", type=float, default=0.003)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    acts = random_sparse(args.prompts, args.width, args.density)
    print(f"array {args.prompts} x {args.width:,} float32, {np.count_nonzero(acts) / acts.size:.4%} nonzero")
    folder = Path(tempfile.mkdtemp(prefix="bench-contrast-cache-"))

    def write(path: Path, arrays: dict) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())

    dense_path, compact_path = folder / "dense.npz", folder / "compact.npz"
    dense_w, _ = best_of(args.repeat, lambda: write(dense_path, {"a": acts}))
    layout_box = {}

    def write_compact() -> None:
        stored, layout_box["layout"] = encode_compact("a", acts)
        write(compact_path, stored)

    compact_w, _ = best_of(args.repeat, write_compact)

    def read_dense() -> np.ndarray:
        with np.load(dense_path) as z:
            return z["a"]

    def read_compact() -> np.ndarray:
        with np.load(compact_path) as z:
            return decode_compact(z, "a", layout_box["layout"])

    dense_r, dense_back = best_of(args.repeat, read_dense)
    compact_r, back = best_of(args.repeat, read_compact)
    assert np.array_equal(dense_back, acts)
    assert np.array_equal(back != 0, acts != 0), "a nonzero activation was lost"
    rel = float(np.max(np.abs(back - acts) / np.where(acts != 0, acts, 1)))
    assert rel <= 2**-11, rel

    d_mb, c_mb = dense_path.stat().st_size / 1e6, compact_path.stat().st_size / 1e6
    print(f"layout: {layout_box['layout']['layout']}, {layout_box['layout']['dtype']} values; "
          f"max relative error {rel:.2e}")
    print(f"{'':10}{'size MB':>10}{'write s':>10}{'read s':>10}")
    print(f"{'dense f32':10}{d_mb:10.1f}{dense_w:10.3f}{dense_r:10.3f}")
    print(f"{'compact':10}{c_mb:10.1f}{compact_w:10.3f}{compact_r:10.3f}")
    print(f"ratio dense/compact: size {d_mb / c_mb:.1f}x, write {dense_w / compact_w:.2f}x, "
          f"read {dense_r / compact_r:.2f}x")
    for p in (dense_path, compact_path):
        p.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
