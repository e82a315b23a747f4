"""Find a feature (core/analysis/search/, core/views/find.py): planted labels and planted decoder directions
rank first by text, by-example scores equal a direct computation, always-on features never win."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from spectrascope.core.analysis.search import by_text, index_cache, text_index, words
from spectrascope.core.analysis.search.explanations import read_explanations
from spectrascope.core.engine.labels import FeatureLabels
from spectrascope.core.views import find

from tests.conftest import make_tiny_sae

V, D, F = 4096, 64, 512
NAMED = {" Japan": 10, "Japan": 11, " music": 13, "music": 14, " cook": 15}


def snippet(text: str) -> dict:
    return {"act": 5.0, "text": text}


PLANTED = {
    11: {"promoted": [" Tokyo"], "snippets": [snippet("I flew to[[ Japan]] in May"), snippet("the[[ Japanese]] garden"),
                                              snippet("exports from[[ Japan]] rose")], "max_act": 9.0, "freq": 0.002},
    12: {"promoted": [" the"], "snippets": [snippet("we visited Japan and[[ saw]] it"), snippet("a[[ dog]] ran"),
                                            snippet("the[[ cat]] sat")], "max_act": 4.0, "freq": 0.01},
    20: {"promoted": [" town"], "snippets": [snippet("big[[ cities]] grow"), snippet("the[[ city]] of Lyon"),
                                             snippet("a[[ road]] north")], "max_act": 3.0, "freq": 0.004},
    30: {"promoted": [" cookieparser"], "snippets": [snippet("the[[ x]] y")], "max_act": 1.0, "freq": 0.001},
    31: {"promoted": [" cooking"], "snippets": [snippet("the[[ z]] y")], "max_act": 1.0, "freq": 0.001},
}


class ToySession:
    """The session facts the search reads: a sae-lens SAE with planted decoder rows, planted labels, a
    4096-token unembedding and a tokenizer that knows a few words whole (anything else: two tokens)."""

    def __init__(self, shipped: dict | None = None):
        gen = torch.Generator().manual_seed(0)
        self.W_U = torch.randn(V, D, generator=gen)
        sae = make_tiny_sae(D, F, "blocks.1.hook_resid_post", "topk", k=8, seed=0)
        with torch.no_grad():
            sae.W_dec[40] = self.W_U[NAMED[" music"]] / self.W_U[NAMED[" music"]].norm()  # promotes " music"
            sae.W_dec[42] = 30 * sae.W_dec[40]  # the same direction, 30x the norm: the same z
            sae.W_dec[41] = 50 * sae.W_dec[41]  # a large-norm unrelated feature
        self.saes = {"fine": sae}
        self.sae_specs: dict = {}
        self.labels = {"fine": FeatureLabels(sae=sae, unembed=self.W_U, decode=self.piece,
                                             shipped=dict(PLANTED if shipped is None else shipped))}
        self.model = SimpleNamespace(spec=SimpleNamespace(name="toy"))
        self.sae_errors: dict = {}

    def unembedding(self) -> torch.Tensor:
        return self.W_U

    def decoder_directions(self, role, ids=None):
        w = self.saes[role].W_dec.detach()
        return w if ids is None else w[list(ids)]

    def tokenize(self, text: str, add_bos: bool = True):
        return ([NAMED[text]] if text in NAMED else [1, 2]), 0

    def piece(self, token_id: int) -> str:
        return next((k for k, v in NAMED.items() if v == int(token_id)), f" t{int(token_id)}")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))


def test_words_are_lowercased_and_simple_inflections_cut():
    assert [words.stem(w) for w in ("Cities", "cooking", "Japanese", "boxes", "cats", "Paris", "running")] == [
        "city", "cook", "japan", "box", "cat", "paris", "run"]
    assert words.split_snippet("a [[[French]]] b") == ("French", "a [ ] b")  # as FeatureLabel.marked_tokens reads it
    assert words.query_words("the Japan and the cities") == ["japan", "cities"]


def test_planted_labels_rank_first_and_say_why():
    s = ToySession()
    hits = by_text.find_text(s, "Japan", ("fine",), top=5)
    assert hits[0].feature == 11 and hits[0].matches[0].field == "fires on" and hits[0].matches[0].value == 1.0
    assert 'fires on "japan" 100%' in hits[0].why and hits[0].label == "fires on: Japan · Japanese"
    context = next(h for h in by_text.find_text(s, "Japan", ("fine",), top=50) if h.feature == 12)
    assert context.score < hits[0].score and context.matches[0].field == "context"  # in its context only: below
    assert by_text.find_text(s, "Japanese", ("fine",), top=1)[0].feature == 11  # japanese -> japan
    assert by_text.find_text(s, "city", ("fine",), top=1)[0].feature == 20  # cities -> city
    assert by_text.find_text(s, "CITIES", ("fine",), top=1)[0].feature == 20


def test_a_rare_prefix_match_counts_less_than_the_word_itself():
    hits = by_text.find_text(ToySession(), "cook", ("fine",), top=5)
    by_feature = {h.feature: h for h in hits}
    assert by_feature[31].score == pytest.approx(2 * by_feature[30].score, rel=1e-4)  # cooking: exact stem
    assert by_feature[30].matches[0].term == "cookieparser"


def test_a_planted_direction_is_found_through_the_unembedding_and_norm_does_not_win():
    s = ToySession()
    hits = by_text.find_text(s, "music", ("fine",), top=5)
    assert {hits[0].feature, hits[1].feature} == {40, 42}  # no label says music: the decoder direction does
    assert hits[0].score == pytest.approx(hits[1].score, rel=1e-4)  # 30x the norm, the same standardised z
    assert hits[0].matches[0].field == "promotes (z)" and hits[0].matches[0].term in (" music", "music")
    assert 41 not in [h.feature for h in hits]  # large norm alone does not match anything


def test_the_standardised_score_equals_a_direct_computation():
    s = ToySession()
    index = index_cache.index_for(s, "fine")
    tokens = [NAMED[" music"], NAMED[" Japan"], 7]
    z = index.promoter.z(s.decoder_directions("fine"), s.W_U, tokens)
    logits = (s.W_U.double() @ s.decoder_directions("fine").double().T).numpy()  # (V, F)
    want = (logits[tokens] - logits.mean(axis=0)) / logits.std(axis=0)  # per feature over the vocabulary
    np.testing.assert_allclose(z, want.T, rtol=2e-3, atol=2e-3)
    assert index.promoter.z_top == pytest.approx(np.sqrt(2 * np.log(V)))


def test_neuronpedia_explanations_become_searchable(tmp_path):
    export = [{"modelId": "toy", "layer": "1-res", "index": "50", "description": "recipes and cooking steps",
               "explanationModelName": "gpt-4o-mini"},
              {"modelId": "toy", "layer": "1-res", "index": 50, "description": "kitchen instructions"}]
    path = tmp_path / "explanations.json"
    path.write_text(json.dumps(export))
    s = ToySession()
    report = find.build(s, find.FindSpec("cooking", "fine", 3, labels_file=str(path)))
    assert report.hits[0].feature == 50 and report.hits[0].label == "recipes and cooking steps | kitchen instructions"
    assert report.hits[0].matches[0].field == "explanation"
    lines = tmp_path / "explanations.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in export))
    assert read_explanations(lines).descriptions == {50: "recipes and cooking steps | kitchen instructions"}
    with pytest.raises(ValueError, match="which SAE|Which SAE"):
        find.explanations_for(s, find.FindSpec("x", "both", labels_file=str(path)))
    bad = tmp_path / "bad.json"
    bad.write_text('[{"description": "no index"}]')
    with pytest.raises(ValueError, match="index"):
        read_explanations(bad)


def test_the_index_is_cached_on_disk_keyed_by_the_labels(tmp_path, monkeypatch):
    s = ToySession()
    first = by_text.find_text(s, "Japan", ("fine",), top=3)
    files = list((tmp_path / "cache" / "search").glob("*.npz"))
    assert len(files) == 1
    index_cache._memory.clear()
    monkeypatch.setattr(text_index.TextIndex, "build", lambda *a: pytest.fail("rebuilt instead of read from disk"))
    assert by_text.find_text(s, "Japan", ("fine",), top=3) == first
    other = ToySession(shipped={**PLANTED, 99: PLANTED[11]})  # other labels: another file
    assert index_cache.cache_path(other, "fine", None) != index_cache.cache_path(s, "fine", None)


def test_nothing_to_find_is_one_clear_error():
    with pytest.raises(ValueError, match="Nothing to search"):
        by_text.find_text(ToySession(), "the of", ("fine",))
    with pytest.raises(ValueError, match="Nothing to find"):
        find.FindSpec("")
    with pytest.raises(ValueError, match="role"):
        find.FindSpec("x", role="medium")


# ---- by example, through Session.run on the UI test fake ------------------------------------------------
def fake_with_stats():
    """The fake session with labels stats for its coarse SAE: max_act 2 everywhere (freq 0.01)."""
    from tests.tui.fake_session import fake_with_saes

    session = fake_with_saes()
    session.labels["coarse"].shipped = {f: {"promoted": [], "snippets": [], "max_act": 2.0, "freq": 0.01}
                                        for f in range(64)}
    return session


def test_by_example_scores_equal_the_direct_computation_and_always_on_never_wins():
    from spectrascope.core.engine.values import Request

    session = fake_with_stats()
    prompt = "the capital of France is"
    codes = session.run(Request(prompt)).spectra["coarse"].codes  # (T, F)
    positions = (2, 3)
    act = codes[list(positions)].max(0).values.numpy()  # the strongest over the chosen tokens
    strongest, weak = int(act.argmax()), int(np.flatnonzero(act > 0)[np.argmin(act[act > 0])])
    assert strongest != weak
    shipped = session.labels["coarse"].shipped
    shipped[strongest]["freq"] = 0.5  # always on: must not win, whatever its activation
    shipped[weak]["max_act"] = act[weak] / 10  # 10x its usual max here: must rank first
    report = find.build(session, find.FindSpec(example=prompt, role="coarse", top=10, positions=positions))
    assert report.mode == "example" and report.positions == positions
    assert report.hits[0].feature == weak and report.hits[0].score == pytest.approx(10, rel=1e-4)
    assert strongest not in [h.feature for h in report.hits]
    for h in report.hits:  # every score is the strongest activation over the positions / the labels' max_act
        assert h.score == pytest.approx(act[h.feature] / shipped[h.feature]["max_act"], rel=1e-3)
        assert h.matches[0].value == pytest.approx(act[h.feature], rel=1e-3)
        peak = positions[int(codes[list(positions), h.feature].argmax())]
        assert h.matches[0].term.endswith(f"(token {peak})")  # why: the token where it peaks
    assert [h.score for h in report.hits] == sorted((h.score for h in report.hits), reverse=True)


def test_by_example_without_stats_measures_on_the_calibration_text_and_reads_every_token_but_bos():
    from tests.tui.fake_session import fake_with_saes

    session = fake_with_saes()
    report = find.build(session, find.FindSpec(example="Paris is in France", role="fine", top=5))
    assert report.positions == (1, 2, 3, 4)  # BOS left out
    assert report.hits and all("calibration text" in h.why for h in report.hits)
    with pytest.raises(ValueError, match="outside"):
        find.build(session, find.FindSpec(example="Paris", positions=(9,)))


def test_report_round_trips_and_renders_markdown():
    s = ToySession()
    report = find.build(s, find.FindSpec("Japan", "fine", 3))
    assert find.FindReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    md = report.to_markdown()
    assert "| 1 | fine | 11 |" in md and 'fires on "japan" 100%' in md
