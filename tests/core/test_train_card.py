"""CARD.md is written from the stored records alone: the shipped SAEs' records render, with the CE
increase split by dimensions and the held-out curve with where its fit meets the bar."""

from __future__ import annotations

import json
import shutil

import pytest

from spectrascope.core.assets import SAES_DIR
from spectrascope.core.train.curve import power_law, tokens_to_reach
from spectrascope.core.train.evaluate import write_card


@pytest.mark.parametrize("name", ["gemma-3-270m-res9-coarse", "gemma-3-270m-res9-fine"])
def test_shipped_records_render_a_card(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(SAES_DIR / name, folder, ignore=shutil.ignore_patterns("*.safetensors", "labels.json.gz"))
    m = json.loads((folder / "metrics.json").read_text())
    m["ce_increase_by_dims"] = {"massive_only": 0.05, "massive_only_ci95": 0.01,
                                "others_only": 0.2, "others_only_ci95": 0.02, "definition": "..."}
    card = write_card(folder, m, json.loads((folder / "train_curve.json").read_text()), {}, m["cache"]).read_text()
    assert "into the 3 massive dims only" in card and "+0.05 ± 0.01" in card and "into the other 637 dims only, +0.2" in card
    curve = json.loads((folder / "heldout_curve.json").read_text())
    assert "## Held-out curve" in card
    for point in curve["points"]:
        assert f"| {point['tokens_seen']:,} |" in card
    # The fit and the tokens it says the bar needs are recomputed from the points, not copied.
    fit = power_law([p["tokens_seen"] for p in curve["points"]], [p["ce_increase"] for p in curve["points"]])
    need = tokens_to_reach(fit, curve["bar"])
    assert fit["b"] == pytest.approx(curve["ce_power_law"]["b"]) and need > 1e6
    met = [p for p in curve["points"] if p["ce_increase"] <= curve["bar"]]
    if met:  # a point at or under the bar: the card says where, not an extrapolation
        assert f"is met from {min(p['tokens_seen'] for p in met):,} tokens seen" in card
    else:
        assert f"about {need / 1e6:.0f}M tokens seen" in card
        last = max(curve["points"], key=lambda p: p["tokens_seen"])
        within = last["ce_increase"] - last["ce_increase_ci95"] <= curve["bar"]
        assert ("includes the bar: not met as a point estimate" in card) == within
    assert f"trained on {m['train_tokens_unique']:,} unique tokens" in card


def test_power_law_matches_numpy_and_needs_two_token_counts():
    import numpy as np

    t, v = [1e6, 2e6, 4e6], [0.4, 0.3, 0.22]
    fit = power_law(t, v)
    slope, icpt = np.polyfit(np.log(t), np.log(v), 1)
    assert fit["b"] == pytest.approx(-slope) and fit["a"] == pytest.approx(np.exp(icpt))
    assert tokens_to_reach(fit, 0.15) == pytest.approx((fit["a"] / 0.15) ** (1 / fit["b"]))
    # Two arms of a control at one token count: no slope to fit (it used to print a fit through noise).
    assert power_law([9e6, 9e6], [0.251, 0.248]) is None


def test_record_shipped_adds_the_shipped_metrics_as_a_point_and_refits(tmp_path, monkeypatch):
    import spectrascope.core.assets as assets
    from spectrascope.core.train.curve import BARS, record_shipped

    name = "gemma-3-270m-res9-coarse"
    shutil.copytree(SAES_DIR / name, tmp_path / name, ignore=shutil.ignore_patterns("*.safetensors", "labels.json.gz"))
    monkeypatch.setattr(assets, "SAES_DIR", tmp_path)
    m = json.loads((tmp_path / name / "metrics.json").read_text())
    m.update(train_tokens_seen=40_000_000, ce_increase=0.19, ce_increase_ci95=0.02)
    (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    # Keep only the recorded points above the bar, so the new export is the first to meet it.
    stored = json.loads((tmp_path / name / "heldout_curve.json").read_text())
    stored["points"] = [p for p in stored["points"] if p["ce_increase"] > BARS["coarse"]]
    (tmp_path / name / "heldout_curve.json").write_text(json.dumps(stored))
    before = stored["points"]
    curve = record_shipped("coarse", "a new export")
    curve = record_shipped("coarse", "a new export")  # the same label again replaces, not duplicates
    assert len(curve["points"]) == len(before) + 1
    last = curve["points"][-1]
    assert (last["point"], last["tokens_seen"], last["ce_increase"]) == ("a new export", 40_000_000, 0.19)
    fit = power_law([p["tokens_seen"] for p in curve["points"]], [p["ce_increase"] for p in curve["points"]])
    assert curve["ce_power_law"] == pytest.approx(fit) and curve["bar"] == BARS["coarse"]
    on_disk = json.loads((tmp_path / name / "heldout_curve.json").read_text())
    assert on_disk["points"] == curve["points"]
    card = write_card(tmp_path / name, m, json.loads((tmp_path / name / "train_curve.json").read_text()), {}, m["cache"]).read_text()
    assert "is met from 40,000,000 tokens seen on (0.19 ± 0.02; the 95% CI still reaches 0.210, above it)" in card


def test_the_pass_count_says_when_a_continuation_read_only_the_start_of_the_cache():
    from spectrascope.core.train.evaluate import _continued_on

    m = {"train_tokens_unique": 6_047_232}
    assert _continued_on(m, {"train_tokens_unique": 6_047_232}) == ""  # a first run
    assert _continued_on(m, {"warm_start": {"tokens_seen": 23_400_448}, "train_tokens_unique": 6_047_232}) == ""  # read it all
    assert "only the first 2,015,744 of them" in _continued_on(m, {"warm_start": {"tokens_seen": 23_400_448}, "train_tokens_unique": 2_015_744})
