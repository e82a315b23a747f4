"""Per-step records of generation: each token's SAE codes from the forward that fed it, checked
against a separate full forward (HF hidden states) + sae-lens `SAE.encode` of the final sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrascope.core.engine.generation import Stepper, generate
from spectrascope.core.engine.plan import AddFeature
from spectrascope.core.stats.sampling import SamplingSettings
from spectrascope.core.engine.codes import hook_layer
from spectrascope.core.analysis.step_record import feature_trace, step_records

# float32 tiny models: the KV-cached decode step and a full forward differ by accumulation order only.
TOL = dict(rtol=1e-4, atol=1e-4)


def reference_codes(session, ids: list[int], role: str) -> torch.Tensor:
    """sae-lens SAE.encode of HF's own hidden state at the SAE's layer, one full forward. # (T, F)"""
    sae = session.sae(role)
    layer = hook_layer(sae.cfg.metadata.hook_name)
    with torch.inference_mode():
        hs = session.model.hf_model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        return sae.encode(hs[layer + 1][0].to(sae.W_enc.dtype)).float()  # hidden_states[0] is the embedding


def counting(session, monkeypatch) -> list[int]:
    calls = [0]
    forward = session.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(session, "forward", counted)
    return calls


def test_each_step_records_the_codes_a_full_forward_and_sae_encode_give(tiny_sae_session, monkeypatch):
    session = tiny_sae_session
    calls = counting(session, monkeypatch)
    stepper = Stepper.start(session, "The capital of France", SamplingSettings(temperature=1.0, seed=5))
    for how in ("sample", "greedy", "sample", "pick", "sample"):
        stepper.step(token_id=7 if how == "pick" else None,
                     settings=SamplingSettings(temperature=0.0) if how == "greedy" else None)
    assert calls[0] == 1 + 5  # the prefill and one forward per step: no second pass for the codes
    n = len(stepper.prompt_ids)
    for role in ("coarse", "fine"):
        ref = reference_codes(session, stepper.ids, role)
        got = torch.stack([s.codes[role].codes[0] for s in stepper.steps])
        torch.testing.assert_close(got, ref[n:], **TOL)
        torch.testing.assert_close(stepper.prompt_codes[role].codes, ref[:n], **TOL)
        assert stepper.spectra()[role].n_tokens == len(stepper.ids)
        assert (ref[n:] > 0).any()  # not comparing zeros
    # The record's surprise numbers against numpy on the distribution the token was drawn from.
    for step in stepper.steps:
        logits = step.dist.logits.numpy().astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        assert step.prob == pytest.approx(p[step.token_id], rel=1e-4)
        assert step.rank == 1 + int((logits > logits[step.token_id]).sum())
    # Going back drops the last record and keeps the others.
    before = [s.codes["fine"].codes.clone() for s in stepper.steps[:4]]
    stepper.back()
    assert len(stepper.steps) == 4
    for old, step in zip(before, stepper.steps):
        torch.testing.assert_close(step.codes["fine"].codes, old)


def test_generate_records_the_last_token_too_and_seeds_keep_records(tiny_sae_session):
    session = tiny_sae_session
    ids = session.tokenize("Once upon a time")[0]
    runs = generate(session, ids, SamplingSettings(temperature=1.5, seed=0), seeds=[0, 1], steps=5)
    for run in runs:
        assert all("coarse" in s.codes and "fine" in s.codes for s in run.steps)
        ref = reference_codes(session, run.ids, "coarse")
        got = torch.stack([s.codes["coarse"].codes[0] for s in run.steps])
        torch.testing.assert_close(got, ref[len(ids):], **TOL)
    # The last token's forward stopped at the SAE hook; the cache was cut back to before it.
    assert all(run._cache.get_seq_length() == len(run.ids) - 1 for run in runs)
    plain = generate(session, ids, SamplingSettings(temperature=1.5, seed=0), seeds=[0], steps=5, features=False)
    assert plain[0].generated_ids() == runs[0].generated_ids() and not plain[0].steps[0].codes


