"""Prompt-set loaders, per-feature statistics against numpy, batched collection, the on-disk cache."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

from spectrascope.core.analysis import contrast
from spectrascope.core.analysis.contrast import (ContrastSettings, PromptSetError, collect_activations, default_sets,
                                        feature_stats, load_prompts, run_contrast)

# ---------------------------------------------------------------- loaders


def test_load_text_jsonl_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first prompt\n\n  second prompt  \n")
    (tmp_path / "b.jsonl").write_text('{"text": "third"}\n\n{"prompt": "fourth", "x": 1}\n')
    assert load_prompts(tmp_path / "a.txt") == ["first prompt", "second prompt"]
    assert load_prompts(tmp_path / "b.jsonl") == ["third", "fourth"]
    assert load_prompts(tmp_path) == ["first prompt", "second prompt", "third", "fourth"]
    # JSONL content is recognised without the extension too.
    (tmp_path / "c.data").write_text('{"text": "x"}\n')
    assert load_prompts(tmp_path / "c.data") == ["x"]


@pytest.mark.parametrize("content, match", [
    ("", "empty"),
    ("\n  \n", "empty"),
    ('{"text": "ok"}\n{broken\n', r"b\.jsonl:2: not valid JSON"),
    ('{"text": "ok"}\n{"body": "no field"}\n', r":2: .*no string \"text\""),
    ('["a list"]\n', "expected a JSON object"),
])
def test_loader_errors_say_where(tmp_path, content, match):
    f = tmp_path / "b.jsonl"
    f.write_text(content)
    with pytest.raises(PromptSetError, match=match):
        load_prompts(f)


def test_loader_missing_and_empty_folder(tmp_path):
    with pytest.raises(PromptSetError, match="does not exist"):
        load_prompts(tmp_path / "nope.txt")
    with pytest.raises(PromptSetError, match="no .txt or .jsonl"):
        load_prompts(tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PromptSetError, match="not UTF-8"):
        load_prompts(tmp_path / "bad.txt")


LEAK = re.compile(
    r"\b(france|french|paris\w*|lyon|marseille|eiffel|louvre|versailles|napol[eé]on|baguettes?|croissants?|seine"
    r"|loire|normandy|provence|bordeaux|brittany|riviera|corsica|toulouse|macron|gaulle|bastille|champagne"
    r"|gauls?|gallic|bonjour|merci|marianne|élysée|strasbourg|burgundy|alsace|côte d'azur)\b",
    re.IGNORECASE,
)


def test_shipped_sets_are_clean():
    concept_path, neutral_path = default_sets()
    concept, neutral = load_prompts(concept_path), load_prompts(neutral_path)
    assert len(concept) == 200 and len(neutral) == 200
    assert len(set(concept)) == 200 and len(set(neutral)) == 200
    assert not set(concept) & set(neutral)
    leaks = [p for p in neutral if LEAK.search(p)]
    assert leaks == [], leaks
    # Every concept prompt is about France: most name it outright; the rest name a French place or thing.
    assert sum(bool(LEAK.search(p)) for p in concept) >= 150
    # Similar length and style: mean word counts within 25% of each other.
    wc = lambda ps: np.mean([len(p.split()) for p in ps])  # noqa: E731
    assert abs(wc(concept) - wc(neutral)) / wc(concept) < 0.25


# ---------------------------------------------------------------- statistics vs numpy


def reference_stats(acts, is_concept):
    """Means and firing rates by a straight per-feature loop; AUROC from scipy's Mann-Whitney U."""
    from scipy.stats import mannwhitneyu

    rows = []
    for f in range(acts.shape[1]):
        c = [a for a, m in zip(acts[:, f], is_concept) if m]
        n = [a for a, m in zip(acts[:, f], is_concept) if not m]
        mc, mn = sum(c) / len(c), sum(n) / len(n)
        rc, rn = sum(v > 0 for v in c) / len(c), sum(v > 0 for v in n) / len(n)
        auc = mannwhitneyu(c, n).statistic / (len(c) * len(n))
        rows.append((mc, mn, rc, rn, auc, max(0.0, 2 * auc - 1)))
    return np.array(rows)


