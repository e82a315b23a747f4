"""The UI's one way to a session: the real Session and the test fake both implement `SessionAPI`,
the fake keeps the contract the panes rely on, and panes never reach into the app."""

from pathlib import Path

import torch

from spectrascope.core.engine.plan import AddFeature
from spectrascope.core.engine.interface import SessionAPI
from tests.tui.fake_session import FakeSession, fake_with_saes

PANES = Path(__file__).resolve().parents[2] / "tui" / "panes"


def test_the_real_session_and_the_fake_implement_the_interface(tiny_sae_session):
    assert isinstance(tiny_sae_session, SessionAPI)
    assert isinstance(FakeSession(), SessionAPI)


def test_the_fake_forward_is_causal_and_its_cache_grows_and_crops():
    fake = fake_with_saes()
    ids, _ = fake.tokenize("The capital of France is")
    full = fake.forward(ids, capture=["blocks.1.hook_resid_post"], keep_logits=len(ids))
    cache = fake.new_cache()
    head = fake.forward(ids[:3], cache=cache, keep_logits=3)
    tail = fake.forward(ids[3:], capture=["blocks.1.hook_resid_post"], cache=cache, keep_logits=len(ids) - 3)
    assert cache.get_seq_length() == len(ids)
    assert torch.allclose(torch.cat([head.logits, tail.logits], 1), full.logits, atol=1e-5)
    assert torch.allclose(tail.resid["blocks.1.hook_resid_post"], full.resid["blocks.1.hook_resid_post"][:, 3:])
    assert fake.crop_cache(cache, 2) and cache.get_seq_length() == 2
    # An edit from the last prompt position on changes that position only, and says it fired.
    steered = fake.forward(ids, edits=[AddFeature("coarse", 3, 5.0, len(ids) - 1)], keep_logits=2)
    assert steered.edits_applied == 1
    assert torch.allclose(steered.logits[0, 0], full.logits[0, -2], atol=1e-5)
    assert not torch.allclose(steered.logits[0, 1], full.logits[0, -1])


def test_panes_never_reach_into_the_app():
    for path in PANES.glob("*.py"):
        source = path.read_text()
        assert "self.app" not in source, f"{path.name}: take it as an attribute handed down, or post a message"
