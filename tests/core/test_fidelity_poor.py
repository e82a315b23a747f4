"""Fidelity without the massive dims (the headline) and the poor-fit flag from reference percentiles."""

import json

import numpy as np
import pytest
import torch
from spectrascope.core.engine.fidelity import calibrate, measure
from spectrascope.core.engine.residual_stats import REFERENCE_FILE, ResidualStats
from spectrascope.core.engine.session import Request, resid_hook


def gemma_like(n: int, seed: int) -> np.ndarray:
    """Residuals whose dims 0-2 are massive: big offsets and most of the centred variance (as Gemma's)."""
    rng = np.random.default_rng(seed)
    scale = np.r_[np.full(3, 60.0), np.ones(29)]
    return rng.normal(size=(n, 32)) * scale + np.r_[np.full(3, 400.0), np.zeros(29)]


def fitted(x: np.ndarray, seed: int, noise: float = 0.4) -> np.ndarray:
    """An SAE-like reconstruction: the massive dims almost exact, the others off by `noise`."""
    rng = np.random.default_rng(seed)
    err = rng.normal(size=x.shape) * np.r_[np.full(3, 0.5), np.full(29, noise)]
    return x + err


def test_fidelity_without_massive_dims_equals_numpy():
    x = gemma_like(400, 0)
    stats = ResidualStats.estimate(torch.from_numpy(x).float(), "test")
    assert sorted(stats.massive_dims) == [0, 1, 2]
    recon = fitted(x, 1)
    rest = [i for i in range(32) if i not in (0, 1, 2)]
    mu = x.mean(0)
    spread = ((x[:, rest] - mu[rest]) ** 2).sum(1).mean()
    direct = 1 - ((x - recon)[:, rest] ** 2).sum(1) / spread
    assert stats.rest_centered_sq_norm == pytest.approx(spread, rel=1e-6)
    got = stats.fidelity_rest(torch.from_numpy(x).float(), torch.from_numpy(recon).float()).numpy()
    np.testing.assert_allclose(got, direct, rtol=1e-4, atol=1e-4)
    # the massive dims flatter: with them in, the same fit reads near 1
    full = stats.fidelity(torch.from_numpy(x).float(), torch.from_numpy(recon).float()).numpy()
    assert full.mean() > 0.97 and direct.mean() < full.mean() - 0.1


def test_poor_flag_from_reference_percentiles_fires_on_a_planted_bad_token_only():
    ref = gemma_like(2000, 2)
    stats = ResidualStats.estimate(torch.from_numpy(ref).float(), "test")
    stats, summary = measure(stats, torch.from_numpy(ref).float(), torch.from_numpy(fitted(ref, 3)).float(), "ref")
    fid_ref = stats.fidelity_rest(torch.from_numpy(ref).float(), torch.from_numpy(fitted(ref, 3)).float()).numpy()
    assert stats.poor_below == pytest.approx(np.percentile(fid_ref, 5), abs=1e-6)
    assert summary["poor_below"] == stats.poor_below and "5th percentile on 2,000 tokens of ref" in stats.poor_source
    # typical tokens, new draws of the same text and fit: about 5% flagged, the median one not
    x = gemma_like(1000, 4)
    recon = fitted(x, 5)
    fid = stats.fidelity_rest(torch.from_numpy(x).float(), torch.from_numpy(recon).float())
    share = float(stats.poor(fid).float().mean())
    assert 0.02 < share < 0.09
    assert not bool(stats.poor(fid.median().reshape(1)))
    # a planted bad token: the massive dims exact, the others off 3x more than usual
    bad = x[:1].copy()
    bad_recon = fitted(bad, 6, noise=1.2)
    f_bad = stats.fidelity_rest(torch.from_numpy(bad).float(), torch.from_numpy(bad_recon).float())
    assert bool(stats.poor(f_bad)[0])
    # the old rule (fidelity with the massive dims < 0.5) misses it
    assert float(stats.fidelity(torch.from_numpy(bad).float(), torch.from_numpy(bad_recon).float())[0]) > 0.5


