"""The per-token view agrees with the prompt's spectrum and with the contrast's per-prompt max."""

from __future__ import annotations

import numpy as np
import pytest

from spectrascope.core.analysis.contrast import run_contrast
from spectrascope.core.engine.session import Request
from spectrascope.core.analysis.token_view import token_activations, token_view


def test_token_activations_equal_the_spectrum_of_the_prompt(tiny_sae_session):
    s = tiny_sae_session
    res = s.run(Request("The capital of France is Paris"))
    for role, feature in (("coarse", 3), ("fine", 10)):
        tokens, acts = token_activations(s, "The capital of France is Paris", role, feature)
        assert tokens == tuple(t.text for t in res.tokens[1:])
        np.testing.assert_allclose(acts, res.spectra[role].codes[1:, feature].numpy(), rtol=1e-4, atol=1e-5)


def test_token_view_picks_the_strongest_and_weakest_prompts(tiny_sae_session, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    s = tiny_sae_session
    concept = ["Paris is in France.", "The French flag", "A croissant in Paris", "Lyon and Nice", "Bordeaux wine"]
    neutral = ["Rome is in Italy.", "The Italian flag", "A pizza in Rome"]
    contrast = run_contrast(s, concept, neutral)
    per_prompt = contrast.per_prompt("coarse")
    feature = int(np.argmax(per_prompt.sum(0)))
    view = token_view(s, concept, neutral, per_prompt, contrast.is_concept, "coarse", feature, n_top=2, n_low=1,
                      n_neutral=2)
    assert [v.set_name for v in view] == ["concept", "concept", "concept", "neutral", "neutral"]
    top = np.argsort(-per_prompt[:5, feature], kind="stable")
    assert [v.index for v in view[:2]] == top[:2].tolist() and view[2].index == top[-1]
    for v in view:  # the contrast's per-prompt max is the max over the shown tokens (BOS and pads excluded)
        row = v.index if v.set_name == "concept" else 5 + v.index
        assert v.peak == pytest.approx(float(per_prompt[row, feature]), rel=1e-3, abs=1e-4)
