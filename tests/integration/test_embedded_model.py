"""The real embedded model: Gemma 3 270M converted from its PyPI GGUF (offline)."""

import pytest
import torch

from spectrascope.core.engine.session import Request, Session, resid_hook

pytestmark = pytest.mark.integration


def spectrum_report(session, prompt, **spec):
    """The Spectrum view's report of `prompt` as `spectrascope spectrum --json` prints it (less the model name)."""
    from spectrascope.core.views.spectrum import SpectrumSpec, build

    return build(session, SpectrumSpec(prompt, **spec)).to_dict()


@pytest.fixture(scope="module")
def session():
    return Session.load("gemma-3-270m", device="cpu", dtype="float32")


def test_eiffel_tower_is_in_paris(session):
    result = session.run(Request("The Eiffel Tower is located in the city of"))
    assert session.piece(int(result.logits.argmax())) == " Paris"


def test_residual_at_layer_9_equals_hf_hidden_states(session):
    session.forget_prompt()  # a full forward: another test's prompt may share this prefix
    result = session.run(Request("The capital of France is"))
    assert session.default_layer == 9 and result.reused == 0
    with torch.inference_mode():
        out = session.model.hf_model(torch.tensor([result.ids]), output_hidden_states=True)
    expected = out.hidden_states[10][0].float()  # hidden_states[0] is the embedding output
    torch.testing.assert_close(result.resid[resid_hook(9)], expected, rtol=0, atol=0)
    torch.testing.assert_close(result.logits, out.logits[0, -1].float(), rtol=1e-4, atol=1e-4)

    # Typing on: the shared prefix comes from the KV cache, so only the new tokens run. Same maths,
    # other matmul shapes: equal to fp32 rounding over 9 layers (CI once measured 1.5e-3 abs, 2.8e-4 rel).
    longer = session.run(Request("The capital of France is Paris"))
    assert longer.reused == len(result.ids)
    with torch.inference_mode():
        out = session.model.hf_model(torch.tensor([longer.ids]), output_hidden_states=True)
    torch.testing.assert_close(longer.resid[resid_hook(9)], out.hidden_states[10][0].float(), rtol=1e-3, atol=5e-3)


def test_probe_cli_json(session, capsys):
    from spectrascope.tui.cli import main

    assert main(["probe", "The capital of France is", "--top", "5", "--json", "--dtype", "float32"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert [t["text"] for t in report["tokens"]] == ["<bos>", "The", " capital", " of", " France", " is"]
    assert len(report["top"]) == 5 and abs(sum(r["prob"] for r in report["top"]) - 1) < 1
    assert " Paris" in [r["token"] for r in report["top"]]


PROMPTS = ["The capital of France is Paris", "def fibonacci(n): return n", "She played the violin in the orchestra"]


def test_all_tokens_spectrum_is_about_the_prompt_not_bos(session):
    """Issue 12: `spectrum --all-tokens` once printed the same BOS-dominated table for any prompt."""
    tops = []
    for prompt in PROMPTS:
        report = spectrum_report(session, prompt, position=None, top=5)
        assert report["all_tokens_from"] == 1 and report["tokens"][0]["text"] == "<bos>"
        result = session.run(Request(prompt))
        for role, sae in report["saes"].items():
            codes = result.spectra[role].codes  # (T, F)
            for row in sae["top"]:
                # The reported activation is the max over the prompt's own tokens, never BOS's.
                assert row["activation"] == pytest.approx(float(codes[1:, row["feature"]].max()), rel=1e-5)
        tops.append(tuple(row["feature"] for row in report["saes"]["coarse"]["top"][:3]))
    assert len(set(tops)) == 3


def test_incremental_typing_equals_a_full_forward_on_the_real_model(session):
    session.run(Request("The Eiffel Tower is located in the"))
    typed = session.run(Request("The Eiffel Tower is located in the city of"))
    session.forget_prompt()
    full = session.run(Request("The Eiffel Tower is located in the city of"))
    assert typed.reused > 0 and full.reused == 0
    torch.testing.assert_close(typed.logits, full.logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(typed.resid[resid_hook(9)], full.resid[resid_hook(9)], rtol=1e-3, atol=1e-2)
    for role in typed.spectra:
        torch.testing.assert_close(typed.spectra[role].codes, full.spectra[role].codes, rtol=1e-3, atol=1e-2)


def test_the_logit_lens_finds_paris_settling_before_the_output(session):
    """Issue 16: " Paris" reaches top-1 at some layer and stays there; the note reports where."""
    from spectrascope.core.analysis.lens import logit_lens

    rep = logit_lens(session, "The Eiffel Tower is located in the city of")
    assert rep.target[1] == " Paris" and rep.rows[-1].target_rank == 1
    layers = [r.layer for r in rep.rows]
    first = layers.index(rep.commitment)
    assert all(r.target_rank == 1 for r in rep.rows[first:])
    assert first < len(layers) - 1, "settles only at the very last block"
    print(f"commitment layer {rep.commitment}; ranks by layer {[r.target_rank for r in rep.rows]}")
