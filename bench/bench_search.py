"""Find-a-feature benchmarks (issue 36): index build time and query latency, ours vs naive baselines.

    .venv/bin/python bench/bench_search.py                 # 32K x 640 (the embedded fine SAE's labels and
                                                           #   decoder where built) and 262K x 2304, CPU
    .venv/bin/python bench/bench_search.py --sizes 32k     # one size only
    .venv/bin/python bench/bench_search.py --device cuda   # decoder and unembedding on the GPU

Shapes: 32K x 640 with a 262,144-token unembedding (Gemma 3 270M) and 262K x 2304 with a 256,000-token
one (Gemma 2 2B, Gemma Scope 262K), random weights in bf16 (the dtype a session picks on a CPU with fast
bf16, and on a GPU), synthetic labels (3 top snippets of 12 words from a 20,000-word Zipf vocabulary,
8 promoted tokens) where the real ones are not at hand. Timing depends on shapes and label sizes, not on
trained values.

Ours:  index = the word index (core/analysis/search/text_index.py) + the promoted-token standardiser
       (Promoter, one d x d covariance and d_f^T C d_f for every feature); query = `find_text` on one SAE
       (text scores, one decoder pass for the query's tokens, top hits, their "why" and labels).
Baselines (same run): text = a Python loop over every feature's lowercased label text testing each query
       word as a substring; promoted = what a promoted-token label for every feature costs (W_U @ W_dec[f]
       over the whole vocabulary, top 8; FeatureLabels.compute), timed on 512 features and scaled up.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

QUERIES = ["France", "Japan", "code", "music", "cooking", "football", "chemistry", "money", "cities", "python code"]


class BenchSAE:
    """What the search reads of an SAE: W_dec and cfg (a class, so the index cache can hold it weakly)."""

    def __init__(self, W_dec: torch.Tensor):
        self.W_dec = W_dec
        self.cfg = SimpleNamespace(d_sae=W_dec.shape[0], d_in=W_dec.shape[1],
                                   metadata=SimpleNamespace(hook_name="blocks.9.hook_resid_post"))


class BenchSession:
    """The session facts the search reads, with a word-hash tokenizer (every word one token)."""

    def __init__(self, W_dec: torch.Tensor, W_U: torch.Tensor, latents: dict):
        from spectrascope.core.engine.labels import FeatureLabels

        self.saes = {"fine": BenchSAE(W_dec)}
        self.sae_specs: dict = {}
        self._W_U = W_U
        self.labels = {"fine": FeatureLabels(sae=self.saes["fine"], unembed=W_U, decode=self.piece, shipped=latents)}
        self.model = SimpleNamespace(spec=SimpleNamespace(name=f"bench-{W_U.shape[0]}x{W_U.shape[1]}"))

    def unembedding(self) -> torch.Tensor:
        return self._W_U

    def decoder_directions(self, role: str, ids=None) -> torch.Tensor:
        return self.saes[role].W_dec

    def tokenize(self, text: str, add_bos: bool = True) -> tuple[list[int], int]:
        return [hash(text) % self._W_U.shape[0]], 0

    def piece(self, token_id: int) -> str:
        return f"tok{int(token_id)}"


def synthetic_latents(n: int, seed: int = 0) -> dict[int, dict]:
    """Labels shaped like the shipped ones: 3 top snippets of 12 Zipf-drawn words, one marked; 8 promoted."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(20_000)] + QUERIES[:-1] + ["python"])
    p = 1 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=(n, 3, 12), p=p / p.sum())
    promoted = rng.choice(len(words), size=(n, 8), p=p / p.sum())
    out = {}
    for f in range(n):
        snippets = []
        for s in range(3):
            w = words[picks[f, s]]
            snippets.append({"act": 1.0, "text": " ".join(w[:6]) + "[[ " + w[6] + "]] " + " ".join(w[7:])})
        out[f] = {"promoted": [" " + x for x in words[promoted[f]]], "snippets": snippets,
                  "max_act": 10.0, "freq": 0.001}
    return out


def embedded_fine() -> tuple[torch.Tensor | None, dict | None]:
    """The embedded fine SAE's decoder and labels, when built."""
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.engine.labels import read_labels_file

    folder = SAES_DIR / "gemma-3-270m-res9-fine"
    data = read_labels_file(folder)
    weights = folder / "sae_weights.safetensors"
    if data is None or not weights.is_file():
        return None, None
    from safetensors.torch import load_file

    return load_file(str(weights))["W_dec"], {int(lat["id"]): lat for lat in data["latents"]}


