"""The conversion cache: atomic, corruption-detecting, in the right place."""

import json
from pathlib import Path

import pytest

from spectrascope.core.engine import embedded


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_convert(calls):
    def convert(scratch: Path, out: Path, progress):
        calls.append(out)
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"x" * 100)
        sizes = {p.name: p.stat().st_size for p in out.iterdir()}
        (out / embedded.MARKER).write_text(json.dumps({"version": 1, "sizes": sizes}))

    return convert


def test_cache_dir_respects_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(embedded.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "spectrascope"
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path / "mine"))
    assert embedded.cache_root() == tmp_path / "mine"


def test_converts_once_then_reuses(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "_convert", fake_convert(calls))
    first = embedded.ensure_embedded_model()
    second = embedded.ensure_embedded_model()
    assert first == second and len(calls) == 1 and embedded.is_complete(first)


def test_killed_conversion_leaves_nothing_that_loads(cache, monkeypatch):
    def dies(scratch, out, progress):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # as if the user pressed ctrl+c mid-write

    monkeypatch.setattr(embedded, "_convert", dies)
    with pytest.raises(KeyboardInterrupt):
        embedded.ensure_embedded_model()
    assert not embedded.embedded_dir().exists()
    assert list(embedded.embedded_dir().parent.iterdir()) == []  # scratch removed too


def test_corrupt_cache_is_detected_and_rebuilt(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "_convert", fake_convert(calls))
    folder = embedded.ensure_embedded_model()
    (folder / "model.safetensors").write_bytes(b"truncated")
    assert not embedded.is_complete(folder)
    messages = []
    embedded.ensure_embedded_model(lambda m, f: messages.append(m))
    assert len(calls) == 2 and embedded.is_complete(folder)
    assert any("corrupt" in m for m in messages)


def test_two_processes_converting_at_once_both_get_the_cache(cache, monkeypatch):
    """A second conversion that finishes after another process's (two first runs at once) uses
    the finished cache instead of failing on the occupied folder."""
    calls = []
    convert = fake_convert(calls)

    def slower(scratch, out, progress):  # the other process finishes while this one converts
        convert(scratch, out, progress)
        other = embedded.embedded_dir()
        other.mkdir(parents=True)
        convert(scratch, other / "x", progress)
        for f in (other / "x").iterdir():
            f.rename(other / f.name)
        (other / "x").rmdir()

    monkeypatch.setattr(embedded, "_convert", slower)
    folder = embedded.ensure_embedded_model()
    assert embedded.is_complete(folder)
    assert [p.name for p in embedded.embedded_dir().parent.iterdir()] == [folder.name]  # scratch removed
