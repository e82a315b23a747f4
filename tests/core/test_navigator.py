"""The navigator's PCA against numpy's covariance eigendecomposition, and its projections by hand."""

from __future__ import annotations

import numpy as np
import pytest

from spectrascope.core.analysis.navigator import last_residual, navigator, pca, reference_basis, reference_prompts


def test_pca_matches_the_covariance_eigenvectors_and_the_singular_values_give_the_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12)) @ np.diag(np.linspace(5, 0.5, 12)) + 3.0  # distinct variances, off-centre
    mean, comps, s, total = pca(x)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))  # an independent PCA: ascending eigenpairs
    for i in range(2):
        ref = evecs[:, -1 - i]
        assert abs(float(comps[i] @ ref)) == pytest.approx(1.0, abs=1e-9)  # the same direction, up to sign
        assert s[i] ** 2 / (len(x) - 1) == pytest.approx(evals[-1 - i], rel=1e-9)
        assert comps[i][np.abs(comps[i]).argmax()] > 0  # the sign rule
    assert total == pytest.approx(evals.sum(), rel=1e-9)
    coords = (x - mean) @ comps.T
    assert np.var(coords, axis=0, ddof=1) == pytest.approx(s ** 2 / (len(x) - 1), rel=1e-9)
    assert abs(float(np.corrcoef(coords.T)[0, 1])) < 1e-9  # principal coordinates are uncorrelated


def test_reference_prompts_are_a_few_dozen_from_the_neutral_sets():
    prompts = reference_prompts()
    assert 24 <= len(prompts) <= 64 and len(set(prompts)) == len(prompts)


def test_navigator_projects_each_prompt_onto_the_reference_plane(tiny_sae_session):
    s = tiny_sae_session
    prompts = ["The cat sleeps.", "A quick brown fox.", "Rome is in Italy.", "Language models predict tokens.",
               "The lazy dog.", "Paris is the capital of France."]
    basis = reference_basis(s, prompts)
    hook = s.sae_hook("coarse")
    x = np.stack([s.forward(s.tokenize(p)[0], capture=[hook], keep_logits=0).resid[hook][0, -1].float().numpy()
                  for p in prompts]).astype(np.float64)
    _, sv, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert basis.singular_values == pytest.approx(sv[:2], rel=1e-6)
    assert np.abs(basis.coords) == pytest.approx(np.abs((x - x.mean(0)) @ vt[:2].T), rel=1e-6, abs=1e-9)
    assert np.var(basis.coords, axis=0, ddof=1) == pytest.approx(sv[:2] ** 2 / (len(x) - 1), rel=1e-6)
    assert 0 < sum(basis.explained) <= 1 + 1e-9

    user, systems = "Where should I eat tonight", ["You are a pirate.", "Answer only in French."]
    rep = navigator(s, user, systems, basis)
    assert [p.system for p in rep.points] == ["", *systems] and len(rep.reference) == len(prompts)
    alone = last_residual(s, user, hook)
    for p in rep.points:
        xs = last_residual(s, f"{p.system}\n\n{user}" if p.system else user, hook)
        assert (p.x, p.y) == pytest.approx(tuple((xs - basis.mean) @ basis.components.T), rel=1e-6, abs=1e-9)
        assert p.shift == pytest.approx(float(np.linalg.norm(xs - alone)), rel=1e-6, abs=1e-9)
    assert rep.points[0].shift == 0 and rep.points[1].shift > 0
    from spectrascope.core.engine.session import PromptError

    with pytest.raises(PromptError, match="at least one"):
        navigator(s, user, [" "], basis)
    with pytest.raises(ValueError, match="at least 3"):
        reference_basis(s, prompts[:2])
