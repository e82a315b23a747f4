"""Multi-resolution steering on the embedded model with its trained SAEs (skipped until they exist)."""

from __future__ import annotations

import pytest
import torch

from spectrascope.core import steering as st
from spectrascope.core.knobs import SamplingSettings
from spectrascope.core.saes import ASSETS_SAES
from spectrascope.core.session import Request, Session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all((ASSETS_SAES / f"gemma-3-270m-res9-{r}" / "cfg.json").exists() for r in ("coarse", "fine")),
        reason="embedded SAEs not built yet (assets/saes/gemma-3-270m-res9-*)",
    ),
]

FRANCE = ["Paris is the capital of France.", "The French people speak French in France.",
          "We took the train from Paris to Lyon and Marseille."]
OTHER = ["Tokyo is the capital of Japan.", "The Germans speak German in Berlin.",
         "We took the train from London to Manchester."]


@pytest.fixture(scope="module")
def session():
    s = Session.load("gemma-3-270m", device="cpu", dtype="float32")
    assert set(s.saes) == {"coarse", "fine"}, s.sae_errors
    return s


def france_feature(session, role):
    """The feature most active on France text relative to other-country text (mean over tokens)."""
    def mean_codes(texts):
        return torch.stack([session.run(Request(t)).spectra[role].codes[1:].mean(0) for t in texts]).mean(0)

    return int((mean_codes(FRANCE) - mean_codes(OTHER)).argmax())


def test_france_steering_raises_the_concept(session):
    coarse = france_feature(session, "coarse")
    fine = france_feature(session, "fine")
    feats = [st.SteerFeature("coarse", coarse, 4.0), st.SteerFeature("fine", fine, 4.0)]
    units = st.feature_units(session, feats)
    assert all(u.basis in ("max_act (labels.json)", "max_act (calibration)") for u in units.values())
    rep = st.run_experiment(session, "My favourite thing to do on holiday is", feats,
                            settings=SamplingSettings(temperature=0.7), seeds=[0, 1, 2], tokens=12, units=units)
    base, both = rep.cell("baseline"), rep.cell("coarse+fine")
    assert both.concept_act > base.concept_act
    assert both.concept_share >= base.concept_share
    assert st.active_hook_count(session) == 0
