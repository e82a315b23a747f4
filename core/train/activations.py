"""Activation cache: the layer-9 residual of the embedded model over the corpus, on disk.

The model runs once per token; SAE training then reads fp16 memmaps, which is
~100x cheaper than re-running the model inside the training loop. The forward
(`Session.forward`, the one owner of the model) stops right after the hooked
layer, so neither the upper layers nor the 262k-row unembedding run.

Layout under <data>/acts/<split>/: tokens.npy (n_seq, seq_len) int32, and
shard_XXXXX.npy (n_tokens, d_model) fp16 with BOS positions dropped, plus
manifest.json listing completed shards. A shard is written to a temp file and
renamed, and the manifest is rewritten after each shard: a kill loses at most
the shard in flight, and a rerun resumes from the manifest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from spectrascope.core.train.corpus import Doc, data_dir

HOOK_LAYER = 9  # blocks.9.hook_resid_post == HF hidden_states[10] == output of decoder layer 9
HOOK_NAME = f"blocks.{HOOK_LAYER}.hook_resid_post"
SEQ_LEN = 128  # BOS + 127 text tokens


def residual_at(session, input_ids: torch.Tensor, layer: int = HOOK_LAYER,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Output of decoder layer `layer` (the resid_post), without running later layers. # (B, T, d)"""
    hook = f"blocks.{layer}.hook_resid_post"
    out = session.forward(input_ids, capture=[hook], stop_after=hook, attention_mask=attention_mask, keep_logits=0)
    return out.resid[hook]


def tokenize_split(docs: list[Doc], tokenizer, seq_len: int = SEQ_LEN, seed: int = 0) -> np.ndarray:
    """Shuffle documents, concatenate their tokens with a blank-line separator, cut into windows.

    Each row is BOS + (seq_len - 1) text tokens. Packing (rather than padding short
    documents) keeps every position useful; shuffling first means a cache stopped
    early still covers every source. # (n_seq, seq_len) int32
    """
    docs = list(docs)
    random.Random(seed).shuffle(docs)
    sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    enc = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
    for ids in enc:
        stream.extend(ids)
        stream.extend(sep)
    body = seq_len - 1
    n = len(stream) // body
    arr = np.asarray(stream[: n * body], dtype=np.int32).reshape(n, body)
    bos = np.full((n, 1), tokenizer.bos_token_id, dtype=np.int32)
    return np.concatenate([bos, arr], axis=1)


