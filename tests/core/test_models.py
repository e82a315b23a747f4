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
