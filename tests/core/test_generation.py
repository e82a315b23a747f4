import pytest
import torch

from spectrascope.core.engine.generation import Stepper, seeded_runs, system_prompt_ab, with_system_prompt
from spectrascope.core.stats.sampling import SamplingSettings
from spectrascope.core.engine.session import PromptError

GREEDY = SamplingSettings(temperature=0.0)


def full_forward_logits(session, ids):
    with torch.inference_mode():
        return session.model.hf_model(torch.tensor([ids])).logits[0, -1].float()


def test_greedy_steps_match_transformers_generate(tiny_session):
    stepper = Stepper.start(tiny_session, "The capital of France", GREEDY)
    for _ in range(6):
        stepper.step()
    ids = torch.tensor([stepper.prompt_ids])
    with torch.inference_mode():
        ref = tiny_session.model.hf_model.generate(
            ids, max_new_tokens=6, do_sample=False, min_new_tokens=6, pad_token_id=0
        )
    assert stepper.ids == ref[0].tolist()


def test_cached_step_logits_equal_a_full_forward(tiny_session):
    stepper = Stepper.start(tiny_session, "The quick brown fox", SamplingSettings(temperature=0.8, seed=3))
    for _ in range(4):
        stepper.step()
    torch.testing.assert_close(stepper.distribution().logits,
                               full_forward_logits(tiny_session, stepper.ids), rtol=1e-4, atol=1e-4)


def test_back_then_step_reproduces_the_same_token(tiny_session):
    settings = SamplingSettings(temperature=1.5, top_k=50, seed=11)
    stepper = Stepper.start(tiny_session, "Language models", settings)
    first = [stepper.step().token_id for _ in range(3)]
    stepper.back()
    assert stepper.ids[-2:] == first[:2]
    assert stepper.step().token_id == first[2]
    # and the logits after going back came from memory but match a fresh forward
    stepper.back()
    torch.testing.assert_close(stepper.distribution().logits, full_forward_logits(tiny_session, stepper.ids),
                               rtol=1e-4, atol=1e-4)


def test_picking_a_token_and_rejecting_bad_ids(tiny_session):
    stepper = Stepper.start(tiny_session, "Paris", GREEDY)
    assert stepper.step(token_id=5).token_id == 5
    with pytest.raises(PromptError, match="outside the vocabulary"):
        stepper.step(token_id=10**9)


def test_seeded_runs_are_reproducible_and_report_divergence(tiny_session):
    settings = SamplingSettings(temperature=2.0, seed=0)
    runs = seeded_runs(tiny_session, "The cat", settings, seeds=[0, 1, 0], steps=8)
    again = seeded_runs(tiny_session, "The cat", settings, seeds=[0, 1, 0], steps=8)
    assert [r.token_ids for r in runs] == [r.token_ids for r in again]
    assert runs[0].token_ids == runs[2].token_ids and runs[2].diverges_at is None
    assert runs[1].token_ids != runs[0].token_ids and runs[1].diverges_at is not None
    d = runs[1].diverges_at
    assert runs[1].token_ids[:d] == runs[0].token_ids[:d]


def test_system_prompt_ab_on_a_base_model(tiny_session):
    assert with_system_prompt(tiny_session, "Be brief.", "Paris") == "Be brief.\n\nParis"
    ab = system_prompt_ab(tiny_session, "The capital", "You are a geography teacher.", SamplingSettings())
    assert ab.comparison.kl_a_b > 0 and len(ab.comparison.rows) >= 20
    with pytest.raises(PromptError, match="system prompt is empty"):
        system_prompt_ab(tiny_session, "x", "", SamplingSettings())


def test_logits_cli_report_on_a_tiny_model(tiny_model_dir, capsys):
    import json

    from spectrascope.tui.cli import main

    args = ["logits", "The capital", "--temperature", "0.7", "--top-k", "5", "--top-p", "0.9",
            "--system", "Be brief.", "--runs", "3", "--steps", "4", "--model", str(tiny_model_dir),
            "--dtype", "float32"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["survivors"] <= 5 and len(report["top"]) == 20
    assert sum(r["final_p"] for r in report["top"]) == pytest.approx(1.0, abs=1e-5)
    assert len(report["runs"]) == 3 and report["system_ab"]["kl_without_vs_with"] >= 0
    assert main(args) == 0
    assert "seeded runs" in capsys.readouterr().out
    assert main(["logits", "x", "--top-p", "1.5", "--model", str(tiny_model_dir)]) == 2
    assert "top_p" in capsys.readouterr().err