def test_feature_stats_match_reference():
    rng = np.random.default_rng(0)
    acts = np.maximum(0, rng.normal(size=(40, 30)) - 0.5).astype(np.float32)  # sparse-ish, >= 0
    acts[:, 0] = 0  # dead feature
    acts[:25, 1] = 2.0
    acts[25:, 1] = 0  # exclusive to the concept, always fires
    acts[:2, 2] = 5.0
    acts[2:, 2] = 0  # exclusive but rare
    acts[:, 3] = np.round(acts[:, 3] * 2) / 2  # many ties at several values, not only at 0
    is_concept = np.r_[np.ones(25, bool), np.zeros(15, bool)]
    s = feature_stats(acts, is_concept)
    ref = reference_stats(acts, is_concept)
    got = np.stack([s.mean_concept, s.mean_neutral, s.rate_concept, s.rate_neutral, s.auroc, s.selectivity], 1)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert s.selectivity[0] == 0 and s.selectivity[1] == pytest.approx(1.0)
    # Exclusive but rare: fires on 2 of 25 concept prompts, so it is barely better than chance.
    assert s.selectivity[2] == pytest.approx(2 / 25)
    assert ((s.selectivity >= 0) & (s.selectivity <= 1)).all()
    assert s.ranked(1) == [1]


def test_selectivity_counts_the_neutral_rate_and_cannot_saturate():
    is_concept = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    quarter = np.zeros(200)
    quarter[:25] = 3.0  # a quarter of the concept prompts, never neutral: 1.000 under the old score
    everywhere = np.r_[np.full(100, 5.0), np.full(50, 5.0), np.zeros(50)]  # all concept, half neutral
    s = feature_stats(np.stack([quarter, everywhere], 1), is_concept)
    assert s.selectivity[0] == pytest.approx(0.25) and s.selectivity[1] == pytest.approx(0.5)


def test_ranks_match_scipy_in_chunks():
    from scipy.stats import rankdata

    from spectrascope.core.analysis.contrast import auroc, average_ranks

    x = np.random.default_rng(1).integers(0, 4, size=(30, 50)).astype(float)
    np.testing.assert_array_equal(average_ranks(x), rankdata(x, axis=0))
    is_concept = np.arange(30) < 12
    np.testing.assert_allclose(auroc(x, is_concept, chunk=7), auroc(x, is_concept), rtol=0, atol=1e-12)


def test_ranking_breaks_ties_by_rate_difference():
    is_concept = np.r_[np.ones(4, bool), np.zeros(4, bool)]
    acts = np.zeros((8, 3), np.float32)
    acts[:4, 0] = 1.0
    acts[4:6, 0] = 0.5  # selectivity 1, fires on half the neutral prompts
    acts[:4, 1] = 1.0  # selectivity 1, never neutral: wins the tie
    acts[:, 2] = 1.0  # chance
    assert feature_stats(acts, is_concept).ranked() == [1, 0, 2]


def test_settings_validate_and_round_trip():
    s = ContrastSettings(aggregate="mean", batch_size=4)
    assert ContrastSettings.from_dict(s.to_dict()) == s
    assert ContrastSettings.from_dict({**s.to_dict(), "min_concept_rate": 0.25}) == s  # older session files
    with pytest.raises(ValueError):
        ContrastSettings(aggregate="sum")


# ---------------------------------------------------------------- batching on the tiny model

PROMPTS = [
    "The Eiffel Tower is located in the city of Paris.",
    "France",
    "The capital of France is Paris and the capital of Italy is Rome.",
    "A quick brown fox jumps over the lazy dog while the cat sleeps.",
    "Language models predict",
    "The cat sleeps.",
    "Rome",
]


