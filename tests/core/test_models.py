import pytest

from spectrascope.core.engine.models import ModelUnavailable, load_model, pick_device_dtype, resolve_spec


def spectrum_report(session, prompt, **spec):
    """The Spectrum view's report of `prompt` as `spectrascope spectrum --json` prints it (less the model name)."""
    from spectrascope.core.views.spectrum import SpectrumSpec, build

    return build(session, SpectrumSpec(prompt, **spec)).to_dict()


def test_presets_and_folders_resolve(tmp_path):
    assert resolve_spec("gemma-2-2b").default_layer == 12
    assert resolve_spec("gemma-3-270m").source == "embedded"
    assert resolve_spec(str(tmp_path)).source == str(tmp_path.resolve())


def test_missing_hub_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    with pytest.raises(ModelUnavailable) as err:
        load_model("gemma-2-2b")
    text = str(err.value)
    assert "google/gemma-2-2b" in text and "hf download" in text
    assert "HF_HOME" in text and "--model /path/to/folder" in text


def test_missing_local_folder_is_clear(tmp_path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_device_and_dtype_overrides():
    assert pick_device_dtype("cpu", "float32") == ("cpu", "float32")
    device, dtype = pick_device_dtype("cpu", None)
    assert device == "cpu" and dtype in {"bfloat16", "float32"}
    with pytest.raises(ValueError, match="Unknown dtype"):
        pick_device_dtype("cpu", "float8")


def test_probe_cli_on_a_tiny_model(tiny_model_dir, capsys):
    import json

    from spectrascope.tui.cli import main

    assert main(["probe", "The capital", "--top", "3", "--json", "--model", str(tiny_model_dir), "--dtype", "float32"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["top"]) == 3 and report["resid"]["shape"][1] == 64
    assert main(["probe", "The capital", "--model", str(tiny_model_dir), "--dtype", "float32"]) == 0
    assert "top 10 next tokens" in capsys.readouterr().out


def test_cli_reports_bad_input_without_traceback(tiny_model_dir, capsys):
    from spectrascope.tui.cli import main

    assert main(["probe", "", "--model", str(tiny_model_dir)]) == 2
    assert "empty" in capsys.readouterr().err


def test_spectrum_report_on_tiny_saes(tiny_sae_session):
    report = spectrum_report(tiny_sae_session, "The capital of France", top=5)
    assert report["position"] == len(report["tokens"]) - 1
    coarse = report["saes"]["coarse"]
    assert coarse["width"] == 128 and coarse["l0"] + coarse["silent"] == 128
    acts = [r["activation"] for r in coarse["top"]]
    assert acts == sorted(acts, reverse=True) and len(acts) <= 5
    assert all(isinstance(r["label"], str) and r["label"] for r in coarse["top"])
    all_tokens = spectrum_report(tiny_sae_session, "The capital", position=None)
    assert all_tokens["position"] is None and all_tokens["saes"]["fine"]["fidelity"] is None
    with pytest.raises(ValueError, match="outside the prompt"):
        spectrum_report(tiny_sae_session, "The capital", position=50)
    assert all(r["url"] is None for r in coarse["top"])  # tiny SAEs are not on Neuronpedia


def test_spectrum_rows_link_to_neuronpedia_where_it_hosts_the_sae(tiny_sae_session, monkeypatch):
    labels = tiny_sae_session.labels["fine"]
    monkeypatch.setattr(labels, "neuronpedia", ("gemma-2-2b", "12-gemmascope-res-262k"))
    report = spectrum_report(tiny_sae_session, "The capital of France", top=5)
    rows = report["saes"]["fine"]["top"]
    assert rows and all(r["url"] == f"https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-262k/{r['feature']}"
                        for r in rows)


def test_spectrum_without_saes_says_why(tiny_session):
    with pytest.raises(ValueError, match="No coarse/fine SAE"):
        spectrum_report(tiny_session, "x")


def test_cli_sae_flags_load_folders_on_a_tiny_model(tiny_model_dir, tmp_path, capsys):
    """--sae ROLE=SPEC end to end: a Gemma Scope folder (hook from its path) and a sae-lens folder."""
    import json

    import numpy as np

    from spectrascope.tui.cli import main
    from tests.conftest import make_tiny_sae

    scope = tmp_path / "gemma-scope-tiny-res" / "layer_2" / "width_96"
    scope.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(scope / "params.npz", W_enc=rng.normal(size=(64, 96)).astype(np.float32) * 0.3,
             W_dec=rng.normal(size=(96, 64)).astype(np.float32) * 0.3, b_enc=np.zeros(96, np.float32),
             b_dec=np.zeros(64, np.float32), threshold=np.full(96, 0.1, np.float32))
    lens = tmp_path / "lens-sae"
    make_tiny_sae(64, 48, "blocks.1.hook_resid_post").save_model(str(lens))
    assert main(["spectrum", "The capital of France", "--model", str(tiny_model_dir), "--dtype", "float32",
                 "--sae", f"coarse={scope}", "--sae", f"fine={lens}", "--top", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["saes"]["coarse"]["hook"] == "blocks.2.hook_resid_post" and report["saes"]["coarse"]["width"] == 96
    assert report["saes"]["fine"]["hook"] == "blocks.1.hook_resid_post" and report["saes"]["fine"]["width"] == 48
    # A hook past the model's layers: said at load, and the report says why it has no such SAE.
    assert main(["spectrum", "The capital", "--model", str(tiny_model_dir), "--dtype", "float32",
                 "--sae", f"coarse={scope}@9", "--sae", f"fine={lens}", "--role", "coarse"]) == 2
    err = capsys.readouterr().err
    assert "--sae coarse: not loaded" in err and "not a layer" in err


def test_probe_logits_and_lens_load_no_sae(tiny_model_dir, monkeypatch, capsys):
    from spectrascope.core.engine.session import Session
    from spectrascope.tui.cli import main

    asked = []
    real = Session.load

    def recording(*args, **kwargs):
        asked.append(kwargs.get("saes"))
        return real(*args, **kwargs)

    monkeypatch.setattr(Session, "load", staticmethod(recording))
    for command in (["probe", "Paris"], ["logits", "Paris", "--steps", "1"], ["lens", "Paris"]):
        assert main([*command, "--model", str(tiny_model_dir), "--dtype", "float32", "--json"]) == 0
    capsys.readouterr()
    assert asked == [(), (), ()]


def _config_folder(folder, architecture="Gemma2ForCausalLM", hidden=2304, layers=26, **extra):
    """A model folder with only a config.json: recognition reads nothing else."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"architectures": [architecture], "hidden_size": hidden, "num_hidden_layers": layers, **extra}))
    return folder


def _cache_gemma_scope(hub, paths):
    """Fake Gemma Scope files in an HF hub cache layout (recognition only checks they exist)."""
    repo = hub / "models--google--gemma-scope-2b-pt-res"
    for path in paths:
        folder = repo / "snapshots" / "rev0" / path
        folder.mkdir(parents=True)
        (folder / "params.npz").write_bytes(b"x")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("rev0")


def test_a_gemma_2_2b_folder_is_recognised_from_its_config(tmp_path, monkeypatch):
    import huggingface_hub.constants

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    base = resolve_spec(str(_config_folder(tmp_path / "my-gemma")))
    assert (base.default_layer, base.chat, base.neuronpedia_model) == (12, False, "gemma-2-2b")
    assert base.saes == () and base.source == str((tmp_path / "my-gemma").resolve())  # no SAEs cached yet
    # The canonical Gemma Scope ids at layer 12 are these L0s (sae-lens' release list).
    _cache_gemma_scope(hub, ["layer_12/width_16k/average_l0_82", "layer_12/width_262k/average_l0_121"])
    base = resolve_spec(str(tmp_path / "my-gemma"))
    assert base.saes == (("coarse", "gemma-scope-2b-16k"), ("fine", "gemma-scope-2b-262k"))
    it = resolve_spec(str(_config_folder(tmp_path / "models--google--gemma-2-2b-it" / "snapshots" / "r")))
    assert it.chat and it.neuronpedia_model == "gemma-2-2b-it" and it.default_layer == 12 and len(it.saes) == 2
    named = resolve_spec(str(_config_folder(tmp_path / "plain", _name_or_path="google/gemma-2-2b-it")))
    assert named.chat


@pytest.mark.parametrize("config", [
    {"architecture": "Gemma2ForCausalLM", "hidden": 64, "layers": 4},      # a tiny Gemma 2
    {"architecture": "Gemma2ForCausalLM", "hidden": 3584, "layers": 42},   # Gemma 2 9B
    {"architecture": "LlamaForCausalLM", "hidden": 2304, "layers": 26},    # same dims, another model
])
def test_other_folders_are_not_taken_for_gemma_2_2b(tmp_path, config):
    spec = resolve_spec(str(_config_folder(tmp_path / "m", **config)))
    assert spec.default_layer is None and spec.saes == () and not spec.chat


def test_a_recognised_tiny_gemma_2_loads_at_the_presets_layer(tmp_path, monkeypatch):
    """A real (tiny random) Gemma 2 folder registered at its own dims gets the preset's facts."""
    from spectrascope.core.engine import models

    from tests.conftest import build_tiny_model_dir

    folder = build_tiny_model_dir(tmp_path / "tiny", "gemma2")
    import json

    cfg = json.loads((folder / "config.json").read_text())
    key = (cfg["architectures"][0], cfg["hidden_size"], cfg["num_hidden_layers"])
    tiny_preset = models.ModelSpec("tiny-2", "nowhere", default_layer=1, neuronpedia_model="tiny")
    monkeypatch.setitem(models.PRESETS, "tiny-2", tiny_preset)
    monkeypatch.setitem(models.KNOWN_FOLDERS, key, ("tiny-2", "tiny-2"))
    loaded = load_model(str(folder), device="cpu", dtype="float32")
    assert loaded.default_layer == 1 and loaded.spec.neuronpedia_model == "tiny"
    assert loaded.spec.source == str(folder.resolve())