def naive_text(texts: list[str], query: str, top: int = 20) -> list[int]:
    """The baseline: every feature's label text scanned for each query word."""
    words = query.lower().split()
    scores = [(sum(w in t for w in words), f) for f, t in enumerate(texts)]
    return [f for s, f in sorted(scores, reverse=True)[:top] if s]


def label_text(lat: dict) -> str:
    return " ".join([*(s["text"] for s in lat.get("snippets", ())), *lat.get("promoted", ())]).lower()


def run(size: str, device: str, repeats: int) -> None:
    from spectrascope.core.analysis.search import by_text, index_cache, words
    from spectrascope.core.analysis.search.index import SearchIndex, label_stats
    from spectrascope.core.analysis.search.promoter import Promoter
    from spectrascope.core.analysis.search.text_index import TextIndex
    from spectrascope.core.engine.codes import promoted_tokens_batch

    dtype = torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    W_dec, latents, source = None, None, "random weights, synthetic labels"
    if size == "32k":
        n, d, V = 32_768, 640, 262_144
        W_dec, latents = embedded_fine()
        if W_dec is not None:
            source = "the embedded fine SAE's decoder and labels, random unembedding"
    else:
        n, d, V = 262_144, 2304, 256_000
    t0 = time.perf_counter()
    if W_dec is None:
        W_dec = torch.randn(n, d, generator=gen, dtype=dtype).div_(d**0.5)
        latents = synthetic_latents(n)
    W_dec = W_dec.to(device, dtype)
    W_U = torch.randn(V, d, generator=gen, dtype=dtype).to(device)
    print(f"\n== {n:,} features x d {d:,}, vocabulary {V:,} ({source}; {dtype}, {device}); "
          f"set up in {time.perf_counter() - t0:.1f} s", flush=True)
    session = BenchSession(W_dec, W_U, latents)

    t0 = time.perf_counter()
    text = TextIndex.build(latents, {}, n)
    t_text = time.perf_counter() - t0
    t0 = time.perf_counter()
    promoter = Promoter.build(W_dec, W_U)
    t_prom = time.perf_counter() - t0
    index = SearchIndex("fine", text, *label_stats(latents, n), promoter)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.npz"
        t0 = time.perf_counter()
        index.save(path)
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        SearchIndex.load(path, "fine")
        t_load = time.perf_counter() - t0
        mb = path.stat().st_size / 2**20
    index_cache._memory[session.saes["fine"]] = {(id(session.labels["fine"]), None): index}  # as index_for keeps it
    t0 = time.perf_counter()
    _ = promoted_tokens_batch(W_dec[:512], W_U, top=8)
    per_feature = (time.perf_counter() - t0) / 512
    print(f"index build: words {t_text:.2f} s ({len(text.vocab):,} terms) + promoted standardiser {t_prom:.2f} s "
          f"= {t_text + t_prom:.2f} s; saved {t_save:.2f} s, loaded {t_load:.2f} s ({mb:.0f} MB on disk)")
    print(f"baseline index: promoted-token labels for every feature (top 8 over the vocabulary) "
          f"{per_feature * n:.0f} s ({per_feature * 1e3:.2f} ms a feature, timed on 512)")

    texts = [label_text(latents.get(f, {})) for f in range(n)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    ours, base, words_only = [], [], []
    words_index = _no_promoter(index)
    for q in QUERIES:
        med = interleaved_medians({
            "ours": lambda q=q: by_text.find_text(session, q, ("fine",), 20),
            "words": lambda q=q: by_text.text_scores(session, words_index, words.query_words(q)),
            "base": lambda q=q: naive_text(texts, q),
        }, repeats, sync, warmup=1)
        ours.append(med["ours"])
        words_only.append(med["words"])
        base.append(med["base"])
        print(f"  {q!r:14} ours {med['ours'] * 1e3:7.1f} ms (words alone {med['words'] * 1e3:6.1f} ms) · "
              f"naive loop {med['base'] * 1e3:7.1f} ms · ratio {med['base'] / med['ours']:.1f}x", flush=True)
    o, b, w = statistics.median(ours), statistics.median(base), statistics.median(words_only)
    print(f"query (median of {len(QUERIES)}): ours {o * 1e3:.1f} ms (target < 200 ms) · naive loop over labels "
          f"{b * 1e3:.1f} ms (text only, no promoted tokens) · ratio {b / o:.1f}x; text alone, like for like: "
          f"ours {w * 1e3:.1f} ms vs {b * 1e3:.1f} ms, ratio {b / w:.1f}x")


def _no_promoter(index):
    from dataclasses import replace

    return replace(index, promoter=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="32k,262k", help="comma-separated: 32k, 262k")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for size in args.sizes.split(","):
        run(size.strip(), args.device, args.repeats)


if __name__ == "__main__":
    main()
