"""The anchoring view against an independent forward + sae-lens encode of both prompts."""

from __future__ import annotations

import pytest
import torch

from spectrascope.core.analysis.anchoring import anchor_report, common_suffix
from spectrascope.core.engine.session import PromptError


def test_common_suffix():
    assert common_suffix([1, 2, 3, 4], [9, 3, 4]) == 2 and common_suffix([1], [2]) == 0


def test_feature_shifts_and_residual_move_match_a_reference(tiny_sae_session):
    s = tiny_sae_session
    user, system = "What should I eat in Paris today", "You are a pirate who loves the sea."
    rep = anchor_report(s, user, system, top=5)
    ids_a = s.tokenize(user)[0]
    ids_b = s.tokenize(f"{system}\n\n{user}")[0]
    n = common_suffix(ids_a, ids_b)
    assert len(rep.shared_tokens) == n and 0 < n < len(ids_a)
    hook = s.sae_hook("coarse")
    xa = s.forward(ids_a, capture=[hook], keep_logits=0).resid[hook][0, -n:].float()
    xb = s.forward(ids_b, capture=[hook], keep_logits=0).resid[hook][0, -n:].float()
    assert rep.resid_shift_last == pytest.approx(float((xb[-1] - xa[-1]).norm()), rel=1e-4)
    assert rep.cosine_last == pytest.approx(float(torch.cosine_similarity(xa[-1], xb[-1], dim=0)), rel=1e-4)
    for role in ("coarse", "fine"):
        sae = s.sae(role)
        with torch.no_grad():
            before, after = sae.encode(xa).sum(0), sae.encode(xb).sum(0)
        want = torch.topk((after - before).abs(), 5).indices.tolist()
        rows = rep.features[role]
        assert [r.feature for r in rows] == want
        for r in rows:
            assert r.before == pytest.approx(float(before[r.feature]), rel=1e-4, abs=1e-5)
            assert r.after == pytest.approx(float(after[r.feature]), rel=1e-4, abs=1e-5)
            assert r.kind == ("on" if r.before == 0 else "off" if r.after == 0 else "up" if r.delta > 0 else "down")
    with pytest.raises(PromptError, match="empty"):
        anchor_report(s, user, "  ")


def test_anchor_command(tiny_model_dir, tmp_path, capsys):
    import json

    from spectrascope.tui.cli import main
    from tests.conftest import make_tiny_sae

    folder = tmp_path / "sae"
    make_tiny_sae(64, 48, "blocks.1.hook_resid_post").save_model(str(folder))
    base = ["--model", str(tiny_model_dir), "--dtype", "float32", "--sae", f"coarse={folder}"]
    assert main(["anchor", "Where is Paris", "--system", "Be brief.", "--system", "You are a pirate.", "--json",
                 *base]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["system"] for r in out] == ["Be brief.", "You are a pirate."] and "coarse" in out[0]["features"]
    assert main(["anchor", "Where is Paris", "--system", "Be brief.", *base]) == 0
    assert "residual moved" in capsys.readouterr().out
    assert main(["anchor", "Where is Paris", "--system", "Be brief.", "--system", "You are a pirate.", "--navigator",
                 "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    nav = out["navigator"]
    assert [r["system"] for r in out["reports"]] == ["Be brief.", "You are a pirate."]
    assert [p["system"] for p in nav["points"]] == ["", "Be brief.", "You are a pirate."] and len(nav["reference"]) >= 24
    assert main(["anchor", "Where is Paris", "--system", "Be brief.", "--navigator", *base]) == 0
    assert "(none)" in capsys.readouterr().out  # the prompt alone, on the navigator table
