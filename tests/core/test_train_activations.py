"""Activation cache on a tiny random Gemma 3: the hook equals HF hidden_states, and a killed build resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrascope.core.train.activations import ActivationCache, residual_at, tokenize_split
from spectrascope.core.train.corpus import Doc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from spectrascope.core.engine.session import Session
    from tests.conftest import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-acts"), "gemma3")
    session = Session.load(str(folder), device="cpu", dtype="float32", saes=())
    return session, session.tokenizer


def test_residual_at_equals_hidden_states(tiny):
    model, _ = tiny
    ids = torch.randint(3, 500, (2, 20))
    with torch.no_grad():
        hs = model.model.hf_model(ids, output_hidden_states=True).hidden_states
        for layer in (0, 2):
            torch.testing.assert_close(residual_at(model, ids, layer), hs[layer + 1], rtol=0, atol=0)


def test_tokenize_split_rows(tiny):
    _, tok = tiny
    docs = [Doc("s", str(i), "The capital of France is Paris. " * 5) for i in range(6)]
    rows = tokenize_split(docs, tok, seq_len=16)
    assert rows.dtype == np.int32 and rows.shape[1] == 16
    assert (rows[:, 0] == tok.bos_token_id).all() and (rows[:, 1:] != tok.bos_token_id).all()


def test_cache_resumes_after_kill(tiny, tmp_path, monkeypatch):
    model, _ = tiny
    rows = np.random.default_rng(0).integers(3, 500, size=(10, 12)).astype(np.int32)
    ref = ActivationCache(tmp_path / "ref").build(model, rows, max_tokens=10 * 11, seqs_per_shard=3,
                                                  batch=2, layer=1, progress=False)
    assert len(ref["shards"]) == 4

    # Kill the build while the third shard is being written (np.save of its data fails).
    real_save = np.save
    calls = {"n": 0}

    def flaky_save(path, arr):
        if "shard_00002" in str(path):
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_save(path, arr)

    cache = ActivationCache(tmp_path / "run")
    monkeypatch.setattr(np, "save", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        cache.build(model, rows, max_tokens=10 * 11, seqs_per_shard=3, batch=2, layer=1, progress=False)
    monkeypatch.setattr(np, "save", real_save)
    assert [s["index"] for s in cache.manifest()["shards"]] == [0, 1]
    cache.build(model, None, max_tokens=10 * 11, seqs_per_shard=3, batch=2, layer=1, progress=False)
    assert [s["index"] for s in cache.manifest()["shards"]] == [0, 1, 2, 3]
    got, want = cache.load_all(), ActivationCache(tmp_path / "ref").load_all()
    assert got.shape == (10 * 11, 64) and got.dtype == np.float16
    np.testing.assert_array_equal(got, want)
    # BOS dropped: the stored rows equal layer-1 residuals at positions 1.. of each sequence.
    with torch.no_grad():
        h = residual_at(model, torch.from_numpy(rows[:3].astype(np.int64)), 1)[:, 1:].reshape(-1, 64)
    np.testing.assert_allclose(got[:33].astype(np.float32), h.numpy(), rtol=2e-3, atol=2e-3)
