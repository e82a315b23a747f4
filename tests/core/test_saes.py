"""SAE loading: Gemma Scope folders vs a hand-written numpy JumpReLU, offline errors, compatibility."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from spectrascope.core.engine import saes
from spectrascope.core.engine.saes import (PRESETS, SAEIncompatible, SAESpec, SAEUnavailable, check_compatible,
                                    load_sae)


def _params(d=16, n=48, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W_enc": rng.normal(size=(d, n)).astype(np.float32) * 0.3,
        "W_dec": rng.normal(size=(n, d)).astype(np.float32) * 0.3,
        "b_enc": rng.normal(size=(n,)).astype(np.float32) * 0.1,
        "b_dec": rng.normal(size=(d,)).astype(np.float32) * 0.1,
        "threshold": np.abs(rng.normal(size=(n,))).astype(np.float32) * 0.5,
    }


def _numpy_jumprelu(p, x):
    pre = x @ p["W_enc"] + p["b_enc"]  # Gemma Scope: no b_dec subtraction on the input
    z = np.where(pre > p["threshold"], np.maximum(pre, 0), 0.0)
    return z, z @ p["W_dec"] + p["b_dec"]


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_gemma_scope_folder_matches_numpy(tmp_path, fmt):
    p = _params()
    if fmt == "npz":
        np.savez(tmp_path / "params.npz", **p)
    else:
        from safetensors.numpy import save_file
        save_file(p, str(tmp_path / "params.safetensors"))
    sae = load_sae(SAESpec("gemma_scope_folder", path=str(tmp_path), hook_name="blocks.3.hook_resid_post"))
    x = np.random.default_rng(1).normal(size=(32, 16)).astype(np.float32)
    z_ref, rec_ref = _numpy_jumprelu(p, x)
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(x)).numpy()
        rec = sae.decode(torch.from_numpy(z)).numpy()
    assert (z_ref > 0).sum() > 0 and (z_ref == 0).sum() > 0  # the threshold is exercised
    np.testing.assert_allclose(z, z_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec, rec_ref, rtol=1e-5, atol=1e-5)
    assert sae.cfg.metadata.hook_name == "blocks.3.hook_resid_post"


def test_gemma_scope_folder_missing_keys(tmp_path):
    p = _params()
    del p["threshold"]
    np.savez(tmp_path / "params.npz", **p)
    with pytest.raises(ValueError, match="threshold"):
        load_sae(SAESpec("gemma_scope_folder", path=str(tmp_path)))


def test_pretrained_missing_offline_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(SAEUnavailable) as ei:
        load_sae("gemma-scope-2b-16k")
    msg = str(ei.value)
    assert "gemma-scope-2b-pt-res-canonical" in msg and "layer_12/width_16k/canonical" in msg
    assert "hf download google/gemma-scope-2b-pt-res" in msg and "HF_HOME" in msg


def test_pretrained_cached_loads_from_cache(tmp_path, monkeypatch):
    """A params.npz already in the HF cache loads with no network and the release's metadata."""
    p = _params(d=2304, n=16)
    blob = tmp_path / "params.npz"
    np.savez(blob, **p)
    monkeypatch.setattr(saes, "_hub_file_in_cache", lambda repo, fn: str(blob) if fn.endswith("params.npz") else None)
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    sae = load_sae("gemma-scope-2b-16k")
    assert sae.cfg.metadata.hook_name == "blocks.12.hook_resid_post"
    assert sae.cfg.d_in == 2304
    check_compatible(sae, 2304, "blocks.12.hook_resid_post")


def test_check_compatible_errors(tmp_path):
    np.savez(tmp_path / "params.npz", **_params())
    sae = load_sae(SAESpec("gemma_scope_folder", path=str(tmp_path), hook_name="blocks.9.hook_resid_post"))
    check_compatible(sae, 16, "blocks.9.hook_resid_post")
    with pytest.raises(SAEIncompatible, match="d_in=16.*640"):
        check_compatible(sae, 640)
    with pytest.raises(SAEIncompatible, match="blocks.9.hook_resid_post.*blocks.12"):
        check_compatible(sae, 16, "blocks.12.hook_resid_post")


