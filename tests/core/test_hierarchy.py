"""The token-level hierarchy test: planted sub-features, near-duplicates and look-alikes recovered; the
token firing the contrast run keeps (and caches) against the per-prompt forward."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from spectrascope.core.analysis import contrast
from spectrascope.core.analysis.pairing import (DUPLICATE, NOT_NESTED, SUB_FEATURE, CLASS_NAMES, PairingSettings,
                                                classify, pair)
from spectrascope.core.stats import hierarchy
from spectrascope.core.stats.null_model import subfeature_counts
from tests.core.synthetic_sae import world


def test_nesting_classes_on_the_boundaries():
    h = hierarchy
    cos = np.array([0.5, 0.5, h.DUP_COSINE, 0.5, 0.5, 0.5])
    p_cf = np.array([h.NEST_MIN, 0.79, 1.0, 1.0, 1.0, 1.0])
    p_fc = np.array([0.3, 0.3, 0.3, h.DUP_COVER, 0.49, 0.3])
    n_f = np.array([10, 10, 10, 10, 10, h.MIN_TOKENS - 1])
    assert h.nesting_classes(cos, p_cf, p_fc, n_f).tolist() == [
        h.NESTED, h.NOT_NESTED, h.DUPLICATE, h.DUPLICATE, h.NESTED, h.NOT_NESTED]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_sub_features_duplicates_and_look_alikes_are_recovered(seed):
    r, wc, wf, parent = world([4, 2, 0, 1, 3, 0], extra=True, concept_topic=0, seed=seed)
    res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=2, min_subfeatures=4))
    assert res.anchors[0] == 0
    p = res.pairings[0]
    children = np.flatnonzero(parent == 0)
    planted = {int(f): "sub-feature" for f in children[:4]}
    planted.update({int(children[4]): "near-duplicate", int(children[5]): "near-duplicate",
                    int(children[6]): "not nested"})
    assert {f: CLASS_NAMES[int(p.classes[f])] for f in planted} == planted
    assert sorted(p.sub_features()) == sorted(f for f, c in planted.items() if c == "sub-feature")
    assert res.verdict.go and res.verdict.count == 4 and res.verdict.nested
    # Thresholds alone would count the two duplicates and the look-alike as well.
    plain = classify(p.cosine, p.correlation, 0.3, 0.5)
    assert int((plain == SUB_FEATURE).sum()) == 7
    assert p.counts() == {"sub-feature": 4, "partial overlap": 0, "co-occurring": 0, "near-duplicate": 2,
                          "not nested": 1}
    pairs = {q.fine: q for q in p.pairs()}
    dup = pairs[int(children[4])]
    assert dup.p_fine_given_coarse >= hierarchy.DUP_COVER and dup.p_coarse_given_fine == pytest.approx(1.0)
    assert pairs[int(children[6])].p_coarse_given_fine < hierarchy.NEST_MIN


def test_nesting_rows_against_dense_counts():
    r, *_ = world([3, 1, 2, 0], seed=4)
    c = r.tokens.firing["coarse"].toarray()
    f = r.tokens.firing["fine"].toarray()
    nest = hierarchy.nesting(r)
    assert hierarchy.nesting(r) is nest  # built once per run
    p_cf, p_fc = nest.rows([2, 0])
    for row, a in enumerate([2, 0]):
        both = (c[:, a][:, None] & f).sum(0)
        np.testing.assert_allclose(p_cf[row], np.divide(both, f.sum(0), out=np.zeros(f.shape[1]),
                                                        where=f.sum(0) > 0))
        np.testing.assert_allclose(p_fc[row], both / c[:, a].sum())


def test_null_model_counts_use_the_same_test_as_the_pairing():
    r, wc, wf, _ = world([4, 2, 0, 1, 3, 5], extra=True, concept_topic=0, seed=3)
    nest = hierarchy.nesting(r)
    res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=1), anchors=list(range(6)))
    want = [len(res.pairings[a].sub_features()) for a in range(6)]
    got = subfeature_counts(r.per_prompt("coarse"), r.per_prompt("fine"), wc, wf, np.arange(6), 0.3, 0.5,
                            chunk=4, fine_chunk=7, nesting=nest)
    np.testing.assert_array_equal(got, want)
    assert want[0] == 4 and want[5] == 5


def test_a_run_without_token_firing_says_the_hierarchy_was_not_tested():
    r, wc, wf, _ = world([4, 2, 0, 1, 3, 0], extra=True, concept_topic=0, seed=0)
    r.tokens = None
    res = pair(r, torch.tensor(wc), torch.tensor(wf))
    assert not res.verdict.nested and res.verdict.count == 7
    assert res.verdict.to_dict()["hierarchy_definition"].startswith("not tested")


@pytest.mark.parametrize("density", [0.01, 0.5])
def test_token_firing_is_stored_in_the_smaller_layout_and_read_back_exactly(density):
    m = sp.random(300, 1000, density=density, format="csr", random_state=1).astype(bool)
    stored, layout = contrast.encode_firing("x", m)
    assert layout["layout"] == ("csr" if density < 0.03 else "bits")
    back = contrast.decode_firing(stored, "x", layout, chunk=7)
    assert back.dtype == bool and (back != m).nnz == 0


def test_contrast_run_keeps_each_tokens_firing_and_caches_it(tiny_sae_session, tmp_path, monkeypatch):
    from spectrascope.core.engine.session import Request

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["Paris is lovely in spring.", "France"]
    neutral = ["The cat sleeps on the mat.", "One two three."]
    first = contrast.run_contrast(tiny_sae_session, concept, neutral, contrast.ContrastSettings(batch_size=3))
    t = first.tokens
    assert t is not None and t.n_tokens == first.info["tokens"]
    for i, prompt in enumerate(concept + neutral):
        rows = np.flatnonzero(t.prompt == i)
        run = tiny_sae_session.run(Request(prompt, logits=False))
        assert t.position[rows].tolist() == list(range(1, len(run.tokens)))  # BOS left out
        assert t.token_id[rows].tolist() == [tok.id for tok in run.tokens[1:]]
        for role in ("coarse", "fine"):
            np.testing.assert_array_equal(t.firing[role][rows].toarray(), run.spectra[role].codes[1:].numpy() > 0)
    hit = contrast.run_contrast(tiny_sae_session, concept, neutral)
    assert hit.cached
    for role in ("coarse", "fine"):
        assert (hit.tokens.firing[role] != t.firing[role]).nnz == 0
    np.testing.assert_array_equal(hit.tokens.token_id, t.token_id)


def test_a_cache_file_without_token_firing_is_a_miss(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    first = contrast.run_contrast(tiny_sae_session, ["France"], ["The cat."])
    first.tokens = None
    contrast.save_cached(first)  # as a run before token firing was kept wrote it
    assert contrast.load_cached(first.key, contrast.ContrastSettings()) is None
    again = contrast.run_contrast(tiny_sae_session, ["France"], ["The cat."])
    assert not again.cached and again.tokens is not None
    assert contrast.load_cached(first.key, contrast.ContrastSettings()).tokens is not None
