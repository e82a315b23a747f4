"""Evaluation splice and label helpers on a tiny random Gemma 3 and a tiny TopK SAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrascope.core.train.evaluate import ce_losses, ce_per_sequence, paired_ci, recon_metrics, zero_ablation_sae
from spectrascope.core.train.labels import promoted_tokens, snippet, top_activations
from spectrascope.core.train.trainer import TopKSAE, TrainConfig, to_sae_lens


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from spectrascope.core.engine.session import Session
    from tests.conftest import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-eval"), "gemma3", seed=1)
    session = Session.load(str(folder), device="cpu", dtype="float32", saes=())
    return session, session.tokenizer


def _sae(d=64, n=128, k=8, seed=0, hook="blocks.1.hook_resid_post"):
    torch.manual_seed(seed)
    m = TopKSAE(d, n, k, seed)
    with torch.no_grad():
        m.b_enc.normal_(0, 0.1)
    return to_sae_lens(m, 1.0, TrainConfig(name="t", d_in=d, d_sae=n, k=k, hook_name=hook))


def _identity_sae(d=64, hook="blocks.1.hook_resid_post"):
    """relu(x) - relu(-x) = x: a JumpReLU SAE whose reconstruction is exact."""
    from tests.conftest import make_tiny_sae

    sae = make_tiny_sae(d, 2 * d, hook, "jumprelu")
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.threshold.zero_()
    return sae


def _hf_ce_per_sequence(session, rows):
    """The reference: HF logits straight from the model, no session hooks."""
    ids = torch.from_numpy(rows.astype(np.int64))
    with torch.no_grad():
        logits = session.model.hf_model(ids).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none").mean(1)


def test_ce_splice_identity_and_degradation(tiny):
    session, _ = tiny
    rows = np.random.default_rng(0).integers(3, 500, size=(4, 16)).astype(np.int32)
    clean = ce_losses(session, rows, batch=2)
    assert clean == pytest.approx(float(_hf_ce_per_sequence(session, rows).mean()), rel=1e-5)
    assert ce_losses(session, rows, sae=_identity_sae(), batch=2) == pytest.approx(clean, rel=1e-5)
    assert ce_losses(session, rows, sae=_sae(), batch=2) != pytest.approx(clean, rel=1e-3)
    assert "spliced" not in session.saes


def test_per_sequence_ce_zero_ablation_and_paired_ci(tiny):
    session, _ = tiny
    rows = np.random.default_rng(1).integers(3, 500, size=(5, 12)).astype(np.int32)
    per_seq = ce_per_sequence(session, rows, batch=2)
    np.testing.assert_allclose(per_seq, _hf_ce_per_sequence(session, rows).numpy(), rtol=1e-5)
    ids = torch.from_numpy(rows.astype(np.int64))
    # Zero-ablation: the spliced residual is exactly 0 at every non-BOS position.
    zero = zero_ablation_sae(_sae())
    session.attach_sae("z", zero)
    try:
        from spectrascope.core.engine.plan import Splice

        out = session.forward(ids, capture=[session.sae_hook("z")], edits=[Splice("z", from_position=1)])
        resid = out.resid[session.sae_hook("z")]
        assert float(resid[:, 1:].abs().max()) == 0.0 and float(resid[:, 0].abs().max()) > 0
    finally:
        session.detach_sae("z")
    diff = ce_per_sequence(session, rows, _sae(), batch=2) - per_seq
    mean, half = paired_ci(diff)
    assert mean == pytest.approx(diff.mean()) and half == pytest.approx(1.96 * np.std(diff, ddof=1) / np.sqrt(5))


def test_ce_by_dims_splice_matches_hf_with_the_edit_done_by_hand(tiny):
    """The by-dims CE increase: HF's own forward with the layer output edited in a plain torch hook
    (the reconstruction in the chosen dims only) gives the same per-sequence CE."""
    from spectrascope.core.train.evaluate import ce_increase_by_dims

    session, _ = tiny
    rows = np.random.default_rng(2).integers(3, 500, size=(4, 12)).astype(np.int32)
    sae, dims = _sae(), (3, 17, 40)
    ids = torch.from_numpy(rows.astype(np.int64))

    def edit(module, args, out):
        h = out[0] if isinstance(out, tuple) else out
        h = h.clone()
        with torch.no_grad():
            rec = sae.decode(sae.encode(h[:, 1:]))
        h[:, 1:, list(dims)] = rec[..., list(dims)]
        return (h, *out[1:]) if isinstance(out, tuple) else h

    handle = session.model.hf_model.model.layers[1].register_forward_hook(edit)
    try:
        want = _hf_ce_per_sequence(session, rows).numpy()
    finally:
        handle.remove()
    np.testing.assert_allclose(ce_per_sequence(session, rows, sae, batch=2, dims=dims), want, rtol=1e-5)
    clean = ce_per_sequence(session, rows, batch=2)
    by = ce_increase_by_dims(session, rows, sae, list(dims), clean)
    assert by["massive_only"] == pytest.approx(float((want - clean).mean()), abs=1e-4)
    every = tuple(range(64))
    np.testing.assert_allclose(ce_per_sequence(session, rows, sae, batch=2, dims=every),
                               ce_per_sequence(session, rows, sae, batch=2), rtol=1e-6)


def test_recon_metrics_against_numpy():
    sae = _sae()
    x = np.random.default_rng(0).normal(size=(300, 64)).astype(np.float16)
    x[:, [5, 40, 9]] += np.array([60.0, 30.0, 12.0], np.float16)  # three massive dimensions, as in Gemma
    m = recon_metrics(sae, x, batch=128)
    xt = torch.from_numpy(x.astype(np.float32))
    with torch.no_grad():
        z = sae.encode(xt)
        rec = sae.decode(z).numpy()
    xf = x.astype(np.float64)
    fve = 1 - ((xf - rec) ** 2).sum() / ((xf - xf.mean(0)) ** 2).sum()
    assert m["fve"] == pytest.approx(fve, rel=1e-4)
    rest = [i for i in range(64) if i not in (5, 9, 40)]
    xr, rr = xf[:, rest], rec[:, rest]
    assert m["massive_dims"] == [5, 9, 40]
    assert m["fve_without_massive"] == pytest.approx(1 - ((xr - rr) ** 2).sum() / ((xr - xr.mean(0)) ** 2).sum(),
                                                     rel=1e-4)
    assert m["massive_share_of_norm"] == pytest.approx((xf[:, [5, 9, 40]] ** 2).sum() / (xf ** 2).sum(), rel=1e-4)
    assert m["l0"] == pytest.approx(float((z > 0).sum(-1).float().mean()))
    assert m["dead_frac_heldout"] == pytest.approx(float(((z > 0).sum(0) == 0).float().mean()))


def test_promoted_tokens_and_softcap():
    W_dec = torch.eye(3, 4)
    W_U = torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [5.0, 0, 0, 0], [0, 0, 0.5, 0]])
    ids, vals = promoted_tokens(W_dec, W_U, top=2)
    assert ids[0].tolist() == [2, 0] and ids[1].tolist()[0] == 1 and ids[2].tolist()[0] == 3
    ids2, vals2 = promoted_tokens(W_dec, W_U, top=2, softcap=3.0)
    assert ids2.tolist() == ids.tolist()
    assert vals2[0, 0].item() == pytest.approx(3.0 * np.tanh(5.0 / 3.0))


def test_top_activations_match_brute_force():
    sae = _sae()
    x = np.random.default_rng(1).normal(size=(1000, 64)).astype(np.float16)
    tops, max_act, fires = top_activations(sae, x, top=3, batch=256, min_gap=1)
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(x.astype(np.float32))).numpy()
    for lat in range(0, 128, 17):
        col = z[:, lat]
        want = [i for i in np.argsort(-col)[:3] if col[i] > 0]
        assert [i for _, i in tops[lat]] == want
        assert max_act[lat] == pytest.approx(max(col.max(), 0), rel=1e-5)
        assert fires[lat] == (col > 0).sum()


def test_random_snippets_are_a_uniform_sample_of_firings():
    sae = _sae()
    x = np.random.default_rng(2).normal(size=(1000, 64)).astype(np.float16)
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(x.astype(np.float32))).numpy()
    rare = int(np.argmin(np.where((z > 0).sum(0) > 0, (z > 0).sum(0), 10**9)))  # fewest firings, at least 1
    hits = np.zeros(1000)
    for seed in range(40):
        *_, sample, density, by_bin = top_activations(sae, x, top=1, batch=256, n_random=4, seed=seed)
        for lat in (rare, 5):  # one firing per nonempty density bin, each really in its bin
            col = z[:, lat]
            assert len(by_bin[lat]) == int((density[lat] > 0).sum())
            for v, i in by_bin[lat]:
                assert col[i] > 0 and v == pytest.approx(col[i], rel=1e-5)
        for lat in (rare, 5):
            col = z[:, lat]
            assert len(sample[lat]) == min(4, int((col > 0).sum()))
            for v, i in sample[lat]:  # every sampled index fires, with its activation
                assert col[i] > 0 and v == pytest.approx(col[i], rel=1e-5)
        hits[[i for _, i in sample[5]]] += 1
    # The density histogram counts every firing once, in its log10 bin (numpy reference).
    from spectrascope.core.train.labels import DENSITY_BINS, DENSITY_LOW, DENSITY_PER_DECADE

    for lat in (rare, 5):
        col = z[:, lat][z[:, lat] > 0]
        bins = np.clip(np.floor((np.log10(col) - DENSITY_LOW) * DENSITY_PER_DECADE), 0, DENSITY_BINS - 1)
        np.testing.assert_array_equal(density[lat], np.bincount(bins.astype(int), minlength=DENSITY_BINS))
    # Uniform over firings: no firing of a frequent latent is picked much more often than 4/n_fires.
    n_fires = int((z[:, 5] > 0).sum())
    assert n_fires > 40 and hits.max() <= 40 * 4 / n_fires * 4 + 3


def test_spread_picks_lower_bins_evenly():
    from spectrascope.core.train.labels import spread

    ex = [(float(i), i) for i in range(6)]
    assert spread(ex) == [(0.0, 0), (2.0, 2), (4.0, 4)]  # the top bin (5) is the top snippets' job
    assert spread(ex[:3]) == ex[:2] and spread([]) == []


def test_snippet_marks_token(tiny):
    _, tok = tiny
    row = np.array([tok.bos_token_id] + tok("The capital of France is Paris", add_special_tokens=False)["input_ids"])
    pos = len(row) - 1
    s = snippet(tok, row, pos)
    assert s.endswith("]]") and "[[" in s and "capital" in s
