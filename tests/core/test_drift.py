"""The drift experiment against HF logits and eager attention weights on a tiny Gemma 3."""

from __future__ import annotations

import pytest
import torch

from spectrascope.core.analysis.drift import _compose, drift_experiment, load_turns, turn_counts


def test_turns_and_counts(tmp_path):
    assert turn_counts(10) == [0, 1, 2, 4, 8]
    turns = load_turns()
    assert len(turns) >= 16 and all(t.startswith("User:") and "\nAssistant:" in t for t in turns)
    (tmp_path / "f.txt").write_text("User: a\nAssistant: b\n\nUser: c\nAssistant: d\n")
    assert load_turns(tmp_path / "f.txt") == ["User: a\nAssistant: b", "User: c\nAssistant: d"]


def test_kl_attention_share_and_target_match_hf(tiny_gemma2_session):
    """Against a separate HF model (eager attention, no TransformerLens bridge) from the same folder."""
    from transformers import AutoModelForCausalLM

    s = tiny_gemma2_session
    system, question = "Be a pirate.", "Where is it"
    filler = ["User: hi\nAssistant: yo", "User: ok\nAssistant: ok", "User: so\nAssistant: so"]
    rep = drift_experiment(s, system, question, filler, max_turns=2)
    assert [p.turns for p in rep.points] == [0, 1, 2] == [p.turns for p in rep.restated]
    hf = AutoModelForCausalLM.from_pretrained(s.model.folder, attn_implementation="eager", dtype=torch.float32)
    for point, restate in ((rep.points[0], False), (rep.points[2], False), (rep.restated[1], True)):
        ids_w = torch.tensor([s.tokenize(_compose(system, filler[:point.turns], question, restate))[0]])
        ids_o = torch.tensor([s.tokenize(_compose("", filler[:point.turns], question, False))[0]])
        with torch.no_grad():
            out_w = hf(ids_w, output_attentions=True)
            lo = torch.log_softmax(hf(ids_o).logits[0, -1].float(), -1)
        lw = torch.log_softmax(out_w.logits[0, -1].float(), -1)
        assert point.kl == pytest.approx(float((lw.exp() * (lw - lo)).sum()), rel=1e-3, abs=1e-6)
        from scipy.stats import entropy  # KL(p || q) with two arguments, an independent implementation

        assert point.kl == pytest.approx(float(entropy(lw.exp().double().numpy(), lo.exp().double().numpy())),
                                         rel=1e-3, abs=1e-6)
        n_sys = len(s.tokenize(system)[0])
        want = [float(a[0, :, -1, 1:n_sys].sum(-1).mean()) for a in out_w.attentions]
        assert list(point.attention_by_layer) == pytest.approx(want, rel=1e-3, abs=1e-5)
        assert point.target_rank == int((lw > lw[rep.target[0]]).sum()) + 1
    assert max(rep.points[0].attention_by_layer) > 0  # the check above compared real attention, not zeros
    assert rep.halving_turns is None or rep.halving_turns in (1, 2)


def test_tracked_features_come_from_the_anchoring_view(tiny_sae_session):
    rep = drift_experiment(tiny_sae_session, "You are a pirate.", "Where is the treasure",
                           ["User: hi\nAssistant: hello"], max_turns=1)
    assert rep.features and all(len(p.feature_acts) == len(rep.features) for p in rep.points + rep.restated)


def test_cached_drift_reads_back_the_same_report(tiny_gemma2_session, tmp_path, monkeypatch):
    from spectrascope.core.analysis.drift import DriftReport, cached_drift

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    s, filler = tiny_gemma2_session, ["User: hi\nAssistant: yo", "User: ok\nAssistant: ok"]
    first, hit = cached_drift(s, "Be a pirate.", "Where is it", filler, max_turns=1)
    assert not hit and DriftReport.from_dict(first.to_dict()) == first
    calls = []
    monkeypatch.setattr(s, "forward", lambda *a, **k: calls.append(1))  # a cache hit runs no model
    again, hit = cached_drift(s, "Be a pirate.", "Where is it", filler, max_turns=1)
    assert hit and again == first and not calls
    monkeypatch.undo()
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    other, hit = cached_drift(s, "Be a pirate.", "Where is it", ["User: a longer turn\nAssistant: yes"],
                              max_turns=1)  # other filler: a miss
    assert not hit and other.points[1].tokens != first.points[1].tokens


def test_drift_command(tiny_model_dir, capsys):
    import json

    from spectrascope.tui.cli import main

    base = ["--model", str(tiny_model_dir), "--dtype", "float32", "--max-turns", "2"]
    assert main(["drift", "--system", "Be a pirate.", "--question", "Where is it", "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["turns"] for p in out["points"]] == [0, 1, 2] and len(out["restated"]) == 3
    assert main(["drift", "--system", "Be a pirate.", "--question", "Where is it", "--target", "x", *base]) == 0
    assert "KL halves at" in capsys.readouterr().out
