"""The trainer's TopK SAE: sparse gradients equal dense autograd, and the exported SAE equals sae-lens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spectrascope.core.train.trainer import TopKSAE, TrainConfig, export, lr_at, to_sae_lens, train


def _dense_loss(m: TopKSAE, x):
    pre = (x - m.b_dec) @ m.W_enc + m.b_enc
    v, i = torch.topk(pre, m.k, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, i, v.relu())
    return (x - (z @ m.W_dec + m.b_dec)).pow(2).sum()


def test_sparse_backward_equals_dense_autograd():
    torch.manual_seed(0)
    m, ref = TopKSAE(24, 96, 8), TopKSAE(24, 96, 8)
    with torch.no_grad():
        m.b_dec.normal_()
        m.b_enc.normal_()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(64, 24)
    (x - m(x)).pow(2).sum().backward()
    _dense_loss(ref, x).backward()
    for name in ("W_enc", "b_enc", "b_dec", "W_dec"):
        torch.testing.assert_close(getattr(m, name).grad, getattr(ref, name).grad, rtol=1e-4, atol=1e-4)


def test_exported_sae_matches_sae_lens_forward_on_raw_inputs(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(name="t", d_in=24, d_sae=96, k=8)
    m = TopKSAE(24, 96, 8)
    with torch.no_grad():
        m.b_dec.normal_()
        m.b_enc.normal_(0, 0.1)
    scale = 37.5  # training ran on x / scale; the export must take raw x
    sae = to_sae_lens(m, scale, cfg)
    x_raw = torch.randn(50, 24) * scale
    with torch.no_grad():
        z_ours = m.dense_acts(x_raw / scale) * scale
        rec_ours = m(x_raw / scale) * scale
        z_sl = sae.encode(x_raw)
        rec_sl = sae.decode(z_sl)
    torch.testing.assert_close(z_sl, z_ours, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(rec_sl, rec_ours, rtol=1e-4, atol=1e-3)
    assert ((z_sl > 0).sum(-1) <= 8).all()
    # And after a round trip through the on-disk format, with no converter.
    from sae_lens import SAE

    sae.save_model(tmp_path / "sae")
    loaded = SAE.load_from_disk(tmp_path / "sae")
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x_raw), z_ours, rtol=1e-4, atol=1e-3)
    assert loaded.cfg.metadata.hook_name == "blocks.9.hook_resid_post"


def test_lr_schedule_warmup_and_decay():
    cfg = TrainConfig(name="t", lr=1.0, warmup_frac=0.1, decay_frac=0.5)
    assert lr_at(0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(20, 100, cfg) == 1.0
    assert lr_at(75, 100, cfg) == pytest.approx(0.5)
    assert lr_at(99, 100, cfg) == pytest.approx(0.02)


def test_train_learns_resumes_and_exports(tmp_path):
    # Sparse synthetic data: each point is a sum of 3 of 40 random directions.
    rng = np.random.default_rng(0)
    D = rng.normal(size=(40, 16))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    idx = rng.integers(0, 40, size=(6000, 3))
    x = (D[idx] * rng.uniform(1, 3, size=(6000, 3, 1))).sum(1) * 50.0
    acts = x.astype(np.float16)
    cfg = TrainConfig(name="t", d_in=16, d_sae=64, k=4, lr=3e-3, batch=256, total_tokens=256 * 120,
                      dead_window=2048, k_aux=16)
    full = train(cfg, acts, progress=False, run_dir=tmp_path / "full")
    assert full["state"]["curve"][-1]["fve"] > 0.6  # an EMA over training batches

    # Kill mid-run (the LR lookup of step 60 raises), then resume: identical weights to the unbroken run.
    import spectrascope.core.train.trainer as tr
    orig = tr.lr_at

    def dying(step, total, c):
        if step == 60:
            raise KeyboardInterrupt
        return orig(step, total, c)

    tr.lr_at = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, acts, progress=False, run_dir=tmp_path / "part", ckpt_every_s=0.0)
    finally:
        tr.lr_at = orig
    res = train(cfg, acts, progress=False, run_dir=tmp_path / "part")
    assert res["state"]["step"] == full["state"]["step"] == 120
    for k in ("W_enc", "W_dec", "b_enc", "b_dec"):
        torch.testing.assert_close(getattr(res["model"], k), getattr(full["model"], k), rtol=1e-5, atol=1e-5)

    folder = export(full, cfg, tmp_path / "out")
    from sae_lens import SAE

    sae = SAE.load_from_disk(folder)
    assert sae.cfg.architecture() == "topk" and sae.cfg.k == 4
    # Matrices are stored in fp16, biases in fp32; sae-lens loads them back as cfg.dtype (fp32).
    from safetensors.torch import load_file

    stored = load_file(folder / "sae_weights.safetensors")
    assert stored["W_enc"].dtype == stored["W_dec"].dtype == torch.float16 and stored["b_enc"].dtype == torch.float32
    assert sae.W_enc.dtype == torch.float32
    full_sae = to_sae_lens(full["model"], full["scale"], cfg)
    xr16 = torch.from_numpy(acts[:200].astype(np.float32))
    with torch.no_grad():
        err16 = (xr16 - sae.decode(sae.encode(xr16))).pow(2).sum()
        err32 = (xr16 - full_sae.decode(full_sae.encode(xr16))).pow(2).sum()
    # A TopK near-tie may flip one latent per token, so compare the fit, not every element.
    assert abs(float(err16 / err32) - 1) < 0.02
    assert json.loads((folder / "train_curve.json").read_text())["train_tokens_unique"] == 6000
    xr = torch.from_numpy(acts[:500].astype(np.float32))
    with torch.no_grad():
        rec = sae.decode(sae.encode(xr))
    fve = 1 - (xr - rec).pow(2).sum() / (xr - xr.mean(0)).pow(2).sum()
    assert fve > 0.6


def test_time_budget_ends_with_decayed_lr(tmp_path):
    acts = (np.random.default_rng(0).normal(size=(2000, 16)) * 10).astype(np.float16)
    cfg = TrainConfig(name="t", d_in=16, d_sae=32, k=4, batch=128)
    res = train(cfg, acts, minutes=0.04, progress=False, run_dir=tmp_path)  # 2.4 s
    assert res["state"]["elapsed_s"] == pytest.approx(2.4, abs=1.5)
    assert res["state"]["last_lr"] < 0.2 * cfg.lr
    assert res["state"]["step"] > 10


def test_dense_and_sparse_auxk_paths_agree():
    import spectrascope.core.train.trainer as tr

    torch.manual_seed(0)
    m = TopKSAE(16, 64, 4)
    with torch.no_grad():
        m.b_enc.normal_(0, 0.1)
    x = torch.randn(32, 16)
    pre, _, _ = m.encode_sparse(x)
    dead = torch.tensor([1, 5, 9, 20, 33, 40, 63])
    grads = []
    for limit in (10**9, 0):  # dense, then sparse
        m.zero_grad()
        tr.DENSE_AUX_MAX, old = limit, tr.DENSE_AUX_MAX
        try:
            e = tr.aux_reconstruction(m, x, pre, dead, 3)
        finally:
            tr.DENSE_AUX_MAX = old
        (e.pow(2).sum()).backward()
        grads.append((e.detach(), m.W_enc.grad.clone(), m.b_enc.grad.clone(), m.W_dec.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_warm_start_continues_an_export_and_counts_its_history(tmp_path):
    from spectrascope.core.train.trainer import warm_start

    rng = np.random.default_rng(1)
    acts = (rng.normal(size=(3000, 16)) * 40).astype(np.float16)
    cfg = TrainConfig(name="t", d_in=16, d_sae=48, k=4, lr=3e-3, batch=128, total_tokens=128 * 40,
                      dead_window=1024, k_aux=8)
    first = train(cfg, acts, progress=False, run_dir=tmp_path / "first")
    folder = export(first, cfg, tmp_path / "first-export")
    init = warm_start(folder, cfg)
    # Back in training units: the export's raw-residual SAE equals the trained one (up to fp16 storage).
    assert init["scale"] == pytest.approx(first["scale"])
    for k in ("W_enc", "b_enc", "b_dec"):
        torch.testing.assert_close(init["state_dict"][k], getattr(first["model"], k).detach(), rtol=2e-3, atol=2e-3)
    assert init["steps"] == 40 and init["tokens_seen"] == 40 * 128

    second = train(cfg, acts, progress=False, run_dir=tmp_path / "second", init=init)
    assert second["state"]["init"]["tokens_seen"] == 40 * 128
    info = json.loads((export(second, cfg, tmp_path / "second-export") / "train_curve.json").read_text())
    assert info["warm_start"]["steps"] == 40
    # A second continuation adds up the history of both earlier runs.
    again = warm_start(tmp_path / "second-export", cfg)
    assert again["steps"] == 80 and again["tokens_seen"] == 80 * 128

    x = torch.from_numpy(acts[:500].astype(np.float32)) / first["scale"]
    with torch.no_grad():
        e1 = (x - first["model"](x)).pow(2).sum()
        e2 = (x - second["model"](x)).pow(2).sum()
    assert float(e2) < float(e1)  # continuing from the export keeps improving, not restarting

    with pytest.raises(ValueError, match="not the 96 x k4"):
        warm_start(folder, TrainConfig(name="t", d_in=16, d_sae=96, k=4))


def test_curve_power_law_fit_and_tokens_to_bar():
    from spectrascope.core.train.curve import power_law, tokens_to_reach

    t = np.array([1e6, 3e6, 1e7])
    fit = power_law(list(t), list(2.0 * t ** -0.25))
    assert fit["a"] == pytest.approx(2.0, rel=1e-9) and fit["b"] == pytest.approx(0.25, rel=1e-9)
    need = tokens_to_reach(fit, 0.01)
    assert 2.0 * need ** -0.25 == pytest.approx(0.01, rel=1e-9)
    assert tokens_to_reach(power_law([1e6, 2e6], [0.3, 0.4]), 0.15) is None  # rising: no answer
    assert power_law([1e6], [0.3]) is None


def test_load_checkpoint_reads_a_snapshot_file(tmp_path):
    import shutil

    from spectrascope.core.train.trainer import load_checkpoint

    acts = (np.random.default_rng(2).normal(size=(1000, 16)) * 10).astype(np.float16)
    cfg = TrainConfig(name="t", d_in=16, d_sae=32, k=4, batch=100, total_tokens=100 * 12)
    res = train(cfg, acts, progress=False, run_dir=tmp_path / "run")
    shutil.copy(tmp_path / "run" / "ckpt.pt", tmp_path / "snap.pt")
    back = load_checkpoint(cfg, checkpoint=tmp_path / "snap.pt")
    assert back["total_steps"] == res["total_steps"] == 12
    torch.testing.assert_close(back["model"].W_enc, res["model"].W_enc)


def test_resample_dead_restarts_latents_on_the_worst_inputs_and_clears_their_moments():
    from spectrascope.core.train.trainer import resample_dead

    torch.manual_seed(0)
    m = TopKSAE(16, 48, 4, seed=0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.randn(64, 16)
    _dense_loss(m, x).backward()
    opt.step()  # Adam moments exist for every parameter
    before = {k: getattr(m, k).detach().clone() for k in ("W_enc", "W_dec", "b_enc")}
    with torch.no_grad():
        err = x - m(x)
        err[:60] *= 1e-3  # four inputs carry almost all the error: the restarts draw from those
    dead = torch.tensor([3, 7, 11, 20])
    ids = resample_dead(m, opt, x, err, dead, torch.Generator().manual_seed(0))
    assert sorted(ids.tolist()) == dead.tolist()
    worst = err[60:] / err[60:].norm(dim=-1, keepdim=True)
    cos = m.W_dec.detach()[ids] @ worst.T  # each restarted row is one of the worst inputs' error directions
    torch.testing.assert_close(cos.max(-1).values, torch.ones(4))
    torch.testing.assert_close(m.W_dec.detach()[ids].norm(dim=-1), torch.ones(4))
    alive = torch.tensor([i for i in range(48) if i not in dead.tolist()])
    from spectrascope.core.train.trainer import RESAMPLE_ENCODER_SCALE

    enc_norm = RESAMPLE_ENCODER_SCALE * before["W_enc"][:, alive].norm(dim=0).mean()
    torch.testing.assert_close(m.W_enc.detach()[:, ids].norm(dim=0), enc_norm.expand(4))
    assert (m.b_enc.detach()[ids] == 0).all()
    for name in ("W_enc", "W_dec", "b_enc"):  # the others are untouched
        keep = (slice(None), alive) if name == "W_enc" else (alive,)
        torch.testing.assert_close(getattr(m, name).detach()[keep], before[name][keep])
    assert (opt.state[m.W_enc]["exp_avg"][:, ids] == 0).all() and (opt.state[m.W_dec]["exp_avg_sq"][ids] == 0).all()
    assert (opt.state[m.W_dec]["exp_avg_sq"][alive] != 0).any()


def test_resampling_revives_latents_that_auxk_cannot_reach(tmp_path):
    """Latents started with a very negative bias never fire and AuxK (ReLU'd) gives them no gradient;
    with resampling on, most of them fire again."""
    rng = np.random.default_rng(0)
    D = rng.normal(size=(200, 16))  # more directions than latents: a revived latent has work
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    idx = rng.integers(0, 200, size=(6000, 3))
    acts = ((D[idx] * rng.uniform(1, 3, size=(6000, 3, 1))).sum(1) * 50.0).astype(np.float16)
    import spectrascope.core.train.trainer as tr

    def dead_share(resample_every: int) -> float:
        cfg = TrainConfig(name="t", d_in=16, d_sae=64, k=4, lr=3e-3, batch=256, total_tokens=256 * 120,
                          dead_window=2048, k_aux=16, resample_every=resample_every)
        orig = tr.TopKSAE.__init__

        def crippled(self, *a, **k):  # a quarter of the latents start unreachable
            orig(self, *a, **k)
            with torch.no_grad():
                self.b_enc[:16] = -1e4

        tr.TopKSAE.__init__ = crippled
        try:
            res = train(cfg, acts, progress=False, run_dir=tmp_path / f"r{resample_every}")
        finally:
            tr.TopKSAE.__init__ = orig
        m = res["model"]
        with torch.no_grad():
            fired = torch.zeros(64, dtype=torch.bool)
            _, vals, ix = m.encode_sparse(torch.from_numpy(acts[:3000].astype(np.float32)) / res["scale"])
            fired[ix[vals > 0]] = True
        return float((~fired[:16]).float().mean())

    assert dead_share(0) == 1.0  # AuxK alone: all 16 stay dead
    assert dead_share(25) < 0.5  # measured 0.125 (4 restarts before the LR decay)
