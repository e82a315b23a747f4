import numpy as np
import pytest
import torch

from spectrascope.core.saes import SAEIncompatible
from spectrascope.core.session import Request, resid_hook
from spectrascope.core.spectrum import encode, hook_layer, promoted_tokens
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
        fid = 1 - ((xn - recon) ** 2).sum(1) / (xn ** 2).sum(1)
        np.testing.assert_allclose(spec.fidelity.numpy(), fid, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(spec.rel_error.numpy(), np.sqrt(np.clip(1 - fid, 0, None)), rtol=1e-3, atol=1e-4)


def test_jumprelu_matches_a_hand_written_numpy_version(tiny_sae_session):
    sae = tiny_sae_session.saes["fine"]
    x = torch.randn(5, 64)
    spec = encode(sae, x, "fine")
    pre = x.numpy() @ sae.W_enc.detach().numpy() + sae.b_enc.detach().numpy()
    thr = sae.threshold.detach().numpy()
    ref = np.where(pre > thr, pre, 0.0)
    np.testing.assert_allclose(spec.codes.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_top_bands_silent_and_all_token_views():
    sae = make_tiny_sae(16, 40, "blocks.0.hook_resid_post", "topk", k=4)
    spec = encode(sae, torch.randn(3, 16), "coarse")
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
    from spectrascope.core.labels import FeatureLabel

    label = FeatureLabel(3, (" datac", " ians"), ((7.0, "Proust was a[[ French]] novelist"),
                                                  (6.0, "was a[[ German]] actress"), (5.0, "the[[ French]] flag")))
    assert label.marked_tokens() == ["French", "German"]
    assert label.short() == "fires on: French · German"
    assert FeatureLabel(3, (" datac", " ians")).short() == "datac · ians"
    # Brackets in the text itself do not leak into the marked token.
    bracketed = FeatureLabel(4, (), ((3.0, "NKO'O [[[French]]], Benard"), (2.0, "a [[x]] y ]] z")))
    assert bracketed.marked_tokens() == ["French", "x"]
