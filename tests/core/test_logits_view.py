"""The Logits view's own pieces: the A/B's shift words, the Spec's checks, and the pane's step jobs moving a
copy of the stepper (the UI keeps drawing the original)."""

import pytest

from spectrascope.core.engine.generation import Stepper
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.views import logits


def test_rank_shift_and_top_status_words():
    assert [logits.rank_shift(*a) for a in ((3, False, False), (-2, False, False), (0, False, False),
                                            (None, True, False), (None, False, True), (None, False, False))] == [
        "↑3", "↓2", "=", "new", "dropped", "–"]
    assert [logits.top_status(*a) for a in ((True, False), (False, True), (False, False))] == [
        "new in top", "dropped", "in both"]


def test_a_bad_spec_is_refused_before_any_model_work():
    with pytest.raises(ValueError, match="top_p"):
        logits.LogitsSpec("x", top_p=2.0)
    with pytest.raises(ValueError, match="--runs at least 0"):
        logits.LogitsSpec("x", runs=-1)
    assert logits.LogitsSpec("x", top_k=0).settings.top_k is None


def test_step_and_back_move_a_copy_and_a_failed_step_leaves_the_original_sound(tiny_sae_session, monkeypatch):
    session, settings = tiny_sae_session, SamplingSettings(temperature=0.0)
    first = logits.step(session, "The capital", None, settings)
    second = logits.step(session, "The capital", first, settings)
    assert second is not first and len(first.steps) == 1 and len(second.steps) == 2
    assert first.view is not second.view and second.steps[0] is first.steps[0]
    back = logits.back(second)
    assert len(second.steps) == 2 and len(back.steps) == 1

    def broken(*args, **kwargs):
        raise RuntimeError("no forward")

    monkeypatch.setattr(Stepper, "_forward", broken)
    with pytest.raises(RuntimeError):
        logits.step(session, "The capital", back, settings)
    monkeypatch.undo()
    assert len(back.steps) == 1
    again = logits.step(session, "The capital", back, settings)  # the original rebuilds its cache
    assert again.steps[1].token_id == second.steps[1].token_id