class ActivationCache:
    """Reader/writer for one split's shards (see module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"

    def manifest(self) -> dict:
        if self.manifest_path.exists():
            return json.loads(self.manifest_path.read_text())
        return {"shards": []}

    def _write_manifest(self, m: dict) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(m, indent=1))
        os.replace(tmp, self.manifest_path)

    def tokens(self) -> np.ndarray:
        return np.load(self.root / "tokens.npy", mmap_mode="r")

    def shard_paths(self) -> list[Path]:
        return [self.root / s["file"] for s in self.manifest()["shards"]]

    def n_tokens(self) -> int:
        return sum(s["n_tokens"] for s in self.manifest()["shards"])

    def load_all(self, max_tokens: int | None = None) -> np.ndarray:
        """Concatenate shards in order into one fp16 array. # (N, d)"""
        parts, n = [], 0
        for p in self.shard_paths():
            a = np.load(p, mmap_mode="r")
            parts.append(np.asarray(a))
            n += len(a)
            if max_tokens and n >= max_tokens:
                break
        out = np.concatenate(parts) if parts else np.zeros((0, 0), np.float16)
        return out[:max_tokens] if max_tokens else out

    def build(self, session, token_rows: np.ndarray, max_tokens: int, seqs_per_shard: int = 256,
              batch: int = 32, layer: int = HOOK_LAYER, progress: bool = True,
              meta: dict | None = None) -> dict:
        """Run the model over `token_rows` shard by shard until `max_tokens` activations exist."""
        self.root.mkdir(parents=True, exist_ok=True)
        tok_path = self.root / "tokens.npy"
        if not tok_path.exists():
            tmp = self.root / "tokens.tmp.npy"
            np.save(tmp, token_rows)
            os.replace(tmp, tok_path)
        rows = np.load(tok_path, mmap_mode="r")
        m = self.manifest()
        m.update({"hook_name": f"blocks.{layer}.hook_resid_post", "seq_len": int(rows.shape[1]),
                  "dtype": "float16", "bos_dropped": True, "seqs_per_shard": seqs_per_shard, **(meta or {})})
        done = {s["index"] for s in m["shards"]}
        n_shards = (len(rows) + seqs_per_shard - 1) // seqs_per_shard
        per_shard = seqs_per_shard * (rows.shape[1] - 1)
        want = min(n_shards, (max_tokens + per_shard - 1) // per_shard)
        todo = [i for i in range(want) if i not in done]
        try:
            from tqdm import tqdm
            bar = tqdm(total=want, initial=want - len(todo), unit="shard", disable=not progress,
                       desc=f"cache {self.root.name}", mininterval=10)
        except ImportError:  # pragma: no cover
            bar = None
        for i in todo:
            t0 = time.time()
            chunk = torch.from_numpy(np.array(rows[i * seqs_per_shard:(i + 1) * seqs_per_shard], dtype=np.int64))
            outs = []
            with torch.inference_mode():
                for b in range(0, len(chunk), batch):
                    h = residual_at(session, chunk[b:b + batch], layer)  # (B, T, d)
                    outs.append(h[:, 1:].float().reshape(-1, h.shape[-1]))  # drop BOS: its norm is huge
            acts = torch.cat(outs).numpy()
            n_clip = int((np.abs(acts) > 65000).sum())  # fp16 range; counted so it is never silent
            acts = np.clip(acts, -65000, 65000).astype(np.float16)
            fname = f"shard_{i:05d}.npy"
            tmp = self.root / f"shard_{i:05d}.tmp.npy"
            np.save(tmp, acts)
            os.replace(tmp, self.root / fname)
            m["shards"].append({"index": i, "file": fname, "n_tokens": int(len(acts)),
                                "rows": [i * seqs_per_shard, i * seqs_per_shard + len(chunk)],
                                "clipped": n_clip, "seconds": round(time.time() - t0, 2)})
            m["shards"].sort(key=lambda s: s["index"])
            self._write_manifest(m)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(tok=self.n_tokens(), tps=f"{len(acts) / (time.time() - t0):.0f}")
        if bar is not None:
            bar.close()
        self._write_manifest(m)
        return m


def load_session():
    """The embedded Gemma 3 270M, fp32 on the CPU (faster than bf16 on AVX2 CPUs), no SAEs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from spectrascope.core.engine.session import Session

    return Session.load("gemma-3-270m", device="cpu", dtype="float32", saes=())


def acts_dir(split: str) -> Path:
    return data_dir() / "acts" / split


def build_cache(split: str, max_tokens: int, batch: int = 32) -> dict:
    """CLI stage: tokenize one corpus split (once) and cache its residuals up to max_tokens."""
    from spectrascope.core.train.corpus import load_docs

    session = load_session()
    cache = ActivationCache(acts_dir(split))
    version = corpus_version()
    cached = cache.manifest().get("corpus_version")
    if cached is not None and cached != version:
        # Token rows of another corpus: resuming would mix two corpora without saying so.
        print(f"[cache] {cache.root} holds corpus v{cached}, the corpus is v{version}: starting over", flush=True)
        shutil.rmtree(cache.root)
    rows = None
    if not (cache.root / "tokens.npy").exists():
        rows = tokenize_split(load_docs(split), session.tokenizer, seed=0 if split == "train" else 1)
    return cache.build(session, rows, max_tokens=max_tokens, batch=batch,
                       meta={"model": "gemma-3-270m", "split": split, "corpus_version": version})


def corpus_version() -> int | None:
    """The version of the corpus on disk (corpus.json), which every cache records."""
    path = data_dir() / "corpus.json"
    return json.loads(path.read_text()).get("version", 1) if path.exists() else None
