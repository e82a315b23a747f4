"""Cosine, correlation, classes and verdict against numpy on synthetic data; the full analysis on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spectrascope.core.analysis import pairing
from spectrascope.core.analysis.contrast import ContrastResult, ContrastSettings
from spectrascope.core.analysis.pairing import (CO_OCCURRING, PARTIAL, SUB_FEATURE, UNRELATED, PairingSettings, classify,
                                       decoder_cosine, pair, pearson, reclassify, verdict)


def test_decoder_cosine_matches_numpy_in_chunks():
    rng = np.random.default_rng(1)
    a, w = rng.normal(size=(3, 16)), rng.normal(size=(100, 16))
    ref = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    np.testing.assert_allclose(decoder_cosine(a, torch.tensor(w), chunk=7), ref, atol=1e-5)


def test_pearson_matches_corrcoef_and_zero_for_constants():
    rng = np.random.default_rng(2)
    x, Y = rng.normal(size=50), rng.normal(size=(50, 8))
    Y[:, 3] = 2 * x + 1
    Y[:, 4] = 0.0  # never fires
    got = pearson(x, Y)
    ref = [np.corrcoef(x, Y[:, j])[0, 1] for j in range(8) if j != 4]
    np.testing.assert_allclose(np.delete(got, 4), ref, atol=1e-5)
    assert got[3] == pytest.approx(1.0) and got[4] == 0.0
    assert (pearson(np.zeros(50), Y) == 0).all()


def test_classify_grid():
    cos = np.array([0.5, 0.1, 0.5, 0.1, 0.3])
    corr = np.array([0.9, 0.9, 0.1, 0.1, 0.5])  # the last sits exactly on both thresholds
    assert classify(cos, corr, 0.3, 0.5).tolist() == [SUB_FEATURE, CO_OCCURRING, PARTIAL, UNRELATED, SUB_FEATURE]


def synthetic(n=60, n_fine=40, seed=0):
    """Anchor 0 is the concept; fine 0..3 co-fire along its direction; 4 co-fires elsewhere; 5 shares its direction."""
    rng = np.random.default_rng(seed)
    d = 16
    is_concept = np.r_[np.ones(n // 2, bool), np.zeros(n - n // 2, bool)]
    concept_strength = is_concept * rng.uniform(1, 3, n)
    coarse = np.abs(rng.normal(size=(n, 5))) * (rng.random((n, 5)) < 0.3)
    coarse[:, 0] = concept_strength
    fine = np.abs(rng.normal(size=(n, n_fine))) * (rng.random((n, n_fine)) < 0.3)
    for j in range(5):
        fine[:, j] = concept_strength * rng.uniform(0.5, 1.5) + rng.normal(0, 0.1, n).clip(0)
    Wc = rng.normal(size=(5, d))
    Wf = rng.normal(size=(n_fine, d))
    Wf /= np.linalg.norm(Wf, axis=1, keepdims=True)
    Wf *= 0.2
    for j in (0, 1, 2, 3, 5):
        Wf[j] = Wc[0] / np.linalg.norm(Wc[0]) + rng.normal(0, 0.3, d)  # cosine well above 0.3
    acts = {"coarse": {"max": coarse.astype(np.float32), "mean": coarse.astype(np.float32) / 2},
            "fine": {"max": fine.astype(np.float32), "mean": fine.astype(np.float32) / 2}}
    return ContrastResult(("coarse", "fine"), acts, is_concept, ContrastSettings()), Wc, Wf


def test_pair_on_synthetic_against_reference():
    c, Wc, Wf = synthetic()
    res = pair(c, torch.tensor(Wc, dtype=torch.float32), torch.tensor(Wf, dtype=torch.float32),
               PairingSettings(n_anchors=2))
    assert res.anchors[0] == 0
    p = res.pairings[0]
    ref_cos = (Wf @ Wc[0]) / (np.linalg.norm(Wf, axis=1) * np.linalg.norm(Wc[0]))
    ref_corr = np.array([np.corrcoef(c.acts["coarse"]["max"][:, 0], c.acts["fine"]["max"][:, j])[0, 1]
                         for j in range(Wf.shape[0])])
    np.testing.assert_allclose(p.cosine, ref_cos, atol=1e-5)
    np.testing.assert_allclose(p.correlation, ref_corr, atol=1e-5)
    assert sorted(p.sub_features()) == [0, 1, 2, 3]
    assert p.classes[4] == CO_OCCURRING and p.classes[5] == PARTIAL
    assert res.verdict.go and res.verdict.anchor == 0 and res.verdict.count == 4
    assert "GO: coarse #0 has 4 sub-features" in res.verdict.text
    assert res.selected_features() == [("coarse", 0)] + [("fine", f) for f in p.sub_features()]
    assert res.matched_fine() == p.sub_features()
    heat = res.heatmap()
    assert heat.shape == (2, 4)
    np.testing.assert_allclose(heat[0], ref_cos[p.sub_features()], atol=1e-5)
    pairs = p.pairs()
    assert [q.cls for q in pairs[:4]] == ["sub-feature"] * 4 and {q.fine for q in pairs} >= {4, 5}


def test_thresholds_change_the_verdict_without_recompute():
    c, Wc, Wf = synthetic()
    res = pair(c, torch.tensor(Wc), torch.tensor(Wf))
    strict = reclassify(res, PairingSettings(cos_threshold=0.3, corr_threshold=0.9999))
    assert not strict.verdict.go and strict.verdict.count < 3
    assert strict.verdict.text.startswith("NO-GO: the best anchor")
    assert strict.pairings[0].cosine is res.pairings[0].cosine  # same arrays, only the classes change


def test_verdict_rules():
    def ap(anchor, n_sub):
        classes = np.array([SUB_FEATURE] * n_sub + [UNRELATED] * 3, np.int8)
        z = np.ones(len(classes), np.float32)
        return pairing.AnchorPairing(anchor, z, z, classes)

    assert not verdict([]).go
    v = verdict([ap(7, 2), ap(8, 3), ap(9, 1)], needed=3)
    assert v.go and v.anchor == 8 and v.count == 3
    v = verdict([ap(7, 2), ap(8, 1)], needed=3)
    assert not v.go and v.anchor == 7 and v.count == 2


def test_analyse_on_tiny_model_and_exports(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["The Eiffel Tower is in Paris.", "France has cheese.", "Paris is the capital of France."]
    neutral = ["A quick brown fox.", "The cat sleeps.", "Language models predict the next token."]
    progress = []
    res = pairing.analyse(tiny_sae_session, concept, neutral, progress=lambda m, f: progress.append(f))
    assert progress[-1] == pytest.approx(1.0)
    assert len(res.anchors) == 3
    assert set(res.labels["coarse"]) >= set(res.anchors)
    fine_w = tiny_sae_session.saes["fine"].W_dec.detach().numpy()
    coarse_w = tiny_sae_session.saes["coarse"].W_dec.detach().numpy()
    a = res.anchors[0]
    ref = fine_w @ coarse_w[a] / (np.linalg.norm(fine_w, axis=1) * np.linalg.norm(coarse_w[a]))
    np.testing.assert_allclose(res.pairings[a].cosine, ref, atol=1e-5)
    d = json.loads(pairing.export(res, tmp_path / "r.json").read_text())
    assert d["aggregate"] == "max" and d["verdict"]["text"] == res.verdict.text
    assert [x["feature"] for x in d["anchors"]] == res.anchors
    md = pairing.export(res, tmp_path / "r.md").read_text()
    assert "# Coarse-to-fine pairing report" in md and res.verdict.headline in md and res.verdict.null.text in md
    null = d["verdict"]["null_model"]  # every verdict carries its base rate over the live coarse features
    assert null["n_features"] > 0 and 0 <= null["base_rate"] <= 1 and null["anchor"] == res.verdict.anchor
    chosen = pairing.analyse(tiny_sae_session, concept, neutral, anchors=[5, 6], labels=False)
    assert chosen.anchors == [5, 6] and chosen.contrast.cached
    with pytest.raises(IndexError):
        pairing.analyse(tiny_sae_session, concept, neutral, anchors=[10_000], labels=False)


def test_pairing_report_links_features_to_neuronpedia_where_hosted(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["The Eiffel Tower is in Paris.", "France has cheese.", "Paris is the capital of France."]
    neutral = ["A quick brown fox.", "The cat sleeps.", "Language models predict the next token."]
    plain = pairing.to_dict(pairing.analyse(tiny_sae_session, concept, neutral, labels=False))
    assert plain["candidates"] and all(r["url"] is None for r in plain["candidates"])
    monkeypatch.setattr(tiny_sae_session.labels["fine"], "neuronpedia", ("gemma-2-2b", "12-gemmascope-res-262k"))
    res = pairing.analyse(tiny_sae_session, concept, neutral, labels=False)
    d = pairing.to_dict(res)
    base = "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-262k"
    assert all(r["url"] == f"{base}/{r['feature']}" for r in d["top_fine"])
    assert all(r["url"] is None for r in d["candidates"])  # the coarse SAE is not hosted here
    pairs = [p for a in d["anchors"] for p in a["pairs"]]
    assert pairs and all(p["url"] == f"{base}/{p['fine']}" for p in pairs)
    assert f"fine {base}/<feature>" in pairing.to_markdown(res)


def test_analyse_needs_both_saes(tiny_session):
    with pytest.raises(ValueError, match="coarse SAE"):
        pairing.analyse(tiny_session, ["a"], ["b"])


def test_labels_read_from_labels_json(tiny_sae_session, tmp_path, monkeypatch):
    folder = tmp_path / "coarse-sae"
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps({"latents": [{"id": 3, "promoted": [" Paris", "France"]}]}))
    from spectrascope.core.engine.labels import FeatureLabels

    shipped = FeatureLabels.for_sae(tiny_sae_session.saes["coarse"], tiny_sae_session, folder)
    monkeypatch.setitem(tiny_sae_session.labels, "coarse", shipped)
    labels = pairing.feature_labels(tiny_sae_session, "coarse", [3, 4], k=2)
    assert labels[3] == "Paris · France"  # shipped labels (here: promoted tokens only, no snippets)
    assert labels[4]  # not in the file: computed through the unembedding
    from spectrascope.core.engine.codes import promoted_tokens
    from spectrascope.core.text import visible

    unembed = tiny_sae_session.model.hf_model.get_output_embeddings().weight.detach()
    ref = [tiny_sae_session.piece(t) for t, _ in promoted_tokens(tiny_sae_session.saes["coarse"], 4, unembed, k=2)]
    assert labels[4] == " ".join(v for v in (visible(t, 16) for t in ref) if v.strip())


def test_labels_read_from_a_gzipped_labels_file(tmp_path):
    import gzip

    from spectrascope.core.engine.labels import read_labels_file

    doc = {"latents": [{"id": 3, "promoted": [" Paris"]}]}
    (tmp_path / "labels.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    (tmp_path / "labels.json").write_text(json.dumps({"latents": []}))  # the gzip wins
    assert read_labels_file(tmp_path) == doc and read_labels_file(tmp_path / "none") is None
