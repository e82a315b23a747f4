"""core.steering on a tiny Gemma 3 with random SAEs at blocks.2 (see tests/conftest.py)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from spectrascope.core.engine import generation
from spectrascope.core.analysis import steering as st
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.engine.session import Cancelled, Request
from tests.conftest import hooks_left, make_tiny_sae

HOOK = "blocks.2.hook_resid_post"
PROMPT = "The capital of France is"


def capture_resid(session, ids, edits=()):
    """Residual at HOOK for `ids` after the edits there, and the last position's logits."""
    out = session.forward(ids, capture=[HOOK], edits=edits)
    return out.resid[HOOK][0], out.logits[0, -1]


def edits(session, ids, feats, units, **spec):
    return st.SteeringSpec(tuple(feats), **spec).edits(units, len(ids))


@pytest.fixture
def feats():
    return [st.SteerFeature("coarse", 3, 2.0), st.SteerFeature("fine", 10, -1.5)]


def test_add_is_strength_times_unit_direction(tiny_sae_session, feats):
    s = tiny_sae_session
    units = st.feature_units(s, feats)
    ids, _ = s.tokenize(PROMPT)
    base, _ = capture_resid(s, ids)
    steered, logits = capture_resid(s, ids, edits(s, ids, feats, units))
    expected = base.clone()
    for f in feats:
        w = s.saes[f.role].W_dec[f.id].detach()
        expected += f.strength * units[(f.role, f.id)].scale * w / w.norm()  # every position
    torch.testing.assert_close(steered, expected, rtol=1e-5, atol=1e-5)

    # Independent implementation: a plain torch forward hook on the HF decoder layer.
    delta = (expected - base)[0]

    def manual(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + delta,) + tuple(output[1:])
        return output + delta

    handle = s.model.hf_model.model.layers[2].register_forward_hook(manual)
    try:
        with torch.inference_mode():
            ref = s.model.hf_model(torch.tensor([ids])).logits[0, -1].float()
    finally:
        handle.remove()
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)
    assert hooks_left(s) == 0


def test_generated_positions_touch_only_the_last_prompt_position(tiny_sae_session, feats):
    s = tiny_sae_session
    units = st.feature_units(s, feats)
    ids, _ = s.tokenize(PROMPT)
    base, _ = capture_resid(s, ids)
    plan = edits(s, ids, feats, units, positions="generated")
    steered, _ = capture_resid(s, ids, plan)
    torch.testing.assert_close(steered[:-1], base[:-1], rtol=0, atol=0)
    assert not torch.allclose(steered[-1], base[-1])
    # A decode step is at position len(ids): past from_position, so it is steered.
    cache = s.forward(ids[:-1], cache=s.new_cache()).cache
    step = s.forward(ids[-1:], capture=[HOOK], edits=plan, cache=cache)
    assert step.edits_applied == 1
    torch.testing.assert_close(step.resid[HOOK][0, 0], steered[-1], rtol=1e-5, atol=1e-5)


def test_units_are_max_activation_times_decoder_norm(tiny_sae_session):
    s = tiny_sae_session
    f = st.SteerFeature("coarse", 3)
    unit = st.feature_units(s, [f])[("coarse", 3)]
    ids, _ = s.tokenize(st.CALIBRATION_TEXT)
    resid = s.run(Request(st.CALIBRATION_TEXT, logits=False)).resid[HOOK][1:]
    with torch.no_grad():
        act = float(s.saes["coarse"].encode(resid)[:, 3].max())
        dec_norm = float(s.saes["coarse"].W_dec[3].norm())
    assert unit.basis == "max_act (calibration)"
    assert unit.typical_act == pytest.approx(act, rel=1e-5)
    assert unit.scale == pytest.approx(act * dec_norm, rel=1e-5)
    norm = st.feature_units(s, [f], unit="resid_norm")[("coarse", 3)]
    assert norm.basis == "resid_norm"
    assert norm.scale == pytest.approx(float(resid.norm(dim=-1).mean()), rel=1e-5)


def tied_sae(d_in=64, d_sae=32, seed=5):
    """JumpReLU with W_enc = W_dec^T (unit rows): re-encoding after a clamp is exact for active features."""
    sae = make_tiny_sae(d_in, d_sae, HOOK, "jumprelu", seed=seed)
    with torch.no_grad():
        sae.W_enc.copy_(sae.W_dec.T)
        sae.threshold.zero_()
        sae.b_enc[7] = 50.0  # feature 7 is active everywhere
    return sae


