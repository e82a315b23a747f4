"""Compact per-latent labels: promoted tokens through the unembedding + activating snippets.

`labels.json.gz` holds, for every latent: the top tokens of W_U @ decoder direction
(the logit-lens reading of what the latent writes), its top activating snippets and
a uniform sample of its firings (the max token marked as [[tok]]), its max activation
and its firing rate over the labelling text (the first LABEL_TOKENS of the training
cache; the file's `source` says which). The UI reads this instead of recomputing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from spectrascope.core.engine.codes import promoted_tokens_batch as promoted_tokens  # noqa: F401 (one logit lens)
from spectrascope.core.train.activations import ActivationCache, acts_dir


@torch.no_grad()
def top_activations(sae, acts: np.ndarray, top: int = 3, batch: int = 4096, min_gap: int = 64,
                    n_random: int = 0, seed: int = 0):
    """Per latent: the `top` highest (activation, flat token index), at least `min_gap` tokens apart,
    plus max activation and firing count over `acts` (N, d). With `n_random`, also a uniform sample of
    `n_random` (activation, index) among each latent's firings (the top examples alone show only the
    extreme of what a feature does), returned as a 4th value."""
    n = sae.cfg.d_sae
    keep = top * 4  # candidates before the spacing filter
    best_v = torch.full((n, keep), -1.0)
    best_i = torch.full((n, keep), -1, dtype=torch.long)
    # Reservoir by random keys: the n_random firings with the largest uniform key are a uniform sample.
    rnd_k = torch.full((n, max(n_random, 1)), -1.0)
    rnd_i = torch.full((n, max(n_random, 1)), -1, dtype=torch.long)
    rnd_v = torch.zeros((n, max(n_random, 1)))
    gen = torch.Generator().manual_seed(seed)
    fires = torch.zeros(n, dtype=torch.long)
    density = torch.zeros(n, DENSITY_BINS, dtype=torch.long)
    # One random firing per (latent, density bin), by the same random-key reservoir: examples
    # across the activation range, not only at its top.
    bin_key = torch.full((n * DENSITY_BINS,), -1.0)
    bin_index = torch.full((n * DENSITY_BINS,), -1, dtype=torch.long)
    bin_act = torch.zeros(n * DENSITY_BINS)
    for s in range(0, len(acts), batch):
        x = torch.from_numpy(np.asarray(acts[s:s + batch])).float()
        z = sae.encode(x)                                  # (B, n)
        fires += (z > 0).sum(0)
        rows, cols = (z > 0).nonzero(as_tuple=True)
        vals = z[rows, cols]
        group = cols * DENSITY_BINS + density_bin(vals)
        density.view(-1).index_add_(0, group, torch.ones_like(cols))
        if n_random:
            keys = torch.rand(len(group), generator=gen)
            best = torch.full_like(bin_key, -1.0).scatter_reduce_(0, group, keys, "amax")
            win = (keys == best[group]) & (keys > bin_key[group])
            bin_key[group[win]], bin_index[group[win]], bin_act[group[win]] = keys[win], rows[win] + s, vals[win]
        kk = min(keep, len(x))
        v, i = torch.topk(z.T, kk, dim=-1)                 # (n, kk)
        best_v, best_i = _merge(best_v, best_i, v, i + s, keep)
        if n_random:
            key = torch.rand(z.shape, generator=gen).masked_fill_(z <= 0, -1.0)  # (B, n)
            kv, ki = torch.topk(key.T, min(n_random, len(x)), dim=-1)            # (n, r)
            cat_k, cat_i = torch.cat([rnd_k, kv], 1), torch.cat([rnd_i, ki + s], 1)
            cat_v = torch.cat([rnd_v, z.T.gather(1, ki)], 1)
            o = torch.topk(cat_k, n_random, dim=-1).indices
            rnd_k, rnd_i, rnd_v = cat_k.gather(1, o), cat_i.gather(1, o), cat_v.gather(1, o)
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
    result = (out, best_v[:, 0].clamp_min(0).numpy(), fires.numpy())
    if not n_random:
        return result
    sample = [[(v, i) for k, v, i in zip(rnd_k[lat].tolist(), rnd_v[lat].tolist(), rnd_i[lat].tolist()) if k >= 0]
              for lat in range(n)]
    by_bin = [[(float(bin_act[g]), int(bin_index[g])) for g in range(lat * DENSITY_BINS, (lat + 1) * DENSITY_BINS)
               if bin_index[g] >= 0] for lat in range(n)]
    return (*result, sample, density.numpy(), by_bin)


def spread(examples: list[tuple[float, int]], k: int = 3) -> list[tuple[float, int]]:
    """Up to `k` examples evenly spaced over a latent's nonempty activation bins, the top bin left out
    (the top snippets show it), lowest first."""
    lower = examples[:-1]
    if len(lower) <= k:
        return lower
    return [lower[round(i * (len(lower) - 1) / (k - 1))] for i in range(k)]


# The activation-density histogram of each latent: counts of its nonzero activations in bins of
# log10(activation), DENSITY_PER_DECADE per decade from 10**DENSITY_LOW (the feature card draws it).
DENSITY_LOW, DENSITY_PER_DECADE, DENSITY_BINS = -1, 3, 15


def density_bin(values: torch.Tensor) -> torch.Tensor:
    """Bin index of positive activations, clipped to the histogram's range."""
    b = ((torch.log10(values) - DENSITY_LOW) * DENSITY_PER_DECADE).floor().long()
    return b.clamp_(0, DENSITY_BINS - 1)


