"""Every headless subcommand's JSON on the tiny SAE session, compared with a recorded copy.

The recordings (tests/golden/cli/*.json) were made before the views refactor (issue 31); a change in
the shape around the engine must leave every number the same. Timing fields are left out (they differ
run to run). Re-record only on purpose: SPECTRASCOPE_RECORD_GOLDEN=1 pytest tests/tui/test_cli_golden.py.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from spectrascope.tui import cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cli"
TIMING = {"seconds", "ms", "elapsed", "wall_s", "time_s", "computed_at", "cached", "cache_key"}  # + run-specific keys

CONCEPT = ["Paris is the capital of France.", "The French eat bread in Paris.", "France has wine and cheese.",
           "The Eiffel Tower is in Paris.", "Lyon is a city in France.", "The capital of France is Paris."]
NEUTRAL = ["The cat sat on the mat.", "A quick brown fox jumps over the dog.", "Language models predict tokens.",
           "The dog sleeps while the cat eats.", "One two three four five six.", "The next token is a word."]

CASES = {
    "probe": ["probe", "The capital of France is", "--top", "5", "--json"],
    "logits": ["logits", "The capital of France is", "--temperature", "0.7", "--top-k", "40", "--top-p", "0.9",
               "--json"],
    "logits_ab": ["logits", "The capital of France is", "--system", "Answer in French.", "--json"],
    "logits_runs": ["logits", "the cat", "--runs", "3", "--steps", "4", "--seed", "1", "--json"],
    "logits_features": ["logits", "the cat", "--steps", "3", "--features", "--json"],
    "spectrum": ["spectrum", "The capital of France is", "--top", "8", "--json"],
    "spectrum_all": ["spectrum", "The capital of France is", "--all-tokens", "--reduce", "mean", "--role", "fine",
                     "--show-dense", "--json"],
    "lens": ["lens", "red green blue", "--position", "2", "--json"],
    "anchor": ["anchor", "What is the capital?", "--system", "You are French.", "--top", "5", "--json"],
    "anchor_navigator": ["anchor", "What is the capital?", "--system", "You are French.", "--system", "Be brief.",
                         "--navigator", "--json"],
    "drift": ["drift", "--system", "Always answer in French.", "--question", "What colour is the sky?",
              "--max-turns", "2", "--json"],
    "sae_info": ["sae-info", "--json"],
    "contrast": ["contrast", "--concept", "{concept}", "--neutral", "{neutral}", "--anchors", "2", "--json"],
    "steer": ["steer", "the cat", "--feature", "coarse:3:2", "--feature", "fine:5:1", "--seeds", "2", "--tokens",
              "3", "--words", "{words}", "--json"],
}


def _strip(value, model: str = ""):
    """The JSON without timing fields, the tiny model's temporary folder as <tiny>, floats at 6 digits."""
    if isinstance(value, str) and model:
        return value.replace(model, "<tiny>")
    if isinstance(value, dict):
        return {k: _strip(v, model) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_strip(v, model) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.6g}")
    return value


def _close(a, b, path="$"):
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), f"{path}: {a!r} vs {b!r}"
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), f"{path}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


@pytest.fixture(scope="module")
def golden_model_dir(tmp_path_factory):
    from tests.conftest import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("golden-model"), "gemma3")


@pytest.fixture
def golden_session(golden_model_dir):
    """A fresh session per case (as `tiny_sae_session` builds it): labels another test computed
    on a shared session would show up in this one's output."""
    from spectrascope.core.engine.session import Session
    from tests.conftest import make_tiny_sae

    session = Session.load(str(golden_model_dir), device="cpu", dtype="float32")
    session.attach_sae("coarse", make_tiny_sae(64, 128, "blocks.2.hook_resid_post", "topk", k=8, seed=1))
    session.attach_sae("fine", make_tiny_sae(64, 1024, "blocks.2.hook_resid_post", "jumprelu", seed=2))
    return session


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_json_matches_recording(name, golden_session, monkeypatch, capsys, tmp_path):
    tiny_sae_session = golden_session
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: tiny_sae_session)
    (tmp_path / "concept.txt").write_text("\n".join(CONCEPT))
    (tmp_path / "neutral.txt").write_text("\n".join(NEUTRAL))
    (tmp_path / "words.txt").write_text("cat\nmat\n")
    files = {n: tmp_path / f"{n}.txt" for n in ("concept", "neutral", "words")}
    argv = [a.format(**files) for a in CASES[name]]
    assert cli.main(argv) == 0
    got = _strip(json.loads(capsys.readouterr().out), tiny_sae_session.model.spec.name)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("SPECTRASCOPE_RECORD_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    _close(got, json.loads(path.read_text()))