def test_clamp_sets_the_activation_on_re_encode(tiny_sae_session):
    s = tiny_sae_session
    s.attach_sae("tied", tied_sae())
    try:
        f = st.SteerFeature("tied", 7, 0.5)
        units = st.feature_units(s, [f])
        target = 0.5 * units[("tied", 7)].typical_act
        ids, _ = s.tokenize(PROMPT)
        base, _ = capture_resid(s, ids)
        steered, _ = capture_resid(s, ids, edits(s, ids, [f], units, method="clamp"))
        sae = s.saes["tied"]
        with torch.inference_mode():
            z = sae.encode(steered)[:, 7]
            torch.testing.assert_close(z, torch.full_like(z, target), rtol=1e-4, atol=1e-4)
            # The edit is exactly (target - z) * W_dec[f] on the fixture's non-tied SAE too.
            g = st.SteerFeature("fine", 10, 2.0)
            u = st.feature_units(s, [g])
            got, _ = capture_resid(s, ids, edits(s, ids, [g], u, method="clamp"))
            z0 = s.saes["fine"].encode(base)[:, 10]
            want = base + (2.0 * u[("fine", 10)].typical_act - z0)[:, None] * s.saes["fine"].W_dec[10]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    finally:
        s.saes.pop("tied")


def test_runs_are_reproducible_and_configurations_share_seeds(tiny_sae_session):
    s = tiny_sae_session
    zero = [st.SteerFeature("coarse", 3, 0.0), st.SteerFeature("fine", 10, 0.0)]
    kw = dict(seeds=[0, 1, 2], tokens=5, words=["Paris"])
    a = st.run_experiment(s, PROMPT, zero, **kw)
    b = st.run_experiment(s, PROMPT, zero, **kw)
    assert a.configs == ["baseline", "coarse", "fine", "coarse+fine"]
    for ca, cb in zip(a.cells, b.cells):
        assert [r.token_ids for r in ca.runs] == [r.token_ids for r in cb.runs]
        assert [r.seed for r in ca.runs] == [0, 1, 2]
    # Zero-strength steering draws the very same tokens as the baseline: same seeds, same draws.
    base = [r.token_ids for r in a.cell("baseline").runs]
    for name in ("coarse", "fine", "coarse+fine"):
        assert [r.token_ids for r in a.cell(name).runs] == base
    assert len(set(base)) > 1  # different seeds do differ
    strong = st.run_experiment(s, PROMPT, [st.SteerFeature("coarse", 3, 60.0)], **kw)
    assert [r.token_ids for r in strong.cell("coarse").runs] != base


def test_sweep_layout_and_strength_scaling(tiny_sae_session, feats):
    s = tiny_sae_session
    rep = st.run_experiment(s, PROMPT, feats, seeds=[0], tokens=3, strengths=[0, 2, 4], words=[])
    assert [(c.config, c.strength) for c in rep.cells] == [
        ("baseline", 0.0), ("coarse", 2.0), ("fine", 2.0), ("coarse+fine", 2.0),
        ("coarse", 4.0), ("fine", 4.0), ("coarse+fine", 4.0)]
    assert [f.strength for f in rep.cell("coarse+fine", 4.0).features] == [8.0, -6.0]
    assert [c.strength for c in rep.curve("fine")] == [0.0, 2.0, 4.0]
    d = rep.to_dict()
    assert d["cells"][0]["config"] == "baseline" and len(d["units"]) == 2
    assert hooks_left(s) == 0