def _merge(best_v, best_i, v, i, keep):
    cat_v, cat_i = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
    o = torch.topk(cat_v, keep, dim=-1).indices
    return cat_v.gather(1, o), cat_i.gather(1, o)


def snippet(tokenizer, row: np.ndarray, pos: int, before: int = 12, after: int = 3) -> str:
    """Decode a short window of a token row with the token at `pos` marked [[...]]."""
    lo, hi = max(1, pos - before), min(len(row), pos + after + 1)
    left = tokenizer.decode(row[lo:pos].tolist())
    mid = tokenizer.decode(row[pos:pos + 1].tolist())
    right = tokenizer.decode(row[pos + 1:hi].tolist())
    return " ".join(f"{left}[[{mid}]]{right}".split())


def build_labels(sae, W_U: torch.Tensor, tokenizer, cache: ActivationCache, softcap: float | None = None,
                 n_promoted: int = 8, n_snippets: int = 3, n_random: int = 2, max_tokens: int | None = None,
                 source: str = "held-out") -> dict:
    acts = cache.load_all(max_tokens)
    rows = cache.tokens()
    body = rows.shape[1] - 1  # BOS dropped in the cache: flat index -> (row, pos)
    tok_ids, tok_vals = promoted_tokens(sae.W_dec.detach(), W_U, n_promoted, softcap)
    tops, max_act, fires, randoms, density, by_bin = top_activations(sae, acts, n_snippets, n_random=n_random)
    vocab_cache: dict[int, str] = {}

    def tok_str(t: int) -> str:
        if t not in vocab_cache:
            vocab_cache[t] = tokenizer.decode([t])
        return vocab_cache[t]

    def snips(found: list[tuple[float, int]]) -> list[dict]:
        return [{"act": round(v, 2), "text": snippet(tokenizer, rows[flat // body], flat % body + 1)}
                for v, flat in found]

    latents = [{
        "id": lat,
        "promoted": [tok_str(t) for t in tok_ids[lat].tolist()],
        "promoted_logit": [round(x, 3) for x in tok_vals[lat].tolist()],
        "snippets": snips(tops[lat]),
        "random_snippets": snips(randoms[lat]),
        "range_snippets": snips(spread(by_bin[lat])),
        "max_act": round(float(max_act[lat]), 2),
        "freq": round(float(fires[lat]) / len(acts), 7),
        "density": density[lat].tolist(),
    } for lat in range(sae.cfg.d_sae)]
    return {"format": "spectrascope-labels-v2", "source": source, "source_tokens": int(len(acts)),
            "softcap": softcap,
            "promoted_note": "top tokens of W_U @ W_dec[i] (unit decoder direction, no final norm)",
            "snippet_note": f"{source} text; [[tok]] marks the max-activating token; snippets: the top "
                            f"activations (64+ tokens apart), random_snippets: a uniform sample of firings, "
                            f"range_snippets: one firing from each of up to 3 lower activation bins",
            "freq_note": f"firing rate over the {len(acts):,} {source} tokens",
            "density_bins": {"log10_low": DENSITY_LOW, "per_decade": DENSITY_PER_DECADE, "bins": DENSITY_BINS},
            "latents": latents}


LABEL_TOKENS = 500_000


def labels_preset(which: str) -> Path:
    from sae_lens import SAE

    from spectrascope.core.train.activations import load_session
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    sae = SAE.load_from_disk(folder)
    session = load_session()
    # Snippets from the first LABEL_TOKENS of the training text: 65k held-out tokens leave rare
    # latents of the wide SAE with no example at all.
    labels = build_labels(sae, session.unembedding(), session.tokenizer, ActivationCache(acts_dir("train")),
                          softcap=session.model.final_logit_softcap, max_tokens=LABEL_TOKENS,
                          source="training")
    import gzip

    from spectrascope.core.assets import atomic_write
    from spectrascope.core.engine.labels import LABELS_FILE

    raw = json.dumps(labels, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out = atomic_write(folder / LABELS_FILE, gzip.compress(raw, mtime=0))  # ~4x smaller in the repository
    (folder / "labels.json").unlink(missing_ok=True)  # the uncompressed file of an earlier build
    print(f"[labels] wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(raw) / 1e6:.1f} MB unpacked)", flush=True)
    return out
