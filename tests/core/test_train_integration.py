"""The shipped embedded SAEs: load with sae-lens (no converter) and reproduce their stored metrics."""

from __future__ import annotations

import json

import pytest
import torch

from spectrascope.core.assets import SAES_DIR
from spectrascope.core.engine.saes import check_compatible, load_sae

pytestmark = pytest.mark.integration

NAMES = {"embedded-coarse": "gemma-3-270m-res9-coarse", "embedded-fine": "gemma-3-270m-res9-fine"}


@pytest.mark.parametrize("preset", list(NAMES))
def test_embedded_sae_files(preset):
    folder = SAES_DIR / NAMES[preset]
    for f in ("cfg.json", "sae_weights.safetensors", "metrics.json", "CARD.md", "labels.json.gz",
              "residual_stats.json"):
        assert (folder / f).exists(), f
        assert (folder / f).stat().st_size < 95e6
    from sae_lens import SAE

    sae = SAE.load_from_disk(folder)  # no converter
    assert sae.cfg.architecture() == "topk"
    check_compatible(sae, 640, "blocks.9.hook_resid_post")
    from spectrascope.core.engine.labels import read_labels_file

    labels = read_labels_file(folder)
    assert len(labels["latents"]) == sae.cfg.d_sae


@pytest.mark.parametrize("preset", list(NAMES))
def test_embedded_sae_reproduces_stored_metrics(preset):
    from spectrascope.core.train.activations import ActivationCache, acts_dir
    from spectrascope.core.train.evaluate import recon_metrics

    held = ActivationCache(acts_dir("heldout"))
    if held.n_tokens() < 8192:
        pytest.skip("held-out activation cache not built (python -m spectrascope.core.train cache)")
    sae = load_sae(preset)
    stored = json.loads((SAES_DIR / NAMES[preset] / "metrics.json").read_text())
    built_from, measured_on = held.manifest().get("corpus_version"), stored["cache"].get("corpus_version", 1)
    if built_from != measured_on:
        pytest.skip(f"the held-out cache is from corpus v{built_from}, the SAE was measured on v{measured_on}")
    m = recon_metrics(sae, held.load_all(8192))
    assert m["fve"] == pytest.approx(stored["heldout_slice_8192"]["fve"], abs=2e-3)
    assert m["l0"] == pytest.approx(stored["heldout_slice_8192"]["l0"], abs=0.05)
    assert m["fve"] == pytest.approx(stored["explained_variance"], abs=0.05)


def test_embedded_sae_on_live_residual():
    """encode() on the raw residual of the real model gives sparse codes that reconstruct it."""
    from spectrascope.core.train.activations import load_session, residual_at

    session = load_session()
    ids, _ = session.tokenize("The capital of France is Paris, a city on the Seine.")
    with torch.no_grad():
        h = residual_at(session, ids)[0, 1:]  # (T-1, d), BOS excluded as in training
        for preset in NAMES:
            sae = load_sae(preset)
            z = sae.encode(h)
            assert ((z > 0).sum(-1) <= sae.cfg.k).all()
            rec = sae.decode(z)
            fve = 1 - (h - rec).pow(2).sum() / (h - h.mean(0)).pow(2).sum()
            assert fve > 0.5
