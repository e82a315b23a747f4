import numpy as np
import pytest
import torch

from spectrascope.core.engine.residual_stats import ResidualStats
from spectrascope.core.engine.saes import SAEIncompatible
from spectrascope.core.engine.session import Request, resid_hook
from spectrascope.core.engine.codes import encode, hook_layer, promoted_tokens
from tests.conftest import make_tiny_sae


def test_one_pass_gives_logits_and_both_spectra(tiny_sae_session):
    result = tiny_sae_session.run(Request("The capital of France is"))
    assert result.logits is not None and set(result.spectra) == {"coarse", "fine"}
    coarse, fine = result.spectra["coarse"], result.spectra["fine"]
    assert coarse.codes.shape == (len(result.tokens), 128) and fine.width == 1024
    # TopK: exactly k active (random ReLU pre-acts can be <= 0, so at most k)
    assert int(coarse.l0.max()) <= 8


def test_encoding_equals_sae_lens_and_numpy_reference(tiny_sae_session):
    result = tiny_sae_session.run(Request("Paris is lovely in the spring"))
    x = result.resid[resid_hook(2)]  # (T, d)
    for role, sae in tiny_sae_session.saes.items():
        spec = result.spectra[role]
        with torch.no_grad():
            expected = sae.encode(x)
        torch.testing.assert_close(spec.codes, expected, rtol=1e-5, atol=1e-6)
        # L0 and fidelity against numpy
        codes = expected.numpy()
        recon = sae.decode(expected).detach().numpy()
        xn = x.numpy().astype(np.float64)
        np.testing.assert_array_equal(spec.l0.numpy(), (codes != 0).sum(1))
        stats = tiny_sae_session.resid_stats[role]
        mu, spread = stats.mean.numpy().astype(np.float64), stats.centered_sq_norm
        fid = 1 - ((xn - recon) ** 2).sum(1) / spread  # centered: against the typical spread E|x - mu|^2
        np.testing.assert_allclose(spec.fidelity.numpy(), fid, rtol=1e-4, atol=1e-4)
        raw = 1 - ((xn - recon) ** 2).sum(1) / (xn ** 2).sum(1)
        np.testing.assert_allclose(spec.rel_error.numpy(), np.sqrt(np.clip(1 - raw, 0, None)), rtol=1e-3, atol=1e-4)
        top3 = np.argsort(-(xn[1:] ** 2).mean(0))[:3]  # massive dims by mean x^2 (calibration text, not this prompt)
        share = (xn[:, list(stats.massive_dims)] ** 2).sum(1) / (xn ** 2).sum(1)
        np.testing.assert_allclose(spec.massive_share.numpy(), share, rtol=1e-4, atol=1e-6)
        assert stats.source.startswith("calibration text") and len(top3) == 3 and np.isfinite(mu).all()


def test_centered_fidelity_averages_to_explained_variance_and_the_mean_predictor_scores_zero():
    from spectrascope.core.engine.residual_stats import ResidualStats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)) * np.r_[np.full(3, 40.0), np.ones(13)] + np.r_[np.full(3, 100.0), np.zeros(13)]
    xt = torch.from_numpy(x).float()
    stats = ResidualStats.estimate(xt, "test")
    assert sorted(stats.massive_dims) == [0, 1, 2]
    recon = xt + torch.from_numpy(rng.normal(size=x.shape) * 3).float()
    ev = 1 - ((x - recon.numpy()) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()  # centered EV, SAELens style
    assert float(stats.fidelity(xt, recon).mean()) == pytest.approx(ev, abs=1e-4)
    mean_pred = stats.mean.expand_as(xt)
    assert float(stats.fidelity(xt, mean_pred).mean()) == pytest.approx(0.0, abs=1e-4)
    raw = 1 - ((x - mean_pred.numpy()) ** 2).sum(1) / (x ** 2).sum(1)
    assert raw.mean() > 0.6  # the raw-norm version flatters the trivial fit


def test_jumprelu_matches_a_hand_written_numpy_version(tiny_sae_session):
    sae = tiny_sae_session.saes["fine"]
    x = torch.randn(5, 64)
    spec = encode(sae, x, "fine", ResidualStats.estimate(x, "test"))
    pre = x.numpy() @ sae.W_enc.detach().numpy() + sae.b_enc.detach().numpy()
    thr = sae.threshold.detach().numpy()
    ref = np.where(pre > thr, pre, 0.0)
    np.testing.assert_allclose(spec.codes.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_top_bands_silent_and_all_token_views():
    sae = make_tiny_sae(16, 40, "blocks.0.hook_resid_post", "topk", k=4)
    x = torch.randn(3, 16)
    spec = encode(sae, x, "coarse", ResidualStats.estimate(x, "test"))
    top = spec.top(1, n=10)
    row = spec.codes[1]
    assert [i for i, _ in top] == row.argsort(descending=True)[: len(top)].tolist()
    assert spec.silent(1) == int((row == 0).sum())
    bands = spec.bands(1, n_bands=8)
    assert bands.shape == (8,) and np.isclose(bands.max(), float(row.max()))
    np.testing.assert_allclose(bands, [row[i * 5:(i + 1) * 5].max().item() for i in range(8)])
    torch.testing.assert_close(spec.row(None, "max"), spec.codes.max(0).values)
    with pytest.raises(IndexError, match="outside the prompt"):
        spec.row(7)


def test_promoted_tokens_follow_the_unembedding_and_softcap():
    sae = make_tiny_sae(8, 4, "blocks.0.hook_resid_post")
    unembed = torch.randn(50, 8)
    got = promoted_tokens(sae, 2, unembed, k=5)
    ref = (unembed @ sae.W_dec[2].detach()).topk(5)
    assert [i for i, _ in got] == ref.indices.tolist()
    capped = promoted_tokens(sae, 2, unembed, k=5, softcap=1.0)
    assert [i for i, _ in capped] == ref.indices.tolist() and all(abs(v) <= 1 for _, v in capped)
    with pytest.raises(IndexError, match="does not exist"):
        promoted_tokens(sae, 99, unembed)


def test_mismatched_saes_are_refused_with_a_clear_message(tiny_sae_session):
    with pytest.raises(SAEIncompatible, match="d_in=32"):
        tiny_sae_session.attach_sae("coarse", make_tiny_sae(32, 64, "blocks.2.hook_resid_post"))
    with pytest.raises(SAEIncompatible, match="not a layer"):
        tiny_sae_session.attach_sae("coarse", make_tiny_sae(64, 64, "blocks.40.hook_resid_post"))
    assert hook_layer("blocks.12.hook_resid_post") == 12


def test_labels_prefer_where_a_feature_fires_over_promoted_tokens():
    from spectrascope.core.engine.labels import FeatureLabel

    label = FeatureLabel(3, (" datac", " ians"), ((7.0, "Proust was a[[ French]] novelist"),
                                                  (6.0, "was a[[ German]] actress"), (5.0, "the[[ French]] flag")))
    assert label.marked_tokens() == ["French", "German"]
    assert label.short() == "fires on: French · German"
    assert FeatureLabel(3, (" datac", " ians")).short() == "datac · ians"
    # Brackets in the text itself do not leak into the marked token.
    bracketed = FeatureLabel(4, (), ((3.0, "NKO'O [[[French]]], Benard"), (2.0, "a [[x]] y ]] z")))
    assert bracketed.marked_tokens() == ["French", "x"]
