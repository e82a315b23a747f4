"""The compact contrast cache on the real embedded model: the statistics a cache hit gives match the
uncached float32 run (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.test_pairing_embedded import needs_model, needs_saes

pytestmark = pytest.mark.integration


@needs_model
@needs_saes
def test_compact_cache_matches_the_float32_run(tmp_path, monkeypatch):
    from spectrascope.core.analysis import contrast
    from spectrascope.core.analysis.contrast import ContrastSettings, default_sets, load_prompts, run_contrast
    from spectrascope.core.analysis.pairing import pearson
    from spectrascope.core.engine.session import Session

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    session = Session.load("gemma-3-270m", device="cpu")
    concept, neutral = (load_prompts(p)[:60] for p in default_sets())
    exact = run_contrast(session, concept, neutral, use_cache=False)
    run_contrast(session, concept, neutral)  # writes the compact file
    hit = contrast.load_cached(exact.key, ContrastSettings())
    assert hit is not None and hit.cached
    dense_bytes = sum(a.nbytes for d in exact.acts.values() for a in d.values())
    assert hit.cache_bytes < dense_bytes / 4, (hit.cache_bytes, dense_bytes)
    for role in ("coarse", "fine"):
        e, c = exact.stats[role], hit.stats[role]
        np.testing.assert_array_equal(c.rate_concept, e.rate_concept)
        np.testing.assert_array_equal(c.rate_neutral, e.rate_neutral)
        np.testing.assert_allclose(c.mean_concept, e.mean_concept, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(c.selectivity, e.selectivity, atol=5 / 60**2)
        assert c.ranked(10) == e.ranked(10)
    anchor = exact.stats["coarse"].ranked(1)[0]
    np.testing.assert_allclose(pearson(hit.per_prompt("coarse")[:, anchor], hit.per_prompt("fine")),
                               pearson(exact.per_prompt("coarse")[:, anchor], exact.per_prompt("fine")), atol=1e-3)
