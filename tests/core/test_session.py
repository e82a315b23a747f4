import threading

import pytest
import torch

from spectrascope.core.engine.models import load_model
from spectrascope.core.engine.session import Cancelled, PromptError, Request, Session, resid_hook


def test_tiny_models_load_through_the_bridge(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    assert model.n_layers == 4 and model.d_model == 64
    assert model.default_layer == 2  # no preset: the middle layer
    assert type(model.bridge).__name__ == "TransformerBridge"


def test_gemma2_softcap_is_exposed(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    family = model.hf_model.config.model_type
    assert model.final_logit_softcap == (30.0 if family == "gemma2" else None)


def test_run_matches_hf_hidden_states_and_last_logits(tiny_model_dir):
    session = Session.load(str(tiny_model_dir), device="cpu", dtype="float32")
    # Not the last layer: HF's last hidden state has the final norm applied.
    result = session.run(Request("The capital of France is", layers=(1, 2)))
    ids = torch.tensor([result.ids])
    with torch.inference_mode():
        out = session.model.hf_model(ids, output_hidden_states=True)
    for layer in (1, 2):
        # hidden_states[0] is the embedding, so layer L's output is hidden_states[L + 1].
        expected = out.hidden_states[layer + 1][0].float()
        torch.testing.assert_close(result.resid[resid_hook(layer)], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.logits, out.logits[0, -1].float(), rtol=1e-5, atol=1e-5)
    assert result.tokens[0].id == session.tokenizer.bos_token_id
    assert "".join(t.text for t in result.tokens[1:]) == "The capital of France is"


def test_residual_only_run_stops_early_and_has_no_logits(tiny_session):
    result = tiny_session.run(Request("Paris", layers=(0,), logits=False))
    assert result.logits is None
    assert result.resid[resid_hook(0)].shape == (len(result.tokens), 64)


def test_no_hooks_left_behind_after_runs_and_errors(tiny_session):
    tiny_session.run(Request("hello"))
    with pytest.raises(Cancelled):
        ev = threading.Event()
        ev.set()
        tiny_session.run(Request("hello"), cancel=ev)
    leftover = [n for n, h in tiny_session.model.bridge.hook_dict.items() if h.fwd_hooks]
    assert leftover == []


def test_bad_prompts_and_layers_get_clear_messages(tiny_session):
    with pytest.raises(PromptError, match="empty"):
        tiny_session.run(Request(""))
    with pytest.raises(PromptError, match="Layer 99 does not exist"):
        tiny_session.run(Request("hi", layers=(99,)))


def test_long_prompt_is_truncated_from_the_front_keeping_bos(tiny_session):
    tiny_session.max_prompt_tokens = 16
    try:
        result = tiny_session.run(Request("word " * 100))
    finally:
        tiny_session.max_prompt_tokens = 2048
    assert len(result.tokens) == 16 and result.truncated > 0
    assert result.tokens[0].id == tiny_session.tokenizer.bos_token_id


def test_hostile_text_is_tokenized_as_text(tiny_session):
    for text in ["[bold]x[/]", "\x1b[31mred\x1b[0m", "nul\x00byte", "שלום 👋"]:
        result = tiny_session.run(Request(text))
        assert result.logits is not None and torch.isfinite(result.logits).all()
