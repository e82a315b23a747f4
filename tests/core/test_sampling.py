"""The sampling pipeline against transformers' own warpers, plus properties and compare()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings as hyp_settings, strategies as st
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from spectrascope.core.stats.sampling import (
    ABComparison,
    Distribution,
    Exclusion,
    LogitsView,
    SamplingSettings,
    apply,
    compare,
    greedy,
    reason_name,
    sample,
)


def hf_pipeline(logits: torch.Tensor, s: SamplingSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """What transformers does: the active warpers in order, then softmax.

    Returns (final probs, survivor mask); survivors are the scores the warpers left
    finite (a survivor's probability can still underflow to 0 at low temperature).
    """
    scores = logits.float().unsqueeze(0)  # (1, V)
    dummy_ids = torch.zeros((1, 1), dtype=torch.long)
    warpers = [TemperatureLogitsWarper(float(s.temperature))]
    if s.top_k is not None:
        warpers.append(TopKLogitsWarper(s.top_k))
    if s.top_p < 1.0:
        warpers.append(TopPLogitsWarper(s.top_p))
    for warper in warpers:
        scores = warper(dummy_ids, scores)
    return scores.softmax(dim=-1)[0], torch.isfinite(scores[0])  # (V,), (V,)


def assert_probs_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6) -> None:
    # Not torch.testing.assert_close: its first call imports torch.distributed (~3 s).
    worst = float((actual - expected).abs().max())
    assert worst <= atol, f"max |difference| {worst:.3g} > {atol:g}"


def assert_matches_hf(logits: torch.Tensor, s: SamplingSettings) -> Distribution:
    dist = apply(logits, s)
    expected, survivors = hf_pipeline(logits, s)
    assert_probs_close(dist.final_probs, expected)
    ours = set(torch.nonzero(dist.excluded_by == Exclusion.KEPT).squeeze(1).tolist())
    theirs = set(torch.nonzero(survivors).squeeze(1).tolist())
    assert ours == theirs
    assert dist.n_survivors == len(ours)
    return dist


# --------------------------------------------------------------------------- vs transformers

SETTINGS_GRID = [
    SamplingSettings(temperature=t, top_k=k, top_p=p)
    for t in (0.3, 1.0, 2.0)
    for k in (None, 1, 5, 40)
    for p in (1.0, 0.9, 0.5, 0.05)
]


@pytest.mark.parametrize("vocab", [17, 1000, 32_768])
def test_random_logits_match_transformers(vocab):
    generator = torch.Generator().manual_seed(vocab)
    logits = torch.randn(vocab, generator=generator) * 4
    view = LogitsView(logits)
    for s in SETTINGS_GRID:
        dist = view.apply(s)
        expected, survivors = hf_pipeline(logits, s)
        assert_probs_close(dist.final_probs, expected)
        assert torch.equal(dist.final_probs > 0, expected > 0), s
        assert torch.equal(dist.excluded_by == Exclusion.KEPT, survivors), s


def test_topk_keeps_every_tie_with_the_kth_value():
    logits = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0, 0.5, 2.0, -1.0])
    dist = assert_matches_hf(logits, SamplingSettings(top_k=2))
    assert dist.n_survivors == 5  # 3.0 plus all four 2.0s
    assert (dist.excluded_by == Exclusion.TOP_K).sum() == 3


@pytest.mark.parametrize("top_p", [0.2, 0.4, 0.5, 0.6, 0.75, 0.99])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.0])
def test_ties_at_the_top_p_boundary_match_transformers(top_p, temperature):
    # V <= 16: HF's sort is stable there, so its tie order is defined and must match.
    logits = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 1.0, -3.0, 1.0])
    for k in (None, 3, 9):
        assert_matches_hf(logits, SamplingSettings(temperature=temperature, top_k=k, top_p=top_p))


def test_ties_created_by_temperature_rounding_follow_transformers():
    # 1.4e-45 / 2 rounds to 0.0: two distinct logits tie only after the division,
    # and HF then drops the lower id first (found by hypothesis).
    dist = assert_matches_hf(torch.tensor([1.401298464324817e-45, 0.0]), SamplingSettings(temperature=2.0, top_p=0.5))
    assert dist.excluded_by.tolist() == [Exclusion.TOP_P, Exclusion.KEPT]


def test_all_equal_logits():
    logits = torch.zeros(16)
    for p in (0.1, 0.5, 0.51, 1.0):
        assert_matches_hf(logits, SamplingSettings(top_p=p))
    assert apply(logits, SamplingSettings(temperature=0)).final_probs[0] == 1.0  # first argmax


def test_k_larger_than_vocab_keeps_everything():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    dist = assert_matches_hf(logits, SamplingSettings(top_k=10_000))
    assert dist.n_survivors == 50


def test_p_one_is_off_and_tiny_p_keeps_only_the_top_token():
    logits = torch.randn(4096, generator=torch.Generator().manual_seed(2))
    off = assert_matches_hf(logits, SamplingSettings(top_p=1.0))
    assert off.n_survivors == 4096
    tiny = assert_matches_hf(logits, SamplingSettings(top_p=1e-9))
    assert tiny.n_survivors == 1
    assert tiny.final_probs[int(torch.argmax(logits))] == 1.0


def test_reduced_precision_input_is_computed_in_float32():
    logits = (torch.randn(3000, generator=torch.Generator().manual_seed(3)) * 3).to(torch.bfloat16)
    dist = assert_matches_hf(logits.float(), SamplingSettings(temperature=0.7, top_p=0.8))
    assert torch.equal(apply(logits, SamplingSettings(temperature=0.7, top_p=0.8)).final_probs, dist.final_probs)


# --------------------------------------------------------------------------- greedy, reasons, rows


def test_greedy_is_first_argmax_and_attributes_everything_else_to_temperature():
    logits = torch.tensor([0.5, 2.0, -1.0, 2.0])
    assert greedy(logits) == 1
    dist = apply(logits, SamplingSettings(temperature=0, top_k=1, top_p=0.1))
    assert dist.n_survivors == 1 and dist.final_probs.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert dist.excluded_by.tolist() == [1, 0, 1, 1]
    raw = torch.softmax(logits, 0)
    assert dist.entropy_before == pytest.approx(float(-(raw * raw.log()).sum()), abs=1e-6)
    assert dist.entropy_after == 0.0


def test_reasons_are_attributed_to_the_first_knob():
    logits = torch.tensor([5.0, 4.0, 3.0, 0.0, -1.0, -math.inf])
    dist = apply(logits, SamplingSettings(top_k=3, top_p=0.5))
    assert dist.excluded_by.tolist() == [0, 3, 3, 2, 2, 4]
    assert [reason_name(c) for c in dist.excluded_by.tolist()] == [
        None, "top-p", "top-p", "top-k", "top-k", "masked (-inf logit)"]
    with pytest.raises(ValueError):
        reason_name(9)


def test_top_rows_are_ordered_by_raw_logit_then_id():
    logits = torch.tensor([1.0, 3.0, 3.0, -2.0, 3.0, 0.0])
    rows = apply(logits, SamplingSettings(temperature=0)).top(4)
    assert [r.id for r in rows] == [1, 2, 4, 0]
    assert rows[0].final_p == 1.0 and rows[0].excluded_by is None
    assert rows[1].excluded_by == "greedy (T=0)"
    assert rows[0].raw_p == pytest.approx(float(torch.softmax(logits, 0)[1]))
    assert [r.id for r in apply(logits, SamplingSettings()).top(2)] == [1, 2]
    assert len(apply(logits, SamplingSettings()).top(100)) == 6


def test_entropies():
    logits = torch.randn(500, generator=torch.Generator().manual_seed(4))
    dist = apply(logits, SamplingSettings(temperature=2.0, top_k=10))
    tempered = torch.softmax(logits / 2.0, 0).double()
    final = dist.final_probs.double()[dist.final_probs > 0]
    assert dist.entropy_before == pytest.approx(float(-(tempered * tempered.log()).sum()), abs=1e-5)
    assert dist.entropy_after == pytest.approx(float(-(final * final.log()).sum()), abs=1e-5)


# --------------------------------------------------------------------------- properties

logit_values = st.one_of(
    st.floats(-30, 30, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, 2.5]),  # forces ties
)
knobs = st.builds(
    SamplingSettings,
    temperature=st.one_of(st.just(0.0), st.floats(0.05, 5.0)),
    top_k=st.one_of(st.none(), st.integers(1, 80)),
    top_p=st.one_of(st.just(1.0), st.floats(0.001, 1.0, exclude_min=True)),
    seed=st.integers(0, 2**32),
)


@hyp_settings(max_examples=150, deadline=None)
@given(values=st.lists(logit_values, min_size=1, max_size=64), s=knobs)
def test_pipeline_properties(values, s):
    logits = torch.tensor(values, dtype=torch.float32)
    dist = apply(logits, s)
    kept = dist.excluded_by == Exclusion.KEPT
    assert dist.n_survivors == int(kept.sum()) >= 1
    assert float(dist.final_probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(dist.raw_probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert bool((dist.final_probs[~kept] == 0).all())  # exactly zero where excluded
    assert greedy(logits) == int(torch.argmax(logits))
    assert bool(kept[logits == logits.max()].any())  # a top token always survives
    if s.temperature == 0:
        assert dist.n_survivors == 1 and bool(kept[greedy(logits)])
    token = sample(dist, s.seed)
    assert bool(kept[token])
    assert sample(dist, s.seed) == token
    if len(values) <= 16 and s.temperature > 0:  # HF's tie order is defined up to 16 tokens
        expected, survivors = hf_pipeline(logits, s)
        assert_probs_close(dist.final_probs, expected)
        assert torch.equal(kept, survivors)


def test_sample_is_reproducible_and_ignores_global_rng():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(5))
    dist = apply(logits, SamplingSettings(temperature=1.5, seed=42))
    torch.manual_seed(0)
    first = sample(dist)
    torch.manual_seed(123)
    _ = torch.rand(10)
    assert sample(dist) == first == sample(dist, 42) == sample(dist.final_probs, 42)
    draws = {sample(dist, seed) for seed in range(50)}
    assert len(draws) > 10  # different seeds really do draw differently
    with pytest.raises(ValueError, match="seed"):
        sample(dist.final_probs)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "knob"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": -0.2}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_invalid_knobs_raise_a_message_naming_the_knob(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        SamplingSettings(**kwargs)


def test_settings_round_trip_and_normalisation():
    s = SamplingSettings(temperature=1, top_k=0, top_p=1, seed=7)
    assert s.top_k is None and isinstance(s.temperature, float)
    assert s == SamplingSettings(seed=7)
    t = SamplingSettings(temperature=0.7, top_k=np.int64(40), top_p=0.9, seed=3)
    assert SamplingSettings.from_dict(t.to_dict()) == t and t.top_k == 40
    assert SamplingSettings.from_dict({}) == SamplingSettings()
    with pytest.raises(ValueError, match="topk"):
        SamplingSettings.from_dict({"topk": 3})
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings.from_dict({"top_p": 2})


def test_invalid_logits_are_rejected():
    for bad in (torch.zeros(2, 3), torch.zeros(0), torch.tensor([1.0, float("nan")]),
                torch.tensor([float("-inf")] * 3), torch.tensor([1, 2])):
        with pytest.raises(ValueError, match="logits"):
            LogitsView(bad)


# --------------------------------------------------------------------------- compare()


def test_compare_hand_checked_example():
    # Final probs are the softmax of these logits (T=1, no knobs), so ranks follow logits.
    a = apply(torch.log(torch.tensor([0.40, 0.30, 0.20, 0.06, 0.04])), SamplingSettings())
    b = apply(torch.log(torch.tensor([0.10, 0.35, 0.05, 0.40, 0.10])), SamplingSettings())
    result = compare(a, b, top_n=3)
    assert isinstance(result, ABComparison) and result.kl_basis == "final"
    by_id = {r.token_id: r for r in result.rows}
    assert [r.token_id for r in result.rows] == [3, 1, 0, 2]  # B's top-3, then A's dropped
    assert (by_id[3].rank_a, by_id[3].rank_b, by_id[3].rank_change) == (4, 1, 3)
    assert by_id[3].new_in_top_n and not by_id[3].dropped_from_top_n
    assert (by_id[1].rank_a, by_id[1].rank_b, by_id[1].rank_change) == (2, 2, 0)
    assert (by_id[0].rank_a, by_id[0].rank_b, by_id[0].rank_change) == (1, 3, -2)  # ties at 0.10: 3rd
    assert (by_id[2].rank_a, by_id[2].rank_b) == (3, 5)
    assert by_id[2].dropped_from_top_n and not by_id[2].new_in_top_n
    assert by_id[3].prob_a == pytest.approx(0.06) and by_id[3].prob_b == pytest.approx(0.40)
    # Independent numpy reference for both KL directions.
    pa = np.array([0.40, 0.30, 0.20, 0.06, 0.04])
    pb = np.array([0.10, 0.35, 0.05, 0.40, 0.10])
    assert result.kl_b_a == pytest.approx(float(np.sum(pb * np.log(pb / pa))), abs=1e-6)
    assert result.kl_a_b == pytest.approx(float(np.sum(pa * np.log(pa / pb))), abs=1e-6)


def test_compare_uses_raw_distributions_when_a_knob_cut_tokens():
    gen = torch.Generator().manual_seed(6)
    la, lb = torch.randn(2000, generator=gen) * 2, torch.randn(2000, generator=gen) * 2
    s = SamplingSettings(temperature=0.8, top_k=30)
    result = compare(apply(la, s), apply(lb, s), top_n=20)
    assert result.kl_basis == "raw"

    def log_softmax(x):
        x = x.astype(np.float64)
        x = x - x.max()
        return x - np.log(np.exp(x).sum())

    lpa, lpb = log_softmax(la.numpy()), log_softmax(lb.numpy())
    assert result.kl_b_a == pytest.approx(float(np.sum(np.exp(lpb) * (lpb - lpa))), rel=1e-6)
    assert result.kl_a_b == pytest.approx(float(np.sum(np.exp(lpa) * (lpa - lpb))), rel=1e-6)
    assert len(result.rows) >= 20
    for row in result.rows:
        assert (row.rank_a is None) == (row.prob_a == 0.0)
        in_a = row.rank_a is not None and row.rank_a <= 20  # no ties in random floats
        in_b = row.rank_b is not None and row.rank_b <= 20
        assert in_a or in_b
        assert row.new_in_top_n == (in_b and not in_a)
        assert row.dropped_from_top_n == (in_a and not in_b)


def test_compare_same_distribution_is_zero_kl_and_no_changes():
    logits = torch.randn(300, generator=torch.Generator().manual_seed(7))
    d = apply(logits, SamplingSettings(temperature=1.3, top_p=0.9))
    result = compare(d, d, top_n=10)
    assert result.kl_a_b == 0.0 and result.kl_b_a == 0.0
    assert all(r.rank_change == 0 and not r.new_in_top_n and not r.dropped_from_top_n for r in result.rows)
    assert len(result.rows) == min(10, d.n_survivors)


def test_full_gemma_sized_vocabulary_matches_transformers():
    logits = 30 * torch.tanh(torch.randn(262_144, generator=torch.Generator().manual_seed(8)) * 0.1)
    view = LogitsView(logits)
    for s in (SamplingSettings(temperature=0.7, top_p=0.9), SamplingSettings(temperature=1.3, top_k=40_000, top_p=0.95)):
        expected, survivors = hf_pipeline(logits, s)
        dist = view.apply(s)
        assert_probs_close(dist.final_probs, expected)
        assert torch.equal(dist.excluded_by == Exclusion.KEPT, survivors)


def test_view_matches_one_shot_and_does_not_alias_the_callers_tensor():
    logits = torch.randn(700, generator=torch.Generator().manual_seed(9))
    view = LogitsView(logits)
    s = SamplingSettings(temperature=0.9, top_k=100, top_p=0.8)
    before = view.apply(s)
    logits.zero_()  # the caller reuses its buffer
    after = view.apply(s)
    assert torch.equal(before.final_probs, after.final_probs)
    assert torch.equal(after.excluded_by, before.excluded_by)
    assert torch.equal(after.survivor_ids(), torch.nonzero(after.final_probs > 0).squeeze(1))


def test_masked_tokens_never_survive_and_make_kl_infinite_only_where_due():
    base = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    masked = base.clone()
    masked[1] = -math.inf
    for s in (SamplingSettings(), SamplingSettings(top_k=5), SamplingSettings(top_p=0.999)):
        dist = apply(masked, s)
        assert dist.excluded_by[1] == Exclusion.MASKED and dist.final_probs[1] == 0
        assert dist.n_survivors == 4
    a, b = apply(base, SamplingSettings()), apply(masked, SamplingSettings())
    result = compare(a, b, top_n=3)
    assert result.kl_a_b == math.inf  # A puts mass on a token B bans
    p_b = torch.softmax(masked.double(), 0).numpy()
    p_a = torch.softmax(base.double(), 0).numpy()
    support = p_b > 0
    expected = float(np.sum(p_b[support] * np.log(p_b[support] / p_a[support])))
    assert result.kl_b_a == pytest.approx(expected, abs=1e-9)
    assert [r.token_id for r in result.rows] == [0, 2, 3, 1]
    assert result.rows[-1].dropped_from_top_n and result.rows[-1].rank_b is None


def test_sample_from_bare_probabilities_validates_them():
    assert sample(torch.tensor([0.0, 0.0, 1.0, 0.0]), seed=5) == 2
    for bad in (torch.tensor([0.0, 0.0]), torch.tensor([0.5, -0.1]), torch.tensor([[1.0]])):
        with pytest.raises(ValueError, match="probs"):
            sample(bad, seed=0)
