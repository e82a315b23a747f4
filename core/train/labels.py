"""Compact per-latent labels: promoted tokens through the unembedding + top held-out snippets.

`labels.json` holds, for every latent: the top tokens of W_U @ decoder direction
(the logit-lens reading of what the latent writes), its top activating held-out
snippets with the max token marked as [[tok]], its max activation and its firing
rate on the held-out tokens. The UI reads this instead of recomputing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from spectrascope.core.spectrum import promoted_tokens_batch as promoted_tokens  # noqa: F401 (one logit lens)
from spectrascope.core.train.activations import ActivationCache, acts_dir


@torch.no_grad()
def top_activations(sae, acts: np.ndarray, top: int = 3, batch: int = 4096, min_gap: int = 64
                    ) -> tuple[list[list[tuple[float, int]]], np.ndarray, np.ndarray]:
    """Per latent: the `top` highest (activation, flat token index), at least `min_gap` tokens apart,
    plus max activation and firing count over `acts` (N, d)."""
    n = sae.cfg.d_sae
    keep = top * 4  # candidates before the spacing filter
    best_v = torch.full((n, keep), -1.0)
    best_i = torch.full((n, keep), -1, dtype=torch.long)
    fires = torch.zeros(n, dtype=torch.long)
    for s in range(0, len(acts), batch):
        x = torch.from_numpy(np.asarray(acts[s:s + batch])).float()
        z = sae.encode(x)                                  # (B, n)
        fires += (z > 0).sum(0)
        kk = min(keep, len(x))
        v, i = torch.topk(z.T, kk, dim=-1)                 # (n, kk)
        cat_v = torch.cat([best_v, v], 1)
        cat_i = torch.cat([best_i, i + s], 1)
        o = torch.topk(cat_v, keep, dim=-1).indices
        best_v, best_i = cat_v.gather(1, o), cat_i.gather(1, o)
    out = []
    for lat in range(n):
        chosen: list[tuple[float, int]] = []
        for v, i in zip(best_v[lat].tolist(), best_i[lat].tolist()):
            if v <= 0 or i < 0:
                break
            if all(abs(i - j) >= min_gap for _, j in chosen):
                chosen.append((v, i))
            if len(chosen) == top:
                break
        out.append(chosen)
    return out, best_v[:, 0].clamp_min(0).numpy(), fires.numpy()


def snippet(tokenizer, row: np.ndarray, pos: int, before: int = 12, after: int = 3) -> str:
    """Decode a short window of a token row with the token at `pos` marked [[...]]."""
    lo, hi = max(1, pos - before), min(len(row), pos + after + 1)
    left = tokenizer.decode(row[lo:pos].tolist())
    mid = tokenizer.decode(row[pos:pos + 1].tolist())
    right = tokenizer.decode(row[pos + 1:hi].tolist())
    return " ".join(f"{left}[[{mid}]]{right}".split())


def build_labels(sae, W_U: torch.Tensor, tokenizer, held: ActivationCache, softcap: float | None = None,
                 n_promoted: int = 8, n_snippets: int = 3) -> dict:
    acts = held.load_all()
    rows = held.tokens()
    body = rows.shape[1] - 1  # BOS dropped in the cache: flat index -> (row, pos)
    tok_ids, tok_vals = promoted_tokens(sae.W_dec.detach(), W_U, n_promoted, softcap)
    tops, max_act, fires = top_activations(sae, acts, n_snippets)
    vocab_cache: dict[int, str] = {}

    def tok_str(t: int) -> str:
        if t not in vocab_cache:
            vocab_cache[t] = tokenizer.decode([t])
        return vocab_cache[t]

    latents = []
    for lat in range(sae.cfg.d_sae):
        snips = []
        for v, flat in tops[lat]:
            r, p = divmod(flat, body)
            snips.append({"act": round(v, 2), "text": snippet(tokenizer, rows[r], p + 1)})
        latents.append({
            "id": lat,
            "promoted": [tok_str(t) for t in tok_ids[lat].tolist()],
            "promoted_logit": [round(x, 3) for x in tok_vals[lat].tolist()],
            "snippets": snips,
            "max_act": round(float(max_act[lat]), 2),
            "freq": round(float(fires[lat]) / len(acts), 6),
        })
    return {"format": "spectrascope-labels-v1", "heldout_tokens": int(len(acts)), "softcap": softcap,
            "promoted_note": "top tokens of W_U @ W_dec[i] (unit decoder direction, no final norm)",
            "snippet_note": "held-out text; [[tok]] marks the max-activating token", "latents": latents}


def labels_preset(which: str) -> Path:
    from sae_lens import SAE

    from spectrascope.core.train.activations import load_session
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    sae = SAE.load_from_disk(folder)
    session = load_session()
    labels = build_labels(sae, session.unembedding(), session.tokenizer, ActivationCache(acts_dir("heldout")),
                          softcap=session.model.final_logit_softcap)
    out = folder / "labels.json"
    out.write_text(json.dumps(labels, ensure_ascii=False, separators=(",", ":")))
    print(f"[labels] wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", flush=True)
    return out