def test_a_steered_run_records_the_steered_residual(tiny_sae_session):
    session = tiny_sae_session
    ids = session.tokenize("Once upon a time")[0]
    sae = session.sae("coarse")
    # Random weights: steer the feature whose encoder reads its own decoder direction most.
    feature = int((sae.W_enc.T * sae.W_dec).sum(-1).argmax())
    settings = SamplingSettings(temperature=0.0)
    base = generate(session, ids, settings, seeds=[0], steps=4)[0]
    edit = AddFeature("coarse", feature, amount=40.0, from_position=len(ids) - 1)
    steered = generate(session, ids, settings, seeds=[0], steps=4, edits=[edit])[0]
    # Reference: the same edit in one full forward of the steered sequence, then sae-lens encode.
    hook = session.sae_hook("coarse")
    resid = session.forward(steered.ids, capture=[hook], edits=[edit], keep_logits=0).resid[hook][0]
    ref = session.sae("coarse").encode(resid[len(ids):]).float()
    got = torch.stack([s.codes["coarse"].codes[0] for s in steered.steps])
    torch.testing.assert_close(got, ref, **TOL)
    trace, before = feature_trace(steered.steps, "coarse", feature), feature_trace(base.steps, "coarse", feature)
    assert len(trace) == 4 and sum(trace) > sum(before)


def test_step_records_report_top_features_with_labels(tiny_sae_session):
    session = tiny_sae_session
    stepper = Stepper.start(session, "The capital", SamplingSettings(temperature=0.0))
    for _ in range(3):
        stepper.step()
    records = step_records(stepper.steps, session.piece, session.labels, top=2)
    assert [r.token_id for r in records] == list(stepper.generated_ids())
    for rec, step in zip(records, stepper.steps):
        assert rec.rank == 1 and rec.how == "greedy"  # greedy picks the top token
        for role in ("coarse", "fine"):
            row = step.codes[role].codes[0]
            hits = rec.features[role]
            assert 1 <= len(hits) <= 2 and hits[0].activation == pytest.approx(float(row.max()))
            assert hits[0].label and hits[0].label != "…"
        assert rec.to_dict()["features"]["coarse"][0]["feature"] == rec.features["coarse"][0].feature


def test_generation_report_is_the_records_of_one_seeded_generation(tiny_sae_session):
    """`logits --features`: the same records the Stepper gives, stopping at --steps."""
    from spectrascope.core.views.logits import generation_records

    def generation_report(*args, **kwargs):  # as `logits --features --json` prints it
        return [r.to_dict() for r in generation_records(*args, **kwargs)]

    session = tiny_sae_session
    settings = SamplingSettings(temperature=0.8, seed=3)
    report = generation_report(session, "The capital", settings, steps=4, top=3)
    stepper = Stepper.start(session, "The capital", settings)
    for _ in range(len(report)):
        stepper.step()
    want = [r.to_dict() for r in step_records(stepper.steps, session.piece, session.labels, top=3)]
    assert report == want and 1 <= len(report) <= 4
    for rec, step in zip(report, stepper.steps):
        assert rec["prob"] == pytest.approx(float(torch.softmax(step.dist.logits.float(), -1)[step.token_id]), rel=1e-5)


def test_logits_features_command(tiny_model_dir, tmp_path, capsys):
    import json

    from spectrascope.tui.cli import main
    from tests.conftest import make_tiny_sae

    folder = tmp_path / "sae"
    make_tiny_sae(64, 48, "blocks.1.hook_resid_post").save_model(str(folder))
    base = ["--model", str(tiny_model_dir), "--dtype", "float32", "--sae", f"coarse={folder}"]
    assert main(["logits", "Where is Paris", "--steps", "3", "--temperature", "0", "--features", "--json", *base]) == 0
    out = json.loads(capsys.readouterr().out)
    gen = out["generation"]
    assert [r["step"] for r in gen] == list(range(len(gen))) and all(r["how"] == "greedy" and r["rank"] == 1 for r in gen)
    assert all(len(r["features"]["coarse"]) >= 1 for r in gen)
    assert main(["logits", "Where is Paris", "--steps", "3", "--features", *base]) == 0
    assert "generated (seed 0)" in capsys.readouterr().out
