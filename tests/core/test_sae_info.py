"""The SAE info view: shape always, quality from the SAE's metrics.json, and it says which."""

from __future__ import annotations

import json

from spectrascope.core.analysis.sae_info import sae_info
from spectrascope.core.engine.saes import SAESpec
from tests.conftest import make_tiny_sae


def test_an_sae_without_metrics_says_its_quality_was_not_measured(tiny_sae_session):
    info = sae_info(tiny_sae_session, "coarse")
    rows = dict(info.rows())
    assert info.width == 128 and info.hook == "blocks.2.hook_resid_post" and info.k == 8
    assert "not measured" in rows["quality"] and info.measured is None


def test_metrics_json_figures_are_shown_with_how_they_were_measured(tiny_sae_session, tmp_path):
    metrics = {"l0_mean": 64.0, "explained_variance": 0.93, "explained_variance_without_massive": 0.81,
               "massive_dims": [1, 2, 3], "massive_share_of_norm": 0.97, "heldout_tokens": 65024,
               "ce_increase": 0.21, "ce_increase_ci95": 0.02, "ce_clean": 3.4, "ce_seqs": 256,
               "dead_frac_heldout": 0.031, "train_tokens_unique": 6047232, "train_tokens_seen": 20000000,
               "ce_increase_by_dims": {"massive_only": 0.04, "massive_only_ci95": 0.01, "others_only": 0.15,
                                       "others_only_ci95": 0.015}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "train_curve.json").write_text(json.dumps({"train_mix": {"train": 6047232}}))
    s = tiny_sae_session
    s.attach_sae("probe", make_tiny_sae(64, 256, "blocks.2.hook_resid_post", "topk", k=4, seed=5),
                 SAESpec("local", path=str(tmp_path)))
    try:
        rows = dict(sae_info(s, "probe").rows())
    finally:
        s.detach_sae("probe")
    assert rows["explained variance"].startswith("0.930 (centered, 65,024 held-out tokens)")
    assert rows["EV w/o massive dims"].startswith("0.810") and "97%" in rows["EV w/o massive dims"]
    assert rows["ΔCE (spliced)"].startswith("+0.210 nats ± 0.020 (95% CI)")
    assert rows["dead"].startswith("3.1%") and "natural mix" in rows["training"]
    assert rows["ΔCE by dims"] == "+0.0400 ± 0.0100 spliced into the massive dims only, +0.1500 ± 0.0150 into the others only"


def test_sae_info_command_prints_each_loaded_sae(tiny_model_dir, tmp_path, capsys):
    from spectrascope.tui.cli import main

    folder = tmp_path / "lens-sae"
    make_tiny_sae(64, 48, "blocks.1.hook_resid_post").save_model(str(folder))
    assert main(["sae-info", "--model", str(tiny_model_dir), "--dtype", "float32", "--sae", f"coarse={folder}",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (coarse,) = out["saes"]
    assert coarse["role"] == "coarse" and coarse["width"] == 48 and coarse["measured"] is None
    assert main(["sae-info", "--model", str(tiny_model_dir), "--dtype", "float32", "--sae", f"coarse={folder}"]) == 0
    assert "not measured" in capsys.readouterr().out


def test_a_continuation_that_read_part_of_the_cache_says_so(tiny_sae_session, tmp_path):
    metrics = {"l0_mean": 64.0, "explained_variance": 0.95, "ce_increase": 0.19, "ce_clean": 3.4, "ce_seqs": 256, "heldout_tokens": 65024,
               "dead_frac_heldout": 0.0, "train_tokens_unique": 6047232, "train_tokens_seen": 39399424,
               "warm_start": {"tokens_seen": 23400448}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "train_curve.json").write_text(json.dumps({"train_mix": {"train": 2015744}, "train_tokens_unique": 2015744}))
    s = tiny_sae_session
    s.attach_sae("probe", make_tiny_sae(64, 256, "blocks.2.hook_resid_post", "topk", k=4, seed=5),
                 SAESpec("local", path=str(tmp_path)))
    try:
        training = dict(sae_info(s, "probe").rows())["training"]
    finally:
        s.detach_sae("probe")
    assert training.startswith("6,047,232 unique tokens (the last continuation read only the first 2,015,744), "
                               "39,399,424 seen")
