"""The real embedded model: Gemma 3 270M converted from its PyPI GGUF (offline)."""

import pytest
import torch

from spectrascope.core.session import Request, Session, resid_hook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session():
    return Session.load("gemma-3-270m", device="cpu", dtype="float32")


def test_eiffel_tower_is_in_paris(session):
    result = session.run(Request("The Eiffel Tower is located in the city of"))
    assert session.piece(int(result.logits.argmax())) == " Paris"


def test_residual_at_layer_9_equals_hf_hidden_states(session):
    result = session.run(Request("The capital of France is"))
    assert session.default_layer == 9
    with torch.inference_mode():
        out = session.model.hf_model(torch.tensor([result.ids]), output_hidden_states=True)
    expected = out.hidden_states[10][0].float()  # hidden_states[0] is the embedding output
    torch.testing.assert_close(result.resid[resid_hook(9)], expected, rtol=0, atol=0)
    torch.testing.assert_close(result.logits, out.logits[0, -1].float(), rtol=1e-4, atol=1e-4)


def test_probe_cli_json(session, capsys):
    from spectrascope.tui.cli import main

    assert main(["probe", "The capital of France is", "--top", "5", "--json", "--dtype", "float32"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert [t["text"] for t in report["tokens"]] == ["<bos>", "The", " capital", " of", " France", " is"]
    assert len(report["top"]) == 5 and abs(sum(r["prob"] for r in report["top"]) - 1) < 1
    assert " Paris" in [r["token"] for r in report["top"]]
