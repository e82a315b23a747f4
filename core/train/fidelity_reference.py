"""The embedded SAEs' poor-fit reference: `fidelity_reference.json` beside `residual_stats.json`.

    python -m spectrascope.core.train fidelity [--which coarse|fine|both]

The held-out corpus cache is not kept with the repository, so the reference text is the shipped
prompt sets (assets/prompts/*.txt, every file): their even-numbered lines set the threshold (and the
spread without the massive dims, around the training mean μ of residual_stats.json); the odd-numbered
lines, which it never saw, check how often the flag fires on like text (`check` in the file). One
forward per prompt in fp32, as the cards are measured; BOS left out.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

SOURCE = "the shipped prompt sets (assets/prompts/*.txt, even lines)"


def prompt_split() -> tuple[list[str], list[str]]:
    """(reference, check): the even- and odd-numbered shipped prompts."""
    from spectrascope.core.analysis.contrast import load_prompts
    from spectrascope.core.assets import PROMPTS_DIR

    prompts = load_prompts(PROMPTS_DIR)
    return prompts[0::2], prompts[1::2]


def residuals(session: Any, hook: str, prompts: Sequence[str]) -> torch.Tensor:
    """Every token's residual at `hook`, BOS left out, one prompt a forward (no padding). # (N, d)"""
    rows = []
    for text in prompts:
        ids, _ = session.tokenize(text)
        rows.append(session.forward(ids, capture=[hook], stop_after=hook, keep_logits=0).resid[hook][0, 1:].float().cpu())
    return torch.cat(rows)


def reference_preset(which: str, session: Any = None) -> Path:
    """Measure and write one embedded SAE's reference; print its summary line."""
    from sae_lens import SAE
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.engine.fidelity import measure, reconstruct, write
    from spectrascope.core.engine.residual_stats import ResidualStats
    from spectrascope.core.train.activations import load_session
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    sae = SAE.load_from_disk(folder)
    session = session or load_session()
    shipped = ResidualStats.load(folder)
    base = replace(shipped, rest_centered_sq_norm=None, poor_below=None, poor_source="")  # not the old file's
    reference, check = prompt_split()
    x = residuals(session, sae.cfg.metadata.hook_name, reference)
    stats, summary = measure(base, x, reconstruct(sae, x), f"{SOURCE}, {len(reference)} prompts")
    y = residuals(session, sae.cfg.metadata.hook_name, check)
    y_hat = reconstruct(sae, y)
    rest, full = stats.fidelity_rest(y, y_hat), stats.fidelity(y, y_hat)
    summary["check"] = {
        "text": f"the shipped prompt sets' odd lines ({len(check)} prompts, not used for the threshold)",
        "tokens": len(rest), "share_poor": round(float(stats.poor(rest).double().mean()), 6),
        "share_poor_old_rule": round(float((full < 0.5).double().mean()), 6),
        "old_rule": "fidelity with the massive dims < 0.5",
        "mean_fidelity": round(float(rest.mean()), 6), "mean_fidelity_with_massive": round(float(full.mean()), 6),
    }
    out = write(folder, summary)
    c = summary["check"]
    print(f"[fidelity] {which}: poor below {summary['poor_below']:.4f} ({summary['poor_source']}); on the "
          f"{c['tokens']:,} check tokens {c['share_poor']:.2%} flagged (old rule {c['share_poor_old_rule']:.2%}), "
          f"mean fidelity {c['mean_fidelity']:.4f} without / {c['mean_fidelity_with_massive']:.4f} with the "
          f"massive dims -> {out}", flush=True)
    return out
