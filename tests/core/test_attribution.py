"""Attribution ("why this token") on tiny random models: the sum rule, exactness where the rest of the
model is linear, finite differences elsewhere, the ablation edit against an independent edit, bad input."""

from __future__ import annotations

import pytest
import torch

from spectrascope.core.engine.plan import AblateFeatures, AddFeature, LogitObjective
from spectrascope.core.views.attribution import AttributionReport, AttributionSpec, ablate, build
from tests.conftest import build_tiny_model_dir, make_tiny_sae

PROMPT = "The capital of France is"


def scalar(session, ids, target, vs, edits=()):
    logits = session.forward(ids, edits=edits, keep_logits=1).logits[0, -1]
    return float(logits[target] - logits[vs])


def test_sum_rule_and_total(tiny_sae_session):
    s = tiny_sae_session
    rep = build(s, AttributionSpec(PROMPT, target="#7", vs="#9", verify=0))
    ids, _ = s.tokenize(PROMPT)
    hook = s.sae_hook("coarse")
    g = s.gradient(ids, LogitObjective(len(ids) - 1, 7, 9), [hook])
    direct_total = float((g.resid[hook] * g.grad[hook]).sum())
    for terms in rep.saes:
        assert terms.features + terms.error + terms.constant + terms.bos == pytest.approx(terms.total, abs=1e-4)
        assert terms.total == pytest.approx(direct_total, rel=1e-5)
        assert terms.bos != 0.0  # BOS is its own node, read from its residual
        assert sum(terms.strip) == pytest.approx(terms.features, abs=1e-4)
    assert rep.value == pytest.approx(scalar(s, ids, 7, 9), abs=1e-4)
    assert rep.verified == 0 and all(f.measured is None for f in rep.features)


@pytest.fixture(scope="module")
def last_layer_session(tmp_path_factory):
    """A tiny Gemma 3 with an SAE at its last layer's output: only the final norm and the unembedding follow."""
    from spectrascope.core.engine.session import Session

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-attr"), "gemma3")
    s = Session.load(str(folder), device="cpu", dtype="float32", saes=())
    s.attach_sae("coarse", make_tiny_sae(64, 128, "blocks.3.hook_resid_post", "topk", k=8, seed=3))
    return s


def test_exact_where_the_rest_of_the_model_is_linear(last_layer_session, monkeypatch):
    s = last_layer_session
    # With the final norm made the identity, logit(a) − logit(b) = (W_U[a] − W_U[b]) · x_last: linear in
    # the SAE layer's residual, so every feature's estimate is exactly its ablation's effect.
    norm = s.model.hf_model.model.norm  # transformer-lens' bridge around the final RMSNorm: its hooks stay
    for path in ("_python_norm_forward", "_hf_autograd_forward_with_hooks"):
        monkeypatch.setattr(norm, path, lambda x: x)
    rep = build(s, AttributionSpec(PROMPT, target="#7", vs="#9", roles=("coarse",), top=8, verify=8))
    assert rep.verified == 8
    for f in rep.features:
        assert f.position == len(rep.tokens) - 1  # earlier positions cannot reach the last logit
        assert f.measured == pytest.approx(f.estimate, abs=1e-4)
        assert not f.off
    terms = rep.saes[0]
    assert terms.all_measured == pytest.approx(terms.features, abs=1e-4)


def test_agrees_with_finite_differences(tiny_sae_session):
    s = tiny_sae_session
    rep = build(s, AttributionSpec(PROMPT, target="#7", vs="#9", top=6, verify=0))
    ids, _ = s.tokenize(PROMPT)
    base, eps = scalar(s, ids, 7, 9), 1e-2
    for f in rep.features:
        shrunk = scalar(s, ids, 7, 9, [AblateFeatures(f.role, ((f.position, f.feature),), scale=eps)])
        # A 1% ablation: the first-order estimate to within 5% (float32, nonlinear layers after the hook).
        assert (base - shrunk) / eps == pytest.approx(f.estimate, rel=5e-2, abs=2e-3)