def test_readback_metrics_match_a_numpy_reference(tiny_sae_session):
    s = tiny_sae_session
    prompt_ids, _ = s.tokenize(PROMPT)
    gen = [40, 41, 300, 7, 99]
    rb = st.readback(s, prompt_ids, gen, ("coarse", 3))
    ids = prompt_ids + gen
    with torch.inference_mode():
        logits = s.model.hf_model(torch.tensor([ids])).logits[0].double().numpy()  # (T, V)
    p = len(prompt_ids)
    rows = logits[p - 1 : -1]
    m = rows.max(axis=1, keepdims=True)
    logp = rows - (m + np.log(np.exp(rows - m).sum(axis=1, keepdims=True)))
    nll = -logp[np.arange(len(gen)), gen]
    np.testing.assert_allclose(rb.nll, nll, rtol=1e-4, atol=1e-4)
    assert rb.perplexity == pytest.approx(math.exp(nll.mean()), rel=1e-4)
    ref_resid, _ = capture_resid(s, ids)  # (T, d), no edits
    with torch.inference_mode():
        ref = float(s.saes["coarse"].encode(ref_resid[p:])[:, 3].mean())
    assert rb.concept_act == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_concept_trace_is_the_unsteered_sae_encode_of_each_generated_token(tiny_sae_session, feats):
    """Each run's per-token trace against an independent computation (the session's unsteered
    forward with a capture at the SAE hook, then sae-lens `SAE.encode` of the generated positions);
    its mean is the run's concept_act, and the export carries it."""
    s = tiny_sae_session
    prompt_ids, _ = s.tokenize(PROMPT)
    with torch.inference_mode():  # a concept feature that fires on this text, so the trace is not all zeros
        concept = int(s.saes["coarse"].encode(capture_resid(s, prompt_ids)[0][1:]).sum(0).argmax())
    rep = st.run_experiment(s, PROMPT, feats, seeds=[0, 1], tokens=6, strengths=[4.0], words=[],
                            concept=("coarse", concept))
    p = len(prompt_ids)
    runs = [r for c in rep.cells for r in c.runs]
    assert {r.config for r in runs} == {"baseline", "coarse", "fine", "coarse+fine"}
    for run in runs:
        resid, _ = capture_resid(s, prompt_ids + list(run.token_ids))  # no edits: the honest readback
        with torch.inference_mode():
            ref = s.saes["coarse"].encode(resid[p:])[:, concept].float().numpy()
        assert len(run.concept_trace) == len(run.token_ids)
        np.testing.assert_allclose(run.concept_trace, ref, rtol=1e-5, atol=1e-6)
        assert np.mean(run.concept_trace) == pytest.approx(run.concept_act, rel=1e-6, abs=1e-9)
        assert len(run.piece_trace()) == len(run.pieces)
    assert sum(max(r.concept_trace) > 0 for r in runs) >= 2  # it fires in the output: not all zeros
    exported = rep.to_dict()["cells"][1]["runs"][0]
    assert exported["concept_trace"] == list(rep.cells[1].runs[0].concept_trace)


def test_piece_trace_takes_the_strongest_token_of_each_piece():
    pieces = (st.Piece("a"), st.Piece("東", tokens=3), st.Piece("<eos>", True))
    run = st.SteeredRun("coarse", 1.0, 0, (1, 2, 3, 4, 5), "a東", 0.0, (), (0.0,) * 5, pieces,
                        (0.5, 0.1, 2.0, 0.3, 0.0))
    assert run.piece_trace() == (0.5, 2.0, 0.0)
    assert replace(run, concept_trace=()).piece_trace() == ()  # no readback: no marks


def test_concept_words_case_and_word_boundaries():
    words = ["France", "Paris", "Eiffel Tower", "C++"]
    assert st.match_concept("PARIS is in france.", words) == ["paris", "france"]
    assert st.match_concept("Parisian frances Francesca", words) == []
    assert st.match_concept("the eiffel  tower / the Eiffel Tower!", words) == ["eiffel tower"]
    assert st.match_concept("I like c++, not c+", words) == ["c++"]
    assert st.match_concept("anything", []) == []
    default = st.load_concept_words()
    assert "France" in default and "Paris" in default and not any(w.startswith("#") for w in default)
    assert st.match_concept("Bonjour from Lyon", default) == ["bonjour", "lyon"]