def test_batched_equals_unbatched(tiny_sae_session):
    from spectrascope.core.engine.session import Request

    s = tiny_sae_session
    fractions = []
    acts, n_tokens = collect_activations(s, PROMPTS, batch_size=3, progress=lambda m, f: fractions.append(f))
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    total = 0
    for i, prompt in enumerate(PROMPTS):
        r = s.run(Request(prompt, logits=False))
        total += len(r.tokens) - 1
        for role in ("coarse", "fine"):
            codes = r.spectra[role].codes[1:].numpy()  # BOS excluded
            np.testing.assert_allclose(acts[role]["max"][i], codes.max(0), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(acts[role]["mean"][i], codes.mean(0), rtol=1e-4, atol=1e-4)
    assert n_tokens == total
    one, _ = collect_activations(s, PROMPTS, batch_size=1)
    np.testing.assert_allclose(one["fine"]["max"], acts["fine"]["max"], rtol=1e-4, atol=1e-4)


def test_encoding_in_token_chunks_is_exact(tiny_sae_session, monkeypatch):
    whole, _ = collect_activations(tiny_sae_session, PROMPTS, batch_size=4)
    monkeypatch.setattr(contrast, "ENCODE_CHUNK_ELEMENTS", 1024 * 5)  # 5 tokens a chunk for the fine SAE
    chunked, _ = collect_activations(tiny_sae_session, PROMPTS, batch_size=4)
    for role in ("coarse", "fine"):
        for kind in ("max", "mean"):
            np.testing.assert_allclose(chunked[role][kind], whole[role][kind], rtol=1e-5, atol=1e-5)


def test_cancel_between_batches(tiny_sae_session):
    from spectrascope.core.engine.session import Cancelled

    cancel = threading.Event()

    def progress(msg, frac):
        cancel.set()  # after the first batch

    with pytest.raises(Cancelled):
        collect_activations(tiny_sae_session, PROMPTS, batch_size=2, cancel=cancel, progress=progress)


def test_needs_saes(tiny_session):
    with pytest.raises(ValueError, match="No SAE"):
        run_contrast(tiny_session, ["a"], ["b"], use_cache=False)


# ---------------------------------------------------------------- cache


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_miss_then_hit(tiny_sae_session, cache_env, monkeypatch):
    concept, neutral = PROMPTS[:3], PROMPTS[3:]
    first = run_contrast(tiny_sae_session, concept, neutral, ContrastSettings(batch_size=4))
    assert not first.cached and contrast.cache_path(first.key).is_file()
    assert list(cache_env.glob("contrast/.*tmp")) == []

    def boom(*a, **k):
        raise AssertionError("a cache hit must not run the model")

    monkeypatch.setattr(contrast, "collect_activations", boom)
    second = run_contrast(tiny_sae_session, concept, neutral, ContrastSettings(aggregate="mean"))
    assert second.cached and second.key == first.key
    np.testing.assert_array_equal(second.acts["fine"]["max"], first.acts["fine"]["max"])
    assert second.settings.aggregate == "mean"  # statistics follow the caller's settings
    np.testing.assert_allclose(second.stats["coarse"].mean_concept,
                               first.acts["coarse"]["mean"][:3].mean(0), rtol=1e-6)
    # Other prompt contents -> another key -> a miss (which here would run the model).
    with pytest.raises(AssertionError, match="cache hit"):
        run_contrast(tiny_sae_session, concept, neutral + ["one more"])


def test_cache_key_depends_on_sae_weights(tiny_sae_session):
    ident = contrast.session_identity(tiny_sae_session, ("coarse", "fine"))
    k1 = contrast.cache_key(ident, ["a"], ["b"])
    assert k1 == contrast.cache_key(contrast.session_identity(tiny_sae_session, ("coarse", "fine")), ["a"], ["b"])
    assert k1 != contrast.cache_key(ident, ["a"], ["c"])
    ident2 = json.loads(json.dumps(ident))
    ident2["saes"]["fine"]["weights"] = "different"
    assert k1 != contrast.cache_key(ident2, ["a"], ["b"])


def test_damaged_cache_file_is_a_miss(tiny_sae_session, cache_env):
    concept, neutral = PROMPTS[:2], PROMPTS[2:4]
    first = run_contrast(tiny_sae_session, concept, neutral)
    contrast.cache_path(first.key).write_bytes(b"not an npz")
    again = run_contrast(tiny_sae_session, concept, neutral)
    assert not again.cached
    assert contrast.load_cached(first.key, ContrastSettings()) is not None  # rewritten


def test_firing_rates_print_the_same_everywhere_at_a_rounding_boundary():
    """97/200 and 61/200 sit on a .5 boundary: a float32 rate printed with :.2f read 0.49 in the pane,
    the float64 one rounded to 4 places read 0.48 in the report. One float64 rate, one formatter."""
    from spectrascope.core.analysis.contrast import percent

    acts = np.zeros((400, 2), np.float32)
    acts[:97, 0] = 1.0  # 97 of the 200 concept prompts
    acts[200:261, 0] = 0.5  # 61 of the 200 neutral ones
    is_concept = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    s = feature_stats(acts, is_concept)
    assert s.rate_concept[0] == 97 / 200 and s.rate_neutral[0] == 61 / 200  # exact, not float32
    assert s.cells(0)["rates"] == "49%/31%" and s.cells(1)["rates"] == "0%/0%"
    assert [percent(x) for x in (0.0, 0.004, 0.005, 0.5, 73 / 150, 1.0)] == ["0%", "0%", "1%", "50%", "49%", "100%"]


# ---------------------------------------------------------------- compact cache (format 2)


def sparse_acts(n: int, f: int, density: float, seed: int) -> np.ndarray:
    """Per-prompt SAE-like activations: mostly 0, the rest positive and heavy-tailed, a few features
    firing more on the first half (the concept prompts) so selectivity has something to rank."""
    rng = np.random.default_rng(seed)
    p = np.full(f, density)
    p[: f // 20] *= 8
    fires = rng.random((n, f)) < p * np.r_[np.full(n // 2, 1.6), np.full(n - n // 2, 0.4)][:, None]
    return np.where(fires, rng.lognormal(0.0, 1.0, (n, f)), 0).astype(np.float32)


@pytest.mark.parametrize("density", [0.003, 0.6])  # CSR at SAE-like density, dense float16 when that is smaller
def test_compact_cache_keeps_the_statistics(density):
    from spectrascope.core.analysis.pairing import pearson
    from scipy.stats import pearsonr

    n, f = 80, 3000
    acts = sparse_acts(n, f, density, seed=1)
    is_concept = np.r_[np.ones(n // 2, bool), np.zeros(n - n // 2, bool)]
    stored, layout = contrast.encode_compact("x", acts)
    assert layout["layout"] == ("csr" if density < 0.1 else "dense") and layout["dtype"] == "float16"
    assert sum(a.nbytes for a in stored.values()) <= acts.nbytes / 2
    back = contrast.decode_compact(stored, "x", layout)
    assert back.dtype == np.float32 and back.shape == acts.shape
    np.testing.assert_array_equal(back != 0, acts != 0)  # firing is exact: no value rounds to 0
    np.testing.assert_allclose(back, acts, rtol=2**-11, atol=0)  # float16 rounding, half an ulp

    dense, compact = feature_stats(acts, is_concept), feature_stats(back, is_concept)
    np.testing.assert_array_equal(compact.rate_concept, dense.rate_concept)
    np.testing.assert_array_equal(compact.rate_neutral, dense.rate_neutral)
    np.testing.assert_allclose(compact.mean_concept, dense.mean_concept, rtol=1e-3)
    np.testing.assert_allclose(compact.mean_neutral, dense.mean_neutral, rtol=1e-3)
    # Rounding is monotone, so AUROC can move only where two close values become a tie: by at most
    # a few of the 1/(n_c n_n) steps on this data.
    np.testing.assert_allclose(compact.selectivity, dense.selectivity, atol=5 / (n // 2) ** 2)
    assert compact.ranked(50) == dense.ranked(50)
    # Pearson correlations (what pairing reads) of a busy feature against all: scipy on the dense arrays.
    anchor = int(np.argmax((acts > 0).sum(0)))
    ref = np.array([pearsonr(acts[:, anchor], acts[:, j])[0] if acts[:, j].std() > 0 else 0.0
                    for j in range(200)])
    np.testing.assert_allclose(pearson(back[:, anchor], back[:, :200]), ref, atol=1e-3)


def test_values_outside_float16_are_kept_as_float32():
    acts = np.zeros((4, 100), np.float32)
    acts[0, 3], acts[1, 7], acts[2, 9] = 1e5, 1e-6, 2.5  # above float16's max; below its normal range
    stored, layout = contrast.encode_compact("x", acts)
    assert layout["dtype"] == "float32"
    np.testing.assert_array_equal(contrast.decode_compact(stored, "x", layout), acts)


def test_cache_file_is_compact_and_reports_its_size(tiny_sae_session, cache_env):
    concept, neutral = PROMPTS[:3], PROMPTS[3:]
    first = run_contrast(tiny_sae_session, concept, neutral)
    path = contrast.cache_path(first.key)
    assert first.cache_bytes == path.stat().st_size
    dense_bytes = sum(a.nbytes for d in first.acts.values() for a in d.values())
    assert first.cache_bytes < dense_bytes
    second = run_contrast(tiny_sae_session, concept, neutral)
    assert second.cached and second.cache_bytes == first.cache_bytes
    for role in first.roles:  # a fresh run shows exactly what a later cache hit shows
        np.testing.assert_array_equal(second.stats[role].selectivity, first.stats[role].selectivity)
        np.testing.assert_array_equal(second.acts[role]["mean"], first.acts[role]["mean"])


def _old_format_file(path, result):
    """A format-1 cache file: dense float32 arrays, as written before the compact format."""
    import io

    arrays = {f"{role}__{kind}": a for role, d in result.acts.items() for kind, a in d.items()}
    arrays["is_concept"] = result.is_concept
    meta = {"format": 1, "key": result.key, "roles": list(result.roles), "info": result.info}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("damage", ["old format", "truncated", "bad csr"])
def test_old_or_damaged_compact_cache_is_recomputed(tiny_sae_session, cache_env, damage):
    concept, neutral = PROMPTS[:3], PROMPTS[3:]
    first = run_contrast(tiny_sae_session, concept, neutral)
    path = contrast.cache_path(first.key)
    if damage == "old format":
        _old_format_file(path, first)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a column index past the SAE's width
        with np.load(path) as z:
            arrays = dict(z)
        name = next(k for k in arrays if k.endswith("__indices"))
        arrays[name] = arrays[name] + 10**6
        np.savez(path.with_suffix(""), **arrays)  # np.savez appends .npz
    assert contrast.load_cached(first.key, ContrastSettings()) is None
    again = run_contrast(tiny_sae_session, concept, neutral)
    assert not again.cached
    hit = contrast.load_cached(first.key, ContrastSettings())  # rewritten in the compact format
    assert hit is not None
    np.testing.assert_array_equal(hit.acts["fine"]["max"], first.acts["fine"]["max"])


def test_old_format_files_are_removed_with_a_message(tiny_sae_session, cache_env):
    """A format-1 file sits under its own (old) key, which no run looks up again: the next cached run
    deletes it and says so; current files stay."""
    concept, neutral = PROMPTS[:3], PROMPTS[3:]
    first = run_contrast(tiny_sae_session, concept, neutral)
    stale = contrast.cache_dir() / "0123456789abcdef01234567.npz"
    _old_format_file(stale, first)
    messages = []
    again = run_contrast(tiny_sae_session, concept, neutral, progress=lambda text, frac: messages.append(text))
    assert again.cached and contrast.cache_path(first.key).is_file()
    assert not stale.exists()
    assert any("removed 1 old-format cache file" in m for m in messages), messages
    messages.clear()
    assert contrast.prune_old_format(lambda text, frac: messages.append(text)) == [] and messages == []


def test_weight_digest_sees_every_element_in_chunks():
    """The sums go a chunk at a time (no whole float32 copy of a 262K SAE): a change to one weight the
    strided sample skips, in the last partial chunk, still changes the digest."""
    import hashlib

    import torch

    def digest(t):
        h = hashlib.sha256()
        contrast._tensor_digest(h, t, sample=4, chunk=7)
        return h.hexdigest()

    t = torch.arange(30, dtype=torch.bfloat16).reshape(5, 6)
    changed = t.clone()
    changed.view(-1)[29] += 1  # stride 7 samples 0, 7, 14, 21, 28: not 29
    assert digest(t) == digest(t.clone()) and digest(t) != digest(changed)
