import pytest

from spectrascope.core.models import ModelUnavailable, load_model, pick_device_dtype, resolve_spec


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
    assert "google/gemma-2-2b" in text and "huggingface-cli download" in text
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
    from spectrascope.core.probe import spectrum_report

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


def test_spectrum_without_saes_says_why(tiny_session):
    from spectrascope.core.probe import spectrum_report

    with pytest.raises(ValueError, match="No coarse/fine SAE"):
        spectrum_report(tiny_session, "x")