def test_hooks_removed_and_model_unchanged_after_error_and_cancel(tiny_sae_session, feats, monkeypatch):
    s = tiny_sae_session
    before = s.run(Request(PROMPT)).logits
    units = st.feature_units(s, feats)
    ids, _ = s.tokenize(PROMPT)
    spec = st.SteeringSpec(tuple(feats), method="clamp")

    calls = {"n": 0}
    real_pick = generation.pick

    def failing_pick(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom mid-generation")
        return real_pick(*a)

    monkeypatch.setattr(generation, "pick", failing_pick)
    with pytest.raises(RuntimeError, match="boom"):
        generation.generate(s, ids, SamplingSettings(), [0, 1], 6, spec.edits(units, len(ids)))
    monkeypatch.setattr(generation, "pick", real_pick)
    assert hooks_left(s) == 0
    torch.testing.assert_close(s.run(Request(PROMPT)).logits, before, rtol=1e-5, atol=1e-5)

    cancel = threading.Event()
    seen = {"n": 0}

    def progress(text, fraction):
        seen["n"] += 1
        if seen["n"] == 4:
            cancel.set()

    with pytest.raises(Cancelled):
        st.run_experiment(s, PROMPT, feats, seeds=[0, 1], tokens=4, strengths=[3], words=[],
                          cancel=cancel, progress=progress, units=units)
    assert hooks_left(s) == 0
    torch.testing.assert_close(s.run(Request(PROMPT)).logits, before, rtol=1e-5, atol=1e-5)


def test_parse_and_validate_errors(tiny_sae_session):
    assert st.parse_features("coarse:12:4, fine:7") == [st.SteerFeature("coarse", 12, 4.0), st.SteerFeature("fine", 7, 1.0)]
    for bad in ["coarse", "coarse:x", "coarse:1:abc", "coarse:-1", ":3", "coarse:1:nan", ""]:
        with pytest.raises(st.SteeringError):
            st.parse_features(bad)
    with pytest.raises(st.SteeringError, match="No 'medium' SAE"):
        st.validate_features(tiny_sae_session, [st.SteerFeature("medium", 1)])
    with pytest.raises(st.SteeringError, match="0..127"):
        st.validate_features(tiny_sae_session, [st.SteerFeature("coarse", 128)])
    with pytest.raises(st.SteeringError):
        st.SteeringSpec((), method="swap")


def test_importing_steering_does_not_load_torch():
    import subprocess
    import sys

    code = ("import sys; import spectrascope.core.analysis.steering as st; st.parse_features('coarse:1:2'); "
            "st.load_concept_words(); assert 'torch' not in sys.modules, 'torch loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_targeting_picks_the_strongest_cell_within_the_perplexity_budget():
    def cell(config, strength, act, nll, words=()):
        run = st.SteeredRun(config, strength, 0, (1,), "x", act, tuple(words), (nll,))
        return st.Cell(config, strength, (), (run,))

    base = cell("baseline", 0.0, 0.1, math.log(10.0))
    cells = (base, cell("coarse", 2.0, 1.0, math.log(12.0)), cell("coarse", 4.0, 3.0, math.log(40.0)),
             cell("coarse+fine", 2.0, 2.0, math.log(14.0), ["paris"]), cell("fine", 2.0, 0.5, math.log(99.0)))
    rep = st.SteeringReport("p", st.SteeringSpec(()), SamplingSettings(), (0,), 1, (2.0, 4.0), ("coarse", 1), {}, cells)
    rows = {r["config"]: r for r in rep.targeting(budget=1.5)}
    assert rows["coarse"]["strength"] == 2.0 and rows["coarse"]["concept_act"] == 1.0
    assert rows["coarse+fine"]["concept_act"] == 2.0 and rows["coarse+fine"]["concept_share"] == 1.0
    assert rows["fine"]["strength"] is None  # every fine cell costs more than 1.5x baseline perplexity
    assert rep.cell("coarse").perplexity == pytest.approx(12.0)


def _runs(config, strength, acts, nlls, words=None):
    return tuple(st.SteeredRun(config, strength, seed, (1,), "x", a, tuple(words[seed] if words else ()), (n,))
                 for seed, (a, n) in enumerate(zip(acts, nlls)))


def test_bootstrap_interval_matches_a_numpy_reference():
    rng = np.random.default_rng(3)
    acts = rng.normal(2.0, 1.0, size=20)
    runs = _runs("coarse", 1.0, acts, [1.0] * 20)
    lo, hi = st.bootstrap_ci(runs, st.CELL_METRICS["concept_act"], n=500, seed=7)
    ref_rng = np.random.default_rng(7)
    means = acts[ref_rng.integers(0, 20, size=(500, 20))].mean(1)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), rel=1e-9)
    # And the percentile interval is close to the normal one for a mean of 20 normal draws.
    se = acts.std(ddof=1) / np.sqrt(20)
    assert lo == pytest.approx(acts.mean() - 1.96 * se, abs=0.5 * se)
    assert hi == pytest.approx(acts.mean() + 1.96 * se, abs=0.5 * se)
    assert st.bootstrap_ci(runs[:1], st.CELL_METRICS["concept_act"]) is None


def test_matched_cost_pairs_seeds_and_brackets_the_true_difference():
    rng = np.random.default_rng(0)
    n = 24
    base_act = rng.normal(0.1, 0.05, n)
    coarse_act = base_act + rng.normal(1.0, 0.3, n)
    both_act = coarse_act + 0.5 + rng.normal(0, 0.1, n)  # same seeds: +0.5 per seed, small noise
    nll = np.full(n, math.log(10.0))
    cells = (st.Cell("baseline", 0.0, (), _runs("baseline", 0.0, base_act, nll)),
             st.Cell("coarse", 1.0, (), _runs("coarse", 1.0, coarse_act, nll + 0.1)),
             st.Cell("coarse+fine", 1.0, (), _runs("coarse+fine", 1.0, both_act, nll + 0.2)))
    rep = st.SteeringReport("p", st.SteeringSpec(()), SamplingSettings(), tuple(range(n)), 1, (1.0,),
                            ("coarse", 1), {}, cells)
    m = rep.matched_cost()
    assert m["strength_a"] == m["strength_b"] == 1.0 and m["n_seeds"] == n
    assert m["delta_concept_act"] == pytest.approx(float((both_act - coarse_act).mean()))
    lo, hi = m["delta_concept_act_ci95"]
    assert 0.3 < lo < 0.5 < hi < 0.7  # paired: the between-seed spread of coarse_act cancels
    assert m["perplexity_ratio"] == pytest.approx(math.exp(0.1))
    summary = rep.cell("coarse").summary()
    assert summary["n_seeds"] == n and summary["concept_act_ci95"][0] < summary["concept_act"] < summary["concept_act_ci95"][1]
    assert rep.matched_cost(budget=1.0) is None  # nothing is within the baseline's own perplexity