def test_spec_roundtrip_and_validation():
    for spec in PRESETS.values():
        assert SAESpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        SAESpec("pretrained", release="x")
    with pytest.raises(ValueError):
        SAESpec("bogus", name="x")
    assert PRESETS["gemma-scope-2b-262k"].sae_id == "layer_12/width_262k/canonical"


def test_embedded_missing_is_clear(monkeypatch, tmp_path):
    monkeypatch.setattr(saes, "SAES_DIR", tmp_path)
    with pytest.raises(SAEUnavailable, match="python -m spectrascope.core.train"):
        load_sae("embedded-coarse")


def test_gemma_scope_folder_loads_in_the_asked_dtype(tmp_path):
    p = _params()
    np.savez(tmp_path / "params.npz", **p)
    spec = SAESpec("gemma_scope_folder", path=str(tmp_path), hook_name="blocks.3.hook_resid_post")
    sae = load_sae(spec, dtype="bfloat16")
    assert {t.dtype for t in sae.state_dict().values()} == {torch.bfloat16}
    assert sae.cfg.dtype == "bfloat16"
    x = np.random.default_rng(1).normal(size=(32, 16)).astype(np.float32)
    z_ref, _ = _numpy_jumprelu(p, x)
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(x).bfloat16()).float().numpy()
    agree = ((z > 0) == (z_ref > 0)).mean()  # bf16 moves a few pre-activations across the threshold
    assert agree > 0.97
    np.testing.assert_allclose(z[(z > 0) & (z_ref > 0)], z_ref[(z > 0) & (z_ref > 0)], rtol=0.05, atol=0.05)


def test_sessions_load_saes_in_the_models_dtype_unless_asked(tmp_path_factory):
    from spectrascope.core.engine.session import Request, Session
    from tests.conftest import build_tiny_model_dir

    folder = tmp_path_factory.mktemp("sae-dtype")
    np.savez(folder / "params.npz", **_params(d=64, n=96))
    model = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bf16"), "gemma3")
    spec = SAESpec("gemma_scope_folder", path=str(folder), hook_name="blocks.2.hook_resid_post")
    session = Session.load(str(model), device="cpu", dtype="bfloat16", saes=[("coarse", spec)])
    assert session.sae_errors == {} and session.saes["coarse"].W_dec.dtype == torch.bfloat16
    result = session.run(Request("The capital of France"))  # codes, labels and fidelity in bf16
    assert result.spectra["coarse"].codes.dtype == torch.float32 and result.spectra["coarse"].n_tokens > 1
    assert session.labels["coarse"].get(0).promoted
    session.load_saes([("coarse", spec)], dtype="float32")
    assert session.saes["coarse"].W_dec.dtype == torch.float32


# ---------------------------------------------------------------- --sae ROLE=SPEC

def _gemma_scope_folder(root, rel="gemma-scope-2b-pt-res/layer_2/width_16k/average_l0_82", d=64, n=96):
    folder = root / rel
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **_params(d=d, n=n))
    return folder


def test_spec_forms_preset_release_and_folders(tmp_path):
    from spectrascope.core.engine.saes import parse_role_spec, parse_sae_spec
    from tests.conftest import make_tiny_sae

    assert parse_sae_spec("gemma-scope-2b-16k") == PRESETS["gemma-scope-2b-16k"]
    seed = parse_sae_spec("gemma-scope-2b-pt-res/layer_12/width_262k/average_l0_121")  # the seed's own id
    assert (seed.kind, seed.release, seed.sae_id) == ("pretrained", "gemma-scope-2b-pt-res",
                                                      "layer_12/width_262k/average_l0_121")
    scope = _gemma_scope_folder(tmp_path)  # hook from the layer_N part of the path
    assert parse_sae_spec(str(scope)) == SAESpec("gemma_scope_folder", path=str(scope), hook_name="blocks.2.hook_resid_post")
    assert parse_sae_spec(f"{scope}@3").hook_name == "blocks.3.hook_resid_post"  # or given
    assert parse_sae_spec(f"{scope}@blocks.1.hook_resid_post").hook_name == "blocks.1.hook_resid_post"
    lens = tmp_path / "my-sae"
    make_tiny_sae(64, 32, "blocks.1.hook_resid_post").save_model(str(lens))
    assert parse_sae_spec(str(lens)) == SAESpec("local", path=str(lens.resolve()))
    assert parse_role_spec(f"fine={lens}") == ("fine", SAESpec("local", path=str(lens.resolve())))