def test_verified_effects_and_rank_agreement(tiny_sae_session):
    s = tiny_sae_session
    rep = build(s, AttributionSpec(PROMPT, target="#7", vs="#9", top=12, verify=10))
    ids, _ = s.tokenize(PROMPT)
    base = scalar(s, ids, 7, 9)
    checked = [f for f in rep.features if f.measured is not None]
    assert len(checked) == 10 and rep.spearman is not None
    for f in checked[:3]:  # the batched rows equal one forward each with the edit alone
        alone = scalar(s, ids, 7, 9, [AblateFeatures(f.role, ((f.position, f.feature),))])
        assert f.measured == pytest.approx(base - alone, abs=1e-4)
    for terms in rep.saes:
        if terms.top_n:
            assert terms.recovered == pytest.approx(terms.top_measured / terms.all_measured)


def test_live_ablation_equals_a_direct_forward_with_the_edit(tiny_sae_session):
    s = tiny_sae_session
    rep = build(s, AttributionSpec(PROMPT, target="#7", top=20, verify=0))
    row = next(f for f in rep.features if f.position == rep.position)
    got = ablate(s, rep, row)
    ids, _ = s.tokenize(PROMPT)
    # The same change written as an AddFeature at the last position: -z along the unit decoder row.
    sae = s.sae(row.role)
    norm = float(sae.W_dec[row.feature].detach().norm())
    edit = AddFeature(row.role, row.feature, -row.activation * norm, from_position=rep.position)
    logits = s.forward(ids, edits=[edit], keep_logits=1).logits[0, -1]
    assert got.value_after == pytest.approx(float(logits[7]), abs=1e-4)
    assert got.prob_after == pytest.approx(float(torch.softmax(logits, -1)[7]), abs=1e-6)
    assert got.value_before == pytest.approx(rep.value, abs=1e-4)


def test_ablation_row_touches_only_its_row(tiny_sae_session):
    s = tiny_sae_session
    ids, _ = s.tokenize(PROMPT)
    t = len(ids) - 1
    z = s.sae("coarse").encode(s.forward(ids, capture=[s.sae_hook("coarse")]).resid[s.sae_hook("coarse")][0, t])
    f = int(z.argmax())
    out = s.forward(torch.tensor([ids, ids, ids]), edits=[AblateFeatures("coarse", ((t, f),), row=2)])
    logits = out.logits[:, -1]
    assert torch.equal(logits[0], logits[1]) and not torch.allclose(logits[0], logits[2])
    with pytest.raises(ValueError, match="row 5"):
        s.forward(torch.tensor([ids]), edits=[AblateFeatures("coarse", ((t, f),), row=5)])


def test_report_round_trip(tiny_sae_session):
    rep = build(tiny_sae_session, AttributionSpec(PROMPT, target="#7", vs="#9", top=5, verify=5))
    doc = rep.to_dict()
    assert "recovered" in doc["saes"][0]
    again = AttributionReport.from_dict(doc)
    assert again == rep
    assert "Spearman" in rep.to_markdown()


def test_bad_input_gets_one_clear_line(tiny_sae_session, tiny_session):
    s = tiny_sae_session
    with pytest.raises(ValueError, match="outside the prompt"):
        build(s, AttributionSpec(PROMPT, target="#7", position=99))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        build(s, AttributionSpec(PROMPT, target="#999999"))
    with pytest.raises(ValueError, match="empty"):
        build(s, AttributionSpec(PROMPT, target=""))
    with pytest.raises(ValueError, match="same token"):
        build(s, AttributionSpec(PROMPT, target="#7", vs="#7"))
    with pytest.raises(ValueError, match="top must be"):
        AttributionSpec(PROMPT, top=0)
    with pytest.raises(ValueError, match="No SAE is loaded"):
        build(tiny_session.__class__(tiny_session.model), AttributionSpec(PROMPT, target="#7"))
    rep = build(s, AttributionSpec(PROMPT, target=" capital city", verify=0))
    assert any("tokens" in n and "the first" in n for n in rep.notes)
    rep = build(s, AttributionSpec(PROMPT, verify=0))
    assert rep.notes[0].startswith("No target given")


def test_an_sae_whose_decoder_is_not_linear_in_its_code_is_refused(tiny_sae_session, monkeypatch):
    sae = tiny_sae_session.sae("coarse")
    decode = sae.decode
    monkeypatch.setattr(sae, "decode", lambda z: decode(z) * (1 + z.abs().sum(-1, keepdim=True) / 100))
    with pytest.raises(ValueError, match="not linear in its code"):
        build(tiny_sae_session, AttributionSpec(PROMPT, target="#7", roles=("coarse",), verify=0))
