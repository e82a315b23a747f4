"""Feature labels: one batched logit-lens call for what is missing, an LRU per SAE, the
unembedding converted at most once, and nothing computed by `known` (the UI thread's call)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from spectrascope.core.engine import codes as spectrum
from spectrascope.core.engine.labels import FeatureLabels, compute_labels
from spectrascope.core.engine.codes import promoted_tokens
from tests.conftest import make_tiny_sae

VOCAB = 300


def labels_on(unembed: torch.Tensor, d_sae: int = 64, **kwargs) -> FeatureLabels:
    sae = make_tiny_sae(unembed.shape[1], d_sae, "blocks.0.hook_resid_post", seed=5)
    session = SimpleNamespace(unembedding=lambda: unembed, model=SimpleNamespace(), piece=lambda i: f"t{i}")
    labels = FeatureLabels.for_sae(sae, session)
    for key, value in kwargs.items():
        setattr(labels, key, value)
    return labels


def count_lens_calls(monkeypatch) -> dict:
    """Count the batched lens calls (their feature counts) and the unembedding's conversions for it."""
    calls = {"batch": [], "lens": 0}
    batch, lens = spectrum.promoted_tokens_batch, spectrum.lens_unembedding

    def counting_batch(W_dec, W_U, *a, **k):
        calls["batch"].append(W_dec.shape[0])
        return batch(W_dec, W_U, *a, **k)

    def counting_lens(W_U):
        calls["lens"] += 1
        return lens(W_U)

    monkeypatch.setattr(spectrum, "promoted_tokens_batch", counting_batch)
    monkeypatch.setattr(spectrum, "lens_unembedding", counting_lens)
    return calls


@pytest.fixture
def counted(monkeypatch):
    return count_lens_calls(monkeypatch)


def test_missing_labels_are_computed_in_one_batch_and_cached(counted):
    unembed = torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(0))
    labels = labels_on(unembed)
    assert labels.known(7) is None  # nothing computed on the UI thread's call
    assert counted["batch"] == []
    got = labels.compute([7, 3, 7, 40])
    assert counted["batch"] == [3] and list(got) == [7, 3, 40]  # duplicates once, one call
    for f in (3, 7, 40):  # the same tokens as the one-feature reference
        ref = promoted_tokens(labels.sae, f, unembed, k=8)
        assert got[f].promoted == tuple(f"t{i}" for i, _ in ref)
        assert labels.known(f) == got[f]
    counted["batch"].clear()  # (the references' calls)
    labels.compute([3, 40, 41])
    assert counted["batch"] == [1]  # only the new one
    assert labels.get(41) is labels.known(41) and counted["batch"] == [1]
    with pytest.raises(IndexError, match="does not exist"):
        labels.known(64)


def test_the_unembedding_is_converted_once_per_sae(counted):
    """fp16 on a CPU has no fast matmul: it becomes fp32 once; fp32 and bf16 are used as they are."""
    unembed = torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(1))
    half = labels_on(unembed.half())
    for ids in ([1, 2], [3], [4, 5, 6]):
        half.compute(ids)
    assert counted["lens"] == 1 and half._lens.dtype == torch.float32
    ref = promoted_tokens(half.sae, 4, unembed.half().float(), k=8)
    assert half.known(4).promoted == tuple(f"t{i}" for i, _ in ref)
    bf16 = labels_on(unembed.bfloat16())
    bf16.compute([1, 2])
    assert bf16._lens is bf16.unembed  # kept in the model's dtype: no copy
    assert spectrum.lens_unembedding(unembed) is unembed


def test_bf16_labels_match_fp32_up_to_near_ties():
    unembed = torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(2))
    exact, bf16 = labels_on(unembed), labels_on(unembed.bfloat16())
    ids = list(range(32))
    a, b = exact.compute(ids), bf16.compute(ids)
    overlap = sum(len(set(a[f].promoted[:5]) & set(b[f].promoted[:5])) for f in ids) / (5 * len(ids))
    assert overlap > 0.9


def test_the_cache_is_bounded():
    labels = labels_on(torch.randn(VOCAB, 16), max_cached=4)
    labels.compute(range(6))
    assert len(labels._computed) == 4 and labels.known(0) is None and labels.known(5) is not None
    labels.known(2)  # used: kept over 3
    labels.compute([10])
    assert labels.known(2) is not None and labels.known(3) is None


def test_shipped_labels_and_no_unembedding_need_no_computing(counted):
    labels = labels_on(torch.randn(VOCAB, 16))
    labels.shipped = {5: {"id": 5, "promoted": [" Paris"], "freq": 0.3}}
    assert labels.known(5).promoted == (" Paris",) and labels.known(5).freq == 0.3
    bare = FeatureLabels.for_sae(labels.sae)  # no session: promoted tokens unknown, nothing to wait for
    assert bare.known(9).promoted == () and bare.compute([9])[9].promoted == ()
    assert counted["batch"] == []


def test_concurrent_callers_compute_each_feature_once(counted):
    labels = labels_on(torch.randn(VOCAB, 16))
    threads = [threading.Thread(target=compute_labels, args=({"coarse": labels}, {"coarse": list(range(20))}))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted["batch"] == [20] and counted["lens"] == 1


def test_large_vocabularies_are_chunked(monkeypatch):
    """No (features x vocab) logits matrix above ~16M entries, whatever the vocabulary."""
    W_U = torch.randn(1 << 18, 4)  # 262,144 tokens: 64 features per chunk
    W_dec = torch.randn(100, 4)
    seen = []
    real_topk = torch.topk

    def watching_topk(x, *a, **k):
        seen.append(x.shape[0] * x.shape[1])
        return real_topk(x, *a, **k)

    monkeypatch.setattr(torch, "topk", watching_topk)
    ids, _ = spectrum.promoted_tokens_batch(W_dec, W_U, top=3)
    assert ids.shape == (100, 3) and max(seen) <= 1 << 24 and len(seen) == 2
    assert ids[7].tolist() == real_topk(W_U @ W_dec[7], 3).indices.tolist()