def test_default_concept_words_come_from_the_concept_features_label(tiny_sae_session, monkeypatch):
    from spectrascope.core.engine.labels import FeatureLabel

    s = tiny_sae_session
    with pytest.raises(st.SteeringError, match="word list"):  # a computed label has no snippets
        st.words_from_label(s, ("coarse", 3))
    label = FeatureLabel(3, (), ((9.0, "in [[ Kyoto]] and"), (8.0, "the[[ Japanese]] garden"), (7.0, "x[[.]]")))
    monkeypatch.setattr(s.labels["coarse"], "get", lambda f: label)
    assert st.words_from_label(s, ("coarse", 3)) == ["Kyoto", "Japanese"]
    rep = st.run_experiment(s, PROMPT, [st.SteerFeature("coarse", 3, 0.0)], seeds=[0], tokens=2)
    assert rep.words == ("Kyoto", "Japanese") and rep.words_source == "coarse:3's top contexts"


def test_token_pieces_join_to_the_tokenizers_decode_with_special_tokens_flagged(tiny_sae_session):
    """Pieces vs the HF tokenizer: they join to its decode of all the ids, a multi-byte character's
    byte tokens make one piece (no U+FFFD), and exactly the tokenizer's special ids are flagged."""
    tok = tiny_sae_session.tokenizer
    ids = tok("The café in 東京 is nice", add_special_tokens=False)["input_ids"]
    ids = ids[:2] + [tok.bos_token_id, tok.eos_token_id] + ids[2:] + [tok.eos_token_id]
    pieces = st.token_pieces(tiny_sae_session, ids)
    assert "".join(p.text for p in pieces) == tok.decode(ids)
    assert not any("\ufffd" in p.text for p in pieces)
    assert [p.text for p in pieces if p.special] == [tok.decode([i]) for i in ids if i in tok.all_special_ids]
    assert len(pieces) < len(ids)  # the CJK characters span several byte tokens here


def test_control_tokens_are_special_and_html_tag_tokens_are_text(tiny_sae_session):
    """As in Gemma 3's tokenizer: <start_of_image> is an added token not flagged special, <strong> an
    added token that is text; the tokenizer's own special ids stay special."""
    import copy
    from types import SimpleNamespace

    from tokenizers import AddedToken

    from spectrascope.core.engine.session import Session

    tok = copy.deepcopy(tiny_sae_session.tokenizer)
    tok.add_tokens([AddedToken("<start_of_image>", special=False), AddedToken("<strong>", special=False),
                    AddedToken("[multimodal]", special=False)])
    view = SimpleNamespace(tokenizer=tok, _special_ids=None)  # all that is_special reads
    ids = {name: tok.convert_tokens_to_ids(name) for name in ("<start_of_image>", "<strong>", "[multimodal]")}
    assert Session.is_special(view, ids["<start_of_image>"]) and Session.is_special(view, ids["[multimodal]"])
    assert not Session.is_special(view, ids["<strong>"])
    assert all(Session.is_special(view, i) for i in tok.all_special_ids)
    assert not Session.is_special(view, tok("Paris", add_special_tokens=False)["input_ids"][0])


def test_the_concept_word_share_has_an_exact_binomial_interval():
    """0 of 20 runs is not "[0%, 0%]": Clopper-Pearson from the beta quantiles, computed here by hand."""
    from scipy.stats import beta

    from spectrascope.core.analysis.steering import share_ci

    for k, n in ((0, 20), (2, 20), (20, 20), (1, 3)):
        lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
        hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
        assert share_ci(k, n) == pytest.approx((lo, hi), abs=1e-9)
    assert share_ci(0, 20)[1] == pytest.approx(1 - 0.025 ** (1 / 20), abs=1e-9)  # the closed form at k = 0
    assert share_ci(1, 1) is None
