"""Multi-resolution steering on the embedded model with its trained SAEs (skipped until they exist)."""

from __future__ import annotations

import pytest

from spectrascope.core.analysis import steering as st
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.assets import SAES_DIR
from spectrascope.core.engine.session import Session
from tests.conftest import hooks_left

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all((SAES_DIR / f"gemma-3-270m-res9-{r}" / "cfg.json").exists() for r in ("coarse", "fine")),
        reason="embedded SAEs not built yet (assets/saes/gemma-3-270m-res9-*)",
    ),
]

@pytest.fixture(scope="module")
def session():
    s = Session.load("gemma-3-270m", device="cpu", dtype="float32")
    assert set(s.saes) == {"coarse", "fine"}, s.sae_errors
    return s


def france_features(session):
    """The most France-selective coarse and fine features, from the shipped contrast sets (cached run)."""
    from spectrascope.core.analysis.contrast import default_sets, load_prompts
    from spectrascope.core.analysis.pairing import analyse

    concept, neutral = (load_prompts(p) for p in default_sets())
    result = analyse(session, concept, neutral, labels=False)
    stats = result.contrast.stats
    return stats["coarse"].ranked(1)[0], stats["fine"].ranked(1)[0]


def test_france_steering_raises_the_concept(session):
    coarse, fine = france_features(session)
    # Strength 1 = each feature's max activation: the regime where text stays fluent
    # (at 4x and beyond, perplexity explodes: see the issue 7 note).
    feats = [st.SteerFeature("coarse", coarse, 1.0), st.SteerFeature("fine", fine, 1.0)]
    units = st.feature_units(session, feats)
    assert all(u.basis in ("max_act (labels.json)", "max_act (calibration)") for u in units.values())
    rep = st.run_experiment(session, "My favourite place in the world is", feats,
                            settings=SamplingSettings(temperature=1.0), seeds=[0, 1, 2, 3], tokens=16, units=units)
    base, both = rep.cell("baseline"), rep.cell("coarse+fine")
    # Same seeds everywhere; steering changes the text; every metric is measured.
    # (Whether it *helps* is the experiment, reported in the issue note; 4 seeds of sampled
    # text are too noisy to assert a direction here: see the next-token test below.)
    assert [r.seed for r in base.runs] == [r.seed for r in both.runs] == [0, 1, 2, 3]
    assert [r.token_ids for r in base.runs] != [r.token_ids for r in both.runs]
    for cell in (base, both):
        assert 0 <= cell.concept_share <= 1 and cell.concept_act >= 0 and 1 < cell.perplexity < float("inf")
    assert hooks_left(session) == 0


def test_steering_shifts_the_next_token_toward_france(session):
    """Deterministic check of the mechanism: France tokens gain probability under coarse+fine steering."""
    from spectrascope.core.engine.session import Request

    coarse, fine = france_features(session)
    feats = [st.SteerFeature("coarse", coarse, 1.0), st.SteerFeature("fine", fine, 1.0)]
    france_ids = [session.tokenizer.encode(w, add_special_tokens=False)[0] for w in (" France", " Paris", " French")]
    prompt = "My favourite place in the world is"
    ids, _ = session.tokenize(prompt)
    edits = st.SteeringSpec(feats).edits(st.feature_units(session, feats), len(ids))
    base = session.run(Request(prompt, codes=False)).logits.softmax(-1)[france_ids].sum()
    steered = session.forward(ids, edits=edits).logits[0, -1].softmax(-1)[france_ids].sum()
    assert hooks_left(session) == 0
    assert steered > 2 * base, (float(base), float(steered))
