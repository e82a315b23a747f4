"""Issue 34 item 9: exact binomial intervals for firing rates (against scipy), and each SAE's training budget
from its card side by side wherever coarse and fine are compared (contrast report, compare, sae-info)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from spectrascope.core.analysis import pairing
from spectrascope.core.analysis.pairing import PairingSettings, pair
from spectrascope.core.analysis.sae_info import UNKNOWN_BUDGET, budgets_line, session_budgets, training_budget
from spectrascope.core.stats.binomial import exact_ci, rate_ci
from tests.conftest import make_tiny_sae
from tests.core.synthetic_sae import world


def scipy_ci(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return ci.low, ci.high


def test_exact_intervals_are_scipys_clopper_pearson():
    ks, ns = zip(*[(k, n) for n in (1, 2, 5, 16, 30, 200) for k in sorted({0, 1, n // 2, n - 1, n})])
    low, high = exact_ci(ks, ns)
    for k, n, lo, hi in zip(ks, ns, low, high):
        want = scipy_ci(k, n)
        assert (lo, hi) == pytest.approx(want, abs=1e-10), (k, n)
    # 0 of 16 runs is not [0, 0]: the review's 21% upper bound, in closed form 1 - 0.025^(1/16).
    lo, hi = exact_ci(0, 16)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 16)) and round(float(hi), 2) == 0.21
    lo, hi = exact_ci(16, 16)
    assert hi == 1 and lo == pytest.approx(0.025 ** (1 / 16))
    assert all(np.isnan(exact_ci(0, 0)))


def test_every_rate_in_the_pairing_report_carries_its_exact_interval():
    r, wc, wf, _ = world([4, 2, 0, 1, 3, 0], n_concept=30, n_neutral=20, extra=True, concept_topic=0, seed=1)
    res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=3))
    d = pairing.to_dict(res)
    rows = d["candidates"] + d["top_fine"] + d["anchors"]
    assert rows and "Clopper-Pearson" in d["rate_ci_definition"]
    degenerate = 0
    for row in rows:
        role = "fine" if row in d["top_fine"] else "coarse"
        stats = r.stats[role]
        for key, n, rate in (("concept", 30, stats.rate_concept), ("neutral", 20, stats.rate_neutral)):
            k = int(round(rate[row["feature"]] * n))
            assert row[f"rate_{key}_ci95"] == pytest.approx(scipy_ci(k, n), abs=1e-4)
            degenerate += k in (0, n)
    assert degenerate  # some rate is 0 or 1, and its interval is still wide
    zero = rate_ci(0.0, 30)
    note = pairing.rate_interval_note(30, 20)
    assert f"0% is [0%, {100 * float(zero[1]):.1f}%]" in note and "[0%, 16.8%]" in note  # 0 of 20: 16.8%
    assert pairing.rate_interval_note(30, 20) in pairing.to_markdown(res)


def test_training_budgets_come_from_the_cards():
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.engine.saes import parse_sae_spec

    class Shipped:  # a session with the embedded SAEs' specs (their budgets need no weights)
        sae_specs = {"coarse": parse_sae_spec("embedded-coarse"), "fine": parse_sae_spec("embedded-fine")}

    found = session_budgets(Shipped())
    for role in ("coarse", "fine"):
        card = json.loads((SAES_DIR / f"gemma-3-270m-res9-{role}" / "metrics.json").read_text())
        assert found[role]["tokens_seen"] == card["train_tokens_seen"]
        assert found[role]["tokens_unique"] == card["train_tokens_unique"]
        assert f"{card['train_tokens_seen']:,} tokens seen" in budgets_line(found)
    seen = [found[r]["tokens_seen"] for r in ("coarse", "fine")]
    if seen[0] != seen[1]:
        assert f"they differ {max(seen) / min(seen):.1f}x" in budgets_line(found)
    assert training_budget(None) == {"tokens_seen": None, "tokens_unique": None, "source": UNKNOWN_BUDGET}


def test_the_contrast_report_shows_both_budgets(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "carded"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"train_tokens_seen": 1234567, "train_tokens_unique": 7654}))
    from spectrascope.core.engine.saes import SAESpec

    s = tiny_sae_session
    real = s.sae_specs.get("coarse")
    s.sae_specs["coarse"] = SAESpec("local", path=str(folder))  # the coarse SAE with a card, the fine without
    try:
        res = pairing.analyse(s, ["Paris is in France.", "France has wine."], ["The cat sleeps.", "A dog runs."],
                              labels=False)
    finally:
        if real is None:
            s.sae_specs.pop("coarse")
        else:
            s.sae_specs["coarse"] = real
    d = pairing.to_dict(res)
    assert d["training_budgets"]["coarse"]["tokens_seen"] == 1234567
    assert d["training_budgets"]["fine"]["tokens_seen"] is None
    md = pairing.to_markdown(res)
    assert "Training budgets (SAE cards): coarse 1,234,567 tokens seen (7,654 unique) · fine unknown" in md
    moved = pairing.reclassify(res, PairingSettings(corr_threshold=0.6))
    assert pairing.to_dict(moved)["training_budgets"] == d["training_budgets"]  # kept on new thresholds


def test_compare_and_sae_info_put_the_budgets_side_by_side(tiny_session, tiny_model_dir, tmp_path, capsys):
    from spectrascope.core.views.compare import CompareReport, CompareSpec, build
    from spectrascope.tui.cli import main

    hook = "blocks.2.hook_resid_post"
    make_tiny_sae(64, 128, hook, "topk", k=8, seed=11).save_model(tmp_path / "a")
    make_tiny_sae(64, 256, hook, "topk", k=8, seed=12).save_model(tmp_path / "b")
    metrics = {"l0_mean": 8.0, "explained_variance": 0.9, "heldout_tokens": 1000, "ce_increase": 0.2, "ce_clean": 3.4,
               "ce_seqs": 16, "dead_frac_heldout": 0.0, "train_tokens_seen": 39399424}  # a card's figures
    (tmp_path / "a" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "text.txt").write_text("\n".join(["The cat sleeps while the dog eats on the mat."] * 12))
    report = build(tiny_session, CompareSpec(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "text.txt"),
                                             sequences=3, tokens=12))
    assert (report.a.train_tokens_seen, report.b.train_tokens_seen) == (39399424, None)
    assert "| train_tokens_seen (card) | 39,399,424 tokens seen | unknown |" in report.to_markdown()
    assert CompareReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report

    assert main(["sae-info", "--model", str(tiny_model_dir), "--dtype", "float32", "--sae",
                 f"coarse={tmp_path / 'a'}", "--sae", f"fine={tmp_path / 'b'}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["training_budgets"]["coarse"]["tokens_seen"] == 39399424
    assert out["training_budgets"]["fine"] == training_budget(None)
    assert main(["sae-info", "--model", str(tiny_model_dir), "--dtype", "float32", "--sae",
                 f"coarse={tmp_path / 'a'}", "--sae", f"fine={tmp_path / 'b'}"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "training budgets (SAE cards): coarse 39,399,424 tokens seen · fine unknown" in text