@pytest.mark.parametrize("text, message", [
    ("gemma-scope-2b-pt-ress/layer_12/width_16k/average_l0_82", "did you mean gemma-scope-2b-pt-res"),
    ("gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_83", "close: .*layer_12/width_16k/average_l0_82"),
    ("/nowhere/sae", "does not exist"),
    ("no-such-preset", "not a preset"),
])
def test_spec_errors_say_what_is_wrong(text, message):
    from spectrascope.core.engine.saes import parse_sae_spec

    with pytest.raises(ValueError, match=message):
        parse_sae_spec(text)


def test_folder_without_a_layer_needs_its_hook(tmp_path):
    from spectrascope.core.engine.saes import parse_role_spec, parse_sae_spec

    bare = _gemma_scope_folder(tmp_path, "downloaded")
    with pytest.raises(ValueError, match="PATH@LAYER"):
        parse_sae_spec(str(bare))
    att = _gemma_scope_folder(tmp_path, "gemma-scope-2b-pt-att/layer_2/width_16k/average_l0_82")
    with pytest.raises(ValueError, match="PATH@LAYER"):  # attention SAEs do not read the residual
        parse_sae_spec(str(att))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="neither cfg.json"):
        parse_sae_spec(str(empty))
    with pytest.raises(ValueError, match="ROLE one of coarse, fine"):
        parse_role_spec(f"middle={bare}@2")


def test_mismatched_saes_are_named_with_the_model(tiny_session, tmp_path):
    from spectrascope.core.engine.saes import parse_sae_spec

    narrow = parse_sae_spec(f"{_gemma_scope_folder(tmp_path, 'narrow/layer_2', d=16)}")
    deep = parse_sae_spec(f"{_gemma_scope_folder(tmp_path, 'deep/layer_2')}@40")
    tiny_session.load_saes([("coarse", narrow), ("fine", deep)])
    try:
        assert "d_in=16" in tiny_session.sae_errors["coarse"] and "width is 64" in tiny_session.sae_errors["coarse"]
        assert narrow.label in tiny_session.sae_errors["coarse"]
        assert "blocks.40.hook_resid_post" in tiny_session.sae_errors["fine"]
        assert "not a layer" in tiny_session.sae_errors["fine"]
    finally:
        tiny_session.sae_errors.clear()


def test_cached_releases_lists_what_the_local_hf_cache_holds(tmp_path, capsys):
    from spectrascope.core.engine.saes import PRESETS, cached_releases

    repo = tmp_path / "models--google--gemma-scope-2b-pt-res"
    folder = repo / "snapshots" / "abc123" / "layer_12" / "width_16k" / "average_l0_82"
    folder.mkdir(parents=True)
    (folder / "params.npz").write_bytes(b"x")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    found = cached_releases(("gemma-scope-2b-pt-res",), cache_dir=str(tmp_path))
    assert found == [{"release": "gemma-scope-2b-pt-res", "sae_id": "layer_12/width_16k/average_l0_82",
                      "spec": "gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82", "layer": "12",
                      "width": "16k", "l0": "82"}]
    assert cached_releases(("gemma-scope-2b-pt-res",), cache_dir=str(tmp_path / "empty")) == []
    assert PRESETS["gemma-scope-2b-16k-l0-82"].sae_id == "layer_12/width_16k/average_l0_82"
    from spectrascope.tui.cli import main

    assert main(["saes"]) == 0
    assert "gemma-scope-2b-262k-l0-121" in capsys.readouterr().out


