"""Contrast and pairing on the real embedded model (Gemma 3 270M)."""

from __future__ import annotations

import numpy as np
import pytest

from spectrascope.core.engine.embedded import embedded_dir, is_complete
from spectrascope.core.assets import SAES_DIR

pytestmark = pytest.mark.integration

needs_model = pytest.mark.skipif(not is_complete(embedded_dir()), reason="embedded model not converted here")
SAE_FILES = [SAES_DIR / f"gemma-3-270m-res9-{r}" / "cfg.json" for r in ("coarse", "fine")]
needs_saes = pytest.mark.skipif(not all(p.exists() for p in SAE_FILES), reason="embedded SAE assets are absent")


@needs_model
def test_batched_equals_unbatched_on_gemma3(tmp_path):
    """Right padding + attention mask on the real architecture (sliding-window layers included)."""
    import sys

    sys.path.insert(0, str(SAES_DIR.parent.parent))
    from spectrascope.core.analysis.contrast import collect_activations
    from spectrascope.core.engine.session import Request, Session
    from tests.conftest import make_tiny_sae

    session = Session.load("gemma-3-270m", device="cpu", dtype="float32", saes=[])
    hook = "blocks.9.hook_resid_post"
    session.attach_sae("coarse", make_tiny_sae(session.model.d_model, 256, hook, "topk", k=16, seed=1))
    session.attach_sae("fine", make_tiny_sae(session.model.d_model, 1024, hook, "jumprelu", seed=2))
    prompts = ["The Eiffel Tower is located in the city of", "Paris",
               "A quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill.",
               "Crêpes come from Brittany.", "The train to the coast leaves every hour."]
    acts, _ = collect_activations(session, prompts, batch_size=3)
    for i, p in enumerate(prompts):
        r = session.run(Request(p, logits=False))
        for role in ("coarse", "fine"):
            codes = r.spectra[role].codes[1:].numpy()
            scale = max(1.0, float(np.abs(codes).max()))
            np.testing.assert_allclose(acts[role]["max"][i], codes.max(0), rtol=1e-3, atol=1e-3 * scale)
            np.testing.assert_allclose(acts[role]["mean"][i], codes.mean(0), rtol=1e-3, atol=1e-3 * scale)


@needs_model
@needs_saes
def test_embedded_default_pairing(tmp_path, monkeypatch):
    """The issue's "must come out", on the shipped sets (all 200 + 200 prompts) and SAEs:
    a coarse feature with selectivity >= 0.9 on France whose label is recognisably France,
    and a verdict. Guards the shipped assets: a retrained SAE that loses it fails here."""
    from spectrascope.core.analysis import pairing
    from spectrascope.core.analysis.contrast import default_sets, load_prompts
    from spectrascope.core.engine.session import Session

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    session = Session.load("gemma-3-270m", device="cpu")
    assert set(session.saes) == {"coarse", "fine"}, session.sae_errors
    concept, neutral = (load_prompts(p) for p in default_sets())
    res = pairing.analyse(session, concept, neutral)
    stats = res.contrast.stats["coarse"]
    best = res.anchors[0]
    assert stats.selectivity[best] >= 0.9, (best, float(stats.selectivity[best]))
    assert stats.rate_concept[best] > 0.9
    fires_on = session.labels["coarse"].get(best).marked_tokens()
    assert {"France", "French", "Paris"} & set(fires_on), fires_on
    assert "France" in res.labels["coarse"][best] or "French" in res.labels["coarse"][best]
    assert res.verdict.anchor in res.anchors and all(res.labels["coarse"].get(a) for a in res.anchors)
    print(res.verdict.text)


@pytest.fixture(scope="module")
def embedded_session(tmp_path_factory):
    """The embedded model with its shipped SAEs, contrast runs cached in a fresh folder (so they run)."""
    import os

    from spectrascope.core.engine.session import Session

    old = os.environ.get("SPECTRASCOPE_CACHE")
    os.environ["SPECTRASCOPE_CACHE"] = str(tmp_path_factory.mktemp("contrast-cache"))
    try:
        session = Session.load("gemma-3-270m", device="cpu")
        assert set(session.saes) == {"coarse", "fine"}, session.sae_errors
        yield session
    finally:
        if old is None:
            os.environ.pop("SPECTRASCOPE_CACHE", None)
        else:
            os.environ["SPECTRASCOPE_CACHE"] = old


@needs_model
@needs_saes
@pytest.mark.parametrize("name", ["code", "cooking", "music", "japan"])
def test_each_concept_set_finds_a_selective_feature_named_for_it(embedded_session, name):
    """Issue 15's product bar on the four sets written without looking at the SAEs: the coarse or
    fine SAE has a feature with selectivity >= 0.8 among its 5 most selective whose max-activating
    held-out tokens include a word of the concept (core/train/concepts.py)."""
    from spectrascope.core.analysis.concept_sets import CONCEPT_SETS
    from spectrascope.core.train.concepts import best_features, found

    report = best_features(embedded_session, CONCEPT_SETS[name])
    assert found(report["best"]) is not None, report["best"]
