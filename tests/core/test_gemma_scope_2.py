"""Gemma Scope 2 (Gemma 3 SAEs, params.safetensors) from a local Hugging Face cache, with sockets blocked:
every id form and the folder form load offline (sae-lens' own Gemma 3 loader makes HTTP range requests)."""

from __future__ import annotations

import socket

import pytest
import torch

RELEASE = "gemma-scope-2-270m-pt-res"
REPO = "google/gemma-scope-2-270m-pt"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network call was made")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _cache_with(tmp_path, monkeypatch, path: str, d_in: int = 8, d_sae: int = 16) -> tuple:
    """A HF cache holding REPO's `path`/params.safetensors with random weights (Gemma Scope 2 key names)."""
    from safetensors.torch import save_file

    repo = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    folder = repo / "snapshots" / "rev1" / path
    folder.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev1")
    gen = torch.Generator().manual_seed(0)
    params = {"w_enc": torch.randn(d_in, d_sae, generator=gen), "w_dec": torch.randn(d_sae, d_in, generator=gen),
              "b_enc": torch.randn(d_sae, generator=gen), "b_dec": torch.randn(d_in, generator=gen),
              "threshold": torch.rand(d_sae, generator=gen)}
    save_file(params, str(folder / "params.safetensors"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return folder, params


def test_release_id_loads_from_the_cache_offline(tmp_path, monkeypatch, no_network):
    from spectrascope.core.engine.saes import cached_releases, load_sae, parse_sae_spec, sae_cached

    folder, params = _cache_with(tmp_path, monkeypatch, "resid_post/layer_9_width_16k_l0_medium")
    spec = parse_sae_spec(f"{RELEASE}/layer_9_width_16k_l0_medium")
    assert spec.kind == "pretrained" and sae_cached(spec)
    sae = load_sae(spec)
    assert sae.cfg.metadata.hook_name == "blocks.9.hook_resid_post"
    assert sae.cfg.metadata.model_name == "google/gemma-3-270m"
    torch.testing.assert_close(sae.W_enc.detach(), params["w_enc"])
    torch.testing.assert_close(sae.W_dec.detach(), params["w_dec"])
    # JumpReLU as Gemma Scope defines it: z = relu(x W_enc + b_enc) where it clears the threshold
    x = torch.randn(3, 8)
    pre = x @ params["w_enc"] + params["b_enc"]
    want = torch.where(pre > params["threshold"], pre, torch.zeros(()))
    torch.testing.assert_close(sae.encode(x), torch.relu(want))
    listed = [c for c in cached_releases() if c["release"] == RELEASE]
    assert listed == [{"release": RELEASE, "sae_id": "layer_9_width_16k_l0_medium",
                       "spec": f"{RELEASE}/layer_9_width_16k_l0_medium", "layer": "9", "width": "16k",
                       "l0": "medium"}]


def test_folder_form_reads_its_layer_from_the_name(tmp_path, monkeypatch, no_network):
    from spectrascope.core.engine.saes import load_sae, parse_sae_spec

    folder, _ = _cache_with(tmp_path, monkeypatch, "resid_post/layer_9_width_16k_l0_medium")
    spec = parse_sae_spec(str(folder))
    assert spec.kind == "gemma_scope_folder" and spec.hook_name == "blocks.9.hook_resid_post"
    assert load_sae(spec).cfg.d_sae == 16


def test_missing_or_non_residual_sae_says_what_to_type(tmp_path, monkeypatch, no_network):
    from spectrascope.core.engine.saes import SAEUnavailable, load_sae, parse_sae_spec

    _cache_with(tmp_path, monkeypatch, "resid_post/layer_9_width_16k_l0_medium")
    with pytest.raises(SAEUnavailable, match=r"hf download google/gemma-scope-2-270m-pt .*--sae ROLE="):
        load_sae(parse_sae_spec(f"{RELEASE}/layer_12_width_262k_l0_medium"))
    with pytest.raises(SAEUnavailable, match="not a residual-stream SAE"):
        load_sae(parse_sae_spec("gemma-scope-2-270m-pt-mlp/layer_9_width_16k_l0_medium"))
    mlp, _ = _cache_with(tmp_path / "mlp", monkeypatch, "mlp_out/layer_9_width_16k_l0_medium")
    with pytest.raises(ValueError, match="PATH@LAYER"):
        parse_sae_spec(str(mlp))


def test_neuronpedia_link_comes_from_the_registry():
    from spectrascope.core.engine.saes import neuronpedia_id, parse_sae_spec

    assert neuronpedia_id(parse_sae_spec(f"{RELEASE}/layer_12_width_16k_l0_medium")) == (
        "gemma-3-270m", "12-gemmascope-2-res-16k")
    assert neuronpedia_id(parse_sae_spec(f"{RELEASE}/layer_12_width_16k_l0_big")) is None  # no page


def test_saes_lists_the_registry_for_a_model_and_marks_what_is_cached(tmp_path, monkeypatch, no_network, capsys):
    import json

    from spectrascope.tui.cli import main

    _cache_with(tmp_path, monkeypatch, "resid_post/layer_9_width_16k_l0_medium")
    assert main(["saes", "--for", "gemma-3-270m", "--json"]) == 0  # the embedded model is Google's 270M
    doc = json.loads(capsys.readouterr().out)["for_model"]
    assert doc["model"] == "google/gemma-3-270m"
    releases = {r["release"]: r for r in doc["releases"]}
    assert {RELEASE, f"{RELEASE}-all"} <= set(releases)
    saes = {s["sae_id"]: s for s in releases[RELEASE]["saes"]}
    assert len(saes) == 52 and [i for i, s in saes.items() if s["cached"]] == ["layer_9_width_16k_l0_medium"]
    assert saes["layer_12_width_16k_l0_medium"]["neuronpedia"] == "gemma-3-270m/12-gemmascope-2-res-16k"
    assert saes["layer_9_width_262k_l0_small"] == {"sae_id": "layer_9_width_262k_l0_small", "layer": "9",
                                                  "width": "262k", "l0": "small", "cached": False,
                                                  "neuronpedia": None}
    assert main(["saes", "--for", "gemma-3-270m"]) == 0
    assert f"✓ {RELEASE}/layer_9_width_16k_l0_medium" in capsys.readouterr().out
