"""Labels v2: the top contexts' firing-token lemma, its share (consistency), density; mixed labels; always-on
latents out of the contrast rankings; the report's table of the most selective fine features."""

import json

import numpy as np
import pytest
from spectrascope.core.engine.labels import FeatureLabel, FeatureLabels, lemma


def snippets(*tokens: str) -> tuple[tuple[float, str], ...]:
    """Top snippets, strongest first, each with its firing token marked in a context."""
    return tuple((10.0 - i, f"some words before[[{t}]] and after") for i, t in enumerate(tokens))


def test_consistency_matches_a_hand_count():
    # Hand count: lemmas paris, paris, paris (possessive), london, city, city -> paris 3 of 6.
    label = FeatureLabel(1, (), snippets(" Paris", " paris", " Paris's", " London", " cities", " city"), freq=0.0012)
    assert [lemma(t) for t in (" Paris's", " cities", " Japanese", "\n")] == ["paris", "city", "japan", "↵"]
    form, share, n = label.consistency()
    assert (form, n) == ("Paris", 6) and share == pytest.approx(3 / 6)
    assert label.text() == "mixed: Paris · paris · Paris's · London (3/6 · 0.12% of tokens)"  # 3/6 is not most
    # 4 of 5 on one lemma: a named label with its count and density
    named = FeatureLabel(2, (), snippets(" cities", " City", " city", " town", " cities"), freq=0.25)
    assert named.consistency() == ("cities", pytest.approx(0.8), 5)
    assert named.text() == "fires on: cities (4/5 · 25% of tokens)"


def test_a_tie_goes_to_the_lemma_with_more_activation():
    label = FeatureLabel(3, (), ((1.0, "a[[ cat]]"), (9.0, "a[[ dog]]"), (8.0, "a[[ dogs]]"), (2.0, "a[[ cats]]")))
    assert label.consistency()[:2] == ("dog", 0.5)


def test_mixed_labels_say_mixed_and_are_never_blank():
    mixed = FeatureLabel(4, (" x",), snippets(" the", ",", " of"), freq=0.3)
    assert mixed.text() == "mixed: the · , · of (1/3 · 30% of tokens)"
    blank = FeatureLabel(5, (" x",), snippets("\n", " ", "\n"))  # whitespace tokens: the old label was "fires on: "
    assert blank.short() == "fires on: "
    assert blank.text() == "fires on: ↵ (2/3)" and blank.consistency()[2] == 3
    no_snippets = FeatureLabel(6, (" Paris", " France"))
    assert no_snippets.consistency() is None and no_snippets.text() == "Paris · France"
    from spectrascope.core.engine.labels import density_text

    assert [density_text(f) for f in (1.0, 0.254, 0.0123, 0.00096, 2e-7, 0.0)] == [
        "100% of tokens", "25% of tokens", "1.2% of tokens", "0.096% of tokens", "2.0e-05% of tokens", "0% of tokens"]


def test_contrast_report_labels_its_most_selective_fine_features(tiny_sae_session, tmp_path, monkeypatch):
    """Every fine feature the report lists gets a label (top_fine were blank), a shipped one in v2 form,
    and the Markdown has the table."""
    from spectrascope.core.analysis import pairing

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["The Eiffel Tower is in Paris.", "France has cheese.", "Paris is the capital of France."]
    neutral = ["A quick brown fox.", "The cat sleeps.", "Language models predict the next token."]
    first = pairing.analyse(tiny_sae_session, concept, neutral, labels=False)
    top = first.contrast.stats["fine"].ranked(3, "out")
    folder = tmp_path / "fine-sae"
    folder.mkdir()
    latents = [{"id": f, "promoted": [" x"], "freq": 0.01,
                "snippets": [{"act": 3.0, "text": "in[[ Paris]] now"}, {"act": 2.0, "text": "to[[ paris]]"},
                             {"act": 1.0, "text": "a[[ cat]]"}]} for f in top]
    (folder / "labels.json").write_text(json.dumps({"latents": latents}))
    shipped = FeatureLabels.for_sae(tiny_sae_session.saes["fine"], tiny_sae_session, folder)
    monkeypatch.setitem(tiny_sae_session.labels, "fine", shipped)
    res = pairing.analyse(tiny_sae_session, concept, neutral)
    d = pairing.to_dict(res)
    assert d["top_fine"] and all(r["label"] for r in d["top_fine"])  # never blank
    assert {r["feature"]: r["label"] for r in d["top_fine"]}[top[0]] == "fires on: Paris (2/3 · 1% of tokens)"
    md = pairing.to_markdown(res)
    assert "## Most selective fine features" in md
    assert f"| {top[0]} |" in md.split("## Most selective fine features")[1]


def test_always_on_latents_are_left_out_of_rankings_and_anchor_choice():
    from spectrascope.core.analysis.contrast import feature_stats
    from spectrascope.core.stats.permutation import top_anchors

    rng = np.random.default_rng(0)
    is_concept = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    acts = np.where(rng.random((40, 6)) < 0.3, rng.random((40, 6)), 0.0)
    acts[:, 0] = np.where(is_concept, 5.0, 1.0)  # fires on every prompt, more on concept: selectivity 1
    acts[:20, 1] = 2.0  # a real concept feature: fires on the concept prompts only
    acts[:37, 2] = np.where(is_concept[:37], 3.0, 0.5)  # fires on 37 of 40 (92.5%): always on, selective
    stats = feature_stats(acts, is_concept)
    assert stats.always_on.tolist() == [True, False, True, False, False, False]
    assert stats.ranked(3, "in") == [1, 2, 0]  # the old ranking: both always-on latents among the top 3
    assert stats.ranked(2, "out")[0] == 1 and 0 not in stats.ranked(None, "out") and 2 not in stats.ranked(None, "out")
    assert stats.ranked(None, "only") == [2, 0]  # by selectivity, ties by r_c - r_n
    # the permutation test's anchor choice ranks as the report does, on the real labels too
    assert top_anchors(acts, is_concept[None], 3)[0].tolist() == stats.ranked(3, "out")