def test_an_sae_worse_than_the_mean_everywhere_has_every_token_flagged():
    ref = gemma_like(500, 8)
    stats = ResidualStats.estimate(torch.from_numpy(ref).float(), "test")
    junk = ref * np.r_[np.ones(3), -np.ones(29)]  # the ordinary dims sign-flipped: worse than the mean everywhere
    stats, _ = measure(stats, torch.from_numpy(ref).float(), torch.from_numpy(junk).float(), "ref")
    assert stats.poor_below < 0 and stats.poor_threshold == 0.0 and "mean predictor" in stats.poor_threshold_source
    fid = stats.fidelity_rest(torch.from_numpy(ref).float(), torch.from_numpy(junk).float())
    assert bool(stats.poor(fid).all())


def test_shipped_reference_file_is_read_beside_residual_stats(tmp_path):
    x = torch.from_numpy(gemma_like(300, 7)).float()
    stats = ResidualStats.estimate(x, "training cache")
    (tmp_path / "residual_stats.json").write_text(stats.to_json())
    plain = ResidualStats.load(tmp_path)
    assert plain.rest_centered_sq_norm is None and plain.poor_below is None  # no reference: the session measures one
    (tmp_path / REFERENCE_FILE).write_text(json.dumps({"rest_centered_sq_norm": 12.5, "poor_below": 0.61,
                                                       "poor_source": "the 5th percentile on 9 tokens of x"}))
    loaded = ResidualStats.load(tmp_path)
    assert (loaded.rest_centered_sq_norm, loaded.poor_below, loaded.poor_source) == (
        12.5, 0.61, "the 5th percentile on 9 tokens of x")
    assert calibrate(None, x, loaded, "unused") is loaded  # nothing to measure: no SAE call


def test_session_and_view_use_the_calibrated_threshold(tiny_sae_session):
    from spectrascope.core.views.spectrum import from_result

    result = tiny_sae_session.run(Request("Paris is lovely in the spring"))
    x = result.resid[resid_hook(2)].numpy().astype(np.float64)
    report = from_result(result, tiny_sae_session.labels, {}, position=3, stats=tiny_sae_session.resid_stats)
    for role, sae in tiny_sae_session.saes.items():
        stats = tiny_sae_session.resid_stats[role]
        assert stats.poor_below is not None and stats.poor_source.startswith("the 5th percentile on")
        assert "calibration text" in stats.poor_source
        with torch.no_grad():
            recon = sae.decode(sae.encode(result.resid[resid_hook(2)])).numpy()
        rest = list(stats.rest_dims)
        direct = 1 - ((x - recon)[:, rest] ** 2).sum(1) / stats.rest_centered_sq_norm
        spec = result.spectra[role]
        np.testing.assert_allclose(spec.fidelity_rest.numpy(), direct, rtol=1e-4, atol=1e-4)
        threshold = max(0.0, stats.poor_below)  # the random tiny SAEs fit worse than the mean: floored at 0
        assert spec.poor_below == threshold and spec.poor_positions() == [i for i, f in enumerate(direct) if f < threshold]
        sae_view = report.saes[role]
        assert sae_view.fidelity == pytest.approx(direct[3], abs=1e-4)  # the headline: without the massive dims
        assert sae_view.fidelity_with_massive == pytest.approx(float(spec.fidelity[3]), abs=1e-6)
        assert sae_view.poor_fit == (direct[3] < threshold) and sae_view.poor_below == threshold
    d = report.to_dict()
    assert "not massive" in d["fidelity_definition"] and d["saes"]["coarse"]["fidelity"] == report.saes["coarse"].fidelity
    assert len(d["saes"]["coarse"]["fidelity_with_massive_per_token"]) == len(result.tokens)
