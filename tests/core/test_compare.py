"""`compare`: two SAEs at one hook on the same tokens, against a numpy reference on a toy SAE pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_sae

HOOK = "blocks.2.hook_resid_post"
LINES = ["The Eiffel Tower is located in the city of Paris.", "A quick brown fox jumps over the lazy dog.",
         "Language models predict the next token from the previous tokens.", "The cat sleeps while the dog eats."] * 6


@pytest.fixture
def pair(tmp_path):
    a = make_tiny_sae(64, 128, HOOK, "topk", k=8, seed=11)
    b = make_tiny_sae(64, 256, HOOK, "jumprelu", seed=12)
    with torch.no_grad():  # plant 20 shared directions: A's first 20 latents are B's 100..119
        b.W_dec[100:120] = a.W_dec[:20]
    a.save_model(tmp_path / "a")
    b.save_model(tmp_path / "b")
    (tmp_path / "text.txt").write_text("\n".join(LINES))
    return a, b, tmp_path


def _reference(sae, x: np.ndarray, other: torch.Tensor) -> dict:
    """EV (centred, and without the 3 largest-|x|² dims), L0, dead, dense and decoder matches in numpy."""
    z = sae.encode(torch.from_numpy(x)).detach().numpy()
    x_hat = sae.decode(torch.from_numpy(z)).detach().numpy()
    err, dev = ((x - x_hat) ** 2).sum(0), ((x - x.mean(0)) ** 2).sum(0)
    rest = np.ones(x.shape[1], bool)
    rest[np.argsort(-(x ** 2).sum(0))[:3]] = False
    rate = (z > 0).mean(0)
    a = sae.W_dec.detach().numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    o = other.numpy() / np.linalg.norm(other.numpy(), axis=1, keepdims=True)
    return {"explained_variance": 1 - err.sum() / dev.sum(), "explained_variance_without_massive":
            1 - err[rest].sum() / dev[rest].sum(), "l0": (z > 0).sum(1).mean(), "dead": (rate == 0).mean(),
            "dense": (rate > 0.2).mean(), "matched": int(((a @ o.T).max(1) >= 0.7).sum())}


def test_compare_matches_a_numpy_reference(tiny_session, pair):
    from spectrascope.core.train.evaluate import ce_per_sequence
    from spectrascope.core.views.compare import CompareSpec, build, token_rows

    a, b, folder = pair
    spec = CompareSpec(str(folder / "a"), str(folder / "b"), str(folder / "text.txt"), sequences=6, tokens=16)
    report = build(tiny_session, spec)
    rows, _ = token_rows(tiny_session, spec.text, 6, 16)
    resid = tiny_session.forward(torch.from_numpy(rows), capture=[HOOK], stop_after=HOOK, keep_logits=0).resid[HOOK]
    x = resid[:, 1:].reshape(-1, 64).float().numpy().astype(np.float64).astype(np.float32)
    assert report.n_tokens == x.shape[0] == 6 * 15 and report.n_sequences == 6
    for quality, sae, other in ((report.a, a, b), (report.b, b, a)):
        want = _reference(sae, x, other.W_dec.detach())
        for key in ("explained_variance", "explained_variance_without_massive", "l0", "dead", "dense"):
            assert getattr(quality, key) == pytest.approx(want[key], abs=1e-4), key
        assert quality.matched == want["matched"]
    assert report.a.matched >= 20 and report.b.matched >= 20  # the planted shared directions
    clean = ce_per_sequence(tiny_session, rows)
    diff = ce_per_sequence(tiny_session, rows, b) - clean
    assert report.b.ce_increase == pytest.approx(diff.mean(), abs=1e-6)
    assert report.b.ce_increase_ci95 == pytest.approx(1.96 * diff.std(ddof=1) / np.sqrt(6), abs=1e-6)
    assert report.ce_clean == pytest.approx(clean.mean(), abs=1e-6)
    assert "| explained_variance |" in report.to_markdown()


def test_compare_cli_refuses_before_loading_and_prints_json(tiny_session, pair, monkeypatch, capsys):
    from spectrascope.tui import cli

    _, _, folder = pair
    loads = []
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: loads.append(1) or tiny_session)
    assert cli.main(["compare", str(folder / "a"), str(folder / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err and loads == []  # refused before the model loads
    assert cli.main(["compare", str(folder / "a"), str(folder / "b"), "--text", str(folder / "text.txt"),
                     "--sequences", "4", "--tokens", "12", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["a"]["width"] == 128 and doc["b"]["width"] == 256 and doc["n_tokens"] == 4 * 11
    assert set(doc["a"]) >= {"explained_variance", "explained_variance_without_massive", "ce_increase",
                             "ce_increase_ci95", "l0", "dead", "dense", "matched"}
