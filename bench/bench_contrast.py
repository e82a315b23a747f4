"""Contrast run benchmark (issue 6): ours vs the straightforward notebook loop, same run.

    .venv/bin/python bench/bench_contrast.py [--n 50] [--tiny | --random-saes] [--batch-size 16]

ours     = core.contrast.run_contrast (cache off): prompts sorted by length, padded
           batches with an attention mask, the forward stops at the SAE hook layer,
           both SAEs encode only the real (non-BOS, non-pad) positions.
baseline = what a TransformerLens + sae-lens user writes: for each prompt
           `_, cache = bridge.run_with_cache(prompt)` then `sae.encode(cache[hook])`
           for each SAE and a max over tokens (full forward, every hook cached, logits).
Both take the first --n prompts of each shipped set (2n prompts). The per-prompt
max activations of both are compared (the printed max |diff|). Target ratio >= 5x.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tiny_session():
    from spectrascope.core.engine.session import Session
    from tests.conftest import build_tiny_model_dir, make_tiny_sae

    folder = build_tiny_model_dir(tempfile.mkdtemp(prefix="bench-contrast-"), "gemma3")
    s = Session.load(str(folder), device="cpu", dtype="float32")
    s.attach_sae("coarse", make_tiny_sae(64, 512, "blocks.2.hook_resid_post", "topk", k=16, seed=1))
    s.attach_sae("fine", make_tiny_sae(64, 4096, "blocks.2.hook_resid_post", "jumprelu", seed=2))
    return s


def baseline(session, prompts):
    """The notebook loop: one run_with_cache per prompt, then sae.encode per SAE."""
    bridge = session.model.bridge
    out = {role: [] for role in session.saes}
    with torch.no_grad():
        for prompt in prompts:
            _, cache = bridge.run_with_cache(prompt)
            for role, sae in session.saes.items():
                acts = sae.encode(cache[sae.cfg.metadata.hook_name][0].to(sae.W_enc.dtype))  # (T, F)
                out[role].append(acts[1:].max(0).values.float().numpy())  # BOS excluded
    return {role: np.stack(rows) for role, rows in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="prompts taken from each set")
    ap.add_argument("--tiny", action="store_true", help="tiny random model + random SAEs")
    ap.add_argument("--random-saes", action="store_true",
                    help="embedded model with random TopK SAEs of the embedded sizes (1024 k32, 8192 k64) "
                         "at layer 9, for before the trained SAEs land")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default=None)
    args = ap.parse_args()

    from spectrascope.core.analysis.contrast import ContrastSettings, default_sets, load_prompts, run_contrast, feature_stats

    t0 = time.perf_counter()
    if args.tiny:
        session = tiny_session()
    else:
        from spectrascope.core.engine.session import Session

        session = Session.load("gemma-3-270m", dtype=args.dtype, saes=[] if args.random_saes else None)
        if args.random_saes:
            from tests.conftest import make_tiny_sae

            hook, d = "blocks.9.hook_resid_post", session.model.d_model
            session.attach_sae("coarse", make_tiny_sae(d, 1024, hook, "topk", k=32, seed=1))
            session.attach_sae("fine", make_tiny_sae(d, 8192, hook, "topk", k=64, seed=2))
        if set(session.saes) != {"coarse", "fine"}:
            sys.exit(f"embedded SAEs missing: {session.sae_errors}; try --tiny")
    print(f"loaded {session.describe()} in {time.perf_counter() - t0:.1f} s")
    concept, neutral = (load_prompts(p)[: args.n] for p in default_sets())
    prompts = concept + neutral
    n_tok = sum(len(session.tokenize(p)[0]) for p in prompts)
    print(f"{len(prompts)} prompts, {n_tok} tokens (BOS included), torch threads {torch.get_num_threads()}")

    # warm-up both paths on two prompts
    run_contrast(session, concept[:1], neutral[:1], use_cache=False)
    baseline(session, prompts[:2])

    t = time.perf_counter()
    ours = run_contrast(session, concept, neutral, ContrastSettings(batch_size=args.batch_size), use_cache=False)
    t_ours = time.perf_counter() - t

    t = time.perf_counter()
    base = baseline(session, prompts)
    _ = {role: feature_stats(a, ours.is_concept) for role, a in base.items()}
    t_base = time.perf_counter() - t

    diff = max(float(np.abs(base[r] - ours.acts[r]["max"]).max()) for r in base)
    scale = max(float(np.abs(base[r]).max()) for r in base)
    print(f"ours     {t_ours:7.2f} s  ({n_tok / t_ours:7.0f} tok/s)")
    print(f"baseline {t_base:7.2f} s  ({n_tok / t_base:7.0f} tok/s)")
    print(f"ratio    {t_base / t_ours:7.2f} x   (target >= 5x)")
    print(f"per-prompt max activations: max |diff| {diff:.2e} (largest activation {scale:.2f})")


if __name__ == "__main__":
    main()
