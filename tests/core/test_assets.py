import pytest

from spectrascope.core import assets
from spectrascope.core.assets import PROMPTS_DIR, SAES_DIR, atomic_write


def test_shipped_folders_exist():
    assert (PROMPTS_DIR / "france.txt").is_file() and SAES_DIR.is_dir()


def test_atomic_write_leaves_old_file_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.npz"
    atomic_write(target, b"old")
    assert atomic_write(tmp_path / "t.md", "é text").read_text(encoding="utf-8") == "é text"

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(assets.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.md", "x.npz"]  # the temp file is gone
