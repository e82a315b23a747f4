"""Peak memory while loading a Gemma Scope params.npz folder (issue 13): goal <= 1.15 x what stays.

    .venv/bin/python bench/bench_sae_load.py [--width 16384] [--d-model 2304] [--root DIR]

Builds a random Gemma Scope-shaped folder (W_enc, W_dec, b_enc, b_dec, threshold, fp32
params.npz, as Google ships them) once under --root, then loads it in a fresh subprocess per
dtype and reads /proc/self/status: the resident growth the load leaves (the SAE) and the peak
growth during it (VmHWM, reset just before the load). Ours = core.saes.load_gemma_scope_folder;
baseline = `np.load` of the same file, every array read whole (what any npz reader does),
measured the same way in the same run. Prints both and the ratio peak / final.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROW_CHUNK_BYTES = 64 << 20  # random rows generated and written this much at a time


def write_gemma_scope_folder(folder: Path, d_model: int, width: int, seed: int = 0) -> Path:
    """A random JumpReLU SAE in Gemma Scope's params.npz layout (fp32, uncompressed), written row
    chunk by row chunk so building a 4.8 GB 262K file never holds it in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "params.npz"
    if target.exists():
        return folder
    rng = np.random.default_rng(seed)
    shapes = {"W_enc": (d_model, width), "W_dec": (width, d_model), "b_enc": (width,),
              "b_dec": (d_model,), "threshold": (width,)}
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, shape in shapes.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": "<f4", "fortran_order": False, "shape": shape})
                row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                rows_per = max(1, ROW_CHUNK_BYTES // (4 * row))
                for start in range(0, shape[0], rows_per):
                    n = min(rows_per, shape[0] - start)
                    if name == "threshold":
                        block = rng.uniform(0.05, 0.3, n)  # JumpReLU: a positive threshold per latent
                    elif name.startswith("W_"):
                        block = rng.standard_normal((n, *shape[1:])) * d_model**-0.5
                    else:
                        block = rng.standard_normal(n) * 0.01
                    f.write(block.astype("<f4").tobytes())
    partial.rename(target)
    return folder


CHILD = r"""
import json, sys, gc
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
folder, dtype, how = sys.argv[1:4]
import numpy as np, torch
from spectrascope.core.engine.saes import load_gemma_scope_folder
import sae_lens.saes.jumprelu_sae  # imports done before the measurement starts
gc.collect()
try:
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
except OSError:
    pass
before = status("VmRSS:")
if how == "ours":
    kept = load_gemma_scope_folder(folder, dtype=dtype, hook_name="blocks.12.hook_resid_post")
else:
    with np.load(folder + "/params.npz") as data:
        kept = {k: torch.from_numpy(data[k]).to(getattr(torch, dtype)) for k in data.files}
gc.collect()
print(json.dumps({"before": before, "peak": status("VmHWM:"), "after": status("VmRSS:")}))
"""


def measure(folder: Path, dtype: str, how: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), dtype, how],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    final, peak = r["after"] - r["before"], r["peak"] - r["before"]
    return {"final_mb": final / 2**20, "peak_mb": peak / 2**20, "ratio": peak / max(final, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16_384)
    ap.add_argument("--d-model", type=int, default=2304)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "spectrascope-bench-saes")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args(argv)
    folder = write_gemma_scope_folder(args.root / f"layer_12/width_{args.width}", args.d_model, args.width)
    size = (folder / "params.npz").stat().st_size / 2**20
    print(f"Gemma Scope folder {folder}: d_model {args.d_model}, {args.width:,} latents, params.npz {size:,.0f} MB")
    print(f"{'dtype':10} {'load':10} {'final MB':>9} {'peak MB':>9} {'peak/final':>10}")
    for dtype in args.dtypes.split(","):
        for how in ("baseline", "ours"):
            m = measure(folder, dtype, how)
            print(f"{dtype:10} {how:10} {m['final_mb']:9.0f} {m['peak_mb']:9.0f} {m['ratio']:10.2f}")
    print("goal: ours peak/final <= 1.15")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