def test_neuronpedia_ids_come_from_sae_lens_release_list(tmp_path):
    """Read from sae-lens' pretrained_saes.yaml: the canonical id, an L0 id with the same files,
    and a folder in the HF cache layout all get the page; a shipped SAE or a bare folder none."""
    import yaml
    from importlib.resources import files

    from spectrascope.core.engine.saes import neuronpedia_id

    text = files("sae_lens").joinpath("pretrained_saes.yaml").read_text()
    canonical = {e["path"]: e["neuronpedia"] for e in yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                 ["gemma-scope-2b-pt-res-canonical"]["saes"] if e.get("neuronpedia")}
    want = tuple(canonical["layer_12/width_262k/average_l0_121"].split("/", 1))
    assert want == ("gemma-2-2b", "12-gemmascope-res-262k")
    assert neuronpedia_id(PRESETS["gemma-scope-2b-262k"]) == want
    assert neuronpedia_id(PRESETS["gemma-scope-2b-262k-l0-121"]) == want  # no id of its own in the list
    cached = tmp_path / "models--google--gemma-scope-2b-pt-res/snapshots/r1/layer_12/width_262k/average_l0_121"
    assert neuronpedia_id(SAESpec("gemma_scope_folder", path=str(cached), hook_name="blocks.12.hook_resid_post")) == want
    assert neuronpedia_id(SAESpec("gemma_scope_folder", path=str(tmp_path / "layer_12"))) is None
    assert neuronpedia_id(PRESETS["embedded-fine"]) is None and neuronpedia_id(None) is None


def test_sae_cached_checks_the_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from spectrascope.core.engine.saes import sae_cached

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert not sae_cached(PRESETS["gemma-scope-2b-16k"])
    repo = tmp_path / "models--google--gemma-scope-2b-pt-res"
    (repo / "snapshots/r/layer_12/width_16k/average_l0_82").mkdir(parents=True)
    (repo / "snapshots/r/layer_12/width_16k/average_l0_82/params.npz").write_bytes(b"x")
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text("r")
    assert sae_cached(PRESETS["gemma-scope-2b-16k"]) and sae_cached(PRESETS["gemma-scope-2b-16k-l0-82"])
    assert not sae_cached(PRESETS["gemma-scope-2b-262k"])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gemma_scope_npz_read_in_chunks_is_exact(tmp_path, dtype):
    """Chunked reading (arrays larger than one read chunk, a big-endian array, a compressed npz)
    gives numpy's own values, rounded once to the asked dtype."""
    p = _params(d=64, n=40_000)  # W_enc: 2.56M elements, more than one chunk
    p["b_dec"] = p["b_dec"].astype(">f4")
    np.savez_compressed(tmp_path / "params.npz", **p)
    sd = saes.read_gemma_scope_params(tmp_path, getattr(torch, dtype))
    for k, v in p.items():
        assert sd[k].dtype == getattr(torch, dtype) and tuple(sd[k].shape) == v.shape
        assert torch.equal(sd[k], torch.from_numpy(v.astype(np.float32)).to(getattr(torch, dtype))), k


def test_gemma_scope_load_peak_memory_stays_near_what_it_keeps(tmp_path):
    """Peak RSS growth while loading a bf16 SAE from an fp32 params.npz <= 1.15 x the growth it
    leaves (measured in a fresh process from /proc/self/status; was 2.4x reading arrays whole)."""
    import sys
    from pathlib import Path

    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_sae_load import measure, write_gemma_scope_folder

    folder = write_gemma_scope_folder(tmp_path / "layer_12/width_32k", d_model=512, width=32_768)  # 134 MB fp32
    m = measure(folder, "bfloat16", "ours")
    assert m["final_mb"] > 50 and m["ratio"] <= 1.15, m
