"""The system prompt through a chat template, on a tiny random Gemma 2 whose tokenizer has Gemma's template:
the with-system text is the template's rendering, and the anchoring view finds the user's tokens in it."""

from __future__ import annotations

import pytest

from spectrascope.core.analysis.anchoring import anchor_report, common_suffix
from spectrascope.core.engine.generation import with_system_prompt

# Gemma's template (no system role: the system text opens the first user turn, as Google does).
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_session(tmp_path_factory):
    from transformers import AutoTokenizer

    from spectrascope.core.engine.models import ModelSpec
    from spectrascope.core.engine.session import Session
    from tests.conftest import build_tiny_model_dir, make_tiny_sae

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-gemma2-it"), "gemma2")
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.chat_template = GEMMA_TEMPLATE
    tok.save_pretrained(str(folder))
    session = Session.load(ModelSpec("tiny-gemma2-it", str(folder), chat=True), device="cpu", dtype="float32",
                           saes=())
    session.attach_sae("coarse", make_tiny_sae(64, 128, "blocks.2.hook_resid_post", "topk", k=8, seed=1))
    return session


def test_the_with_system_prompt_is_the_templates_rendering(chat_session):
    s = chat_session
    system, user = "You are a pirate.", "Where is the treasure"
    assert s.tokenizer.chat_template == GEMMA_TEMPLATE
    want = f"<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n"  # BOS: the session's
    assert with_system_prompt(s, system, user) == want
    assert with_system_prompt(s, "", user) == f"<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"
    rendered = s.tokenizer.apply_chat_template([{"role": "user", "content": f"{system}\n\n{user}"}], tokenize=False,
                                               add_generation_prompt=True)
    assert rendered == s.tokenizer.bos_token + want
    ids = s.tokenize(want)[0]
    assert ids.count(s.tokenizer.bos_token_id) == 1 and ids[0] == s.tokenizer.bos_token_id  # one BOS, not two


def test_the_anchoring_view_compares_the_users_tokens_and_the_templates_closing(chat_session):
    s = chat_session
    system, user = "You are a pirate.", "Where is the treasure"
    rep = anchor_report(s, user, system, top=5)
    ids_a = s.tokenize(with_system_prompt(s, "", user))[0]
    ids_b = s.tokenize(with_system_prompt(s, system, user))[0]
    n = common_suffix(ids_a, ids_b)
    assert len(rep.shared_tokens) == n
    shared = s.decode(ids_a[-n:])
    closing = "<end_of_turn>\n<start_of_turn>model\n"
    assert shared.endswith(user + closing)  # every user token and the template's closing are compared
    assert shared[: -len(user + closing)].strip() == ""  # and nothing of the system text or the turn header
    assert "".join(rep.shared_tokens) == shared
    assert rep.features["coarse"] and rep.resid_shift_last > 0
