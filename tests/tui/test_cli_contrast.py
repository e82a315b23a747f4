"""`spectrascope contrast` headless on the tiny model."""

from __future__ import annotations

import argparse
import json

import pytest

from spectrascope.tui import commands
from spectrascope.tui.commands.pairing import COMMANDS

(CONTRAST,) = COMMANDS


def parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    commands.add_commands(sub, lambda p: p.add_argument("--model", default=None), lambda a: None)
    return parser.parse_args(["contrast", *argv])


def run_contrast(args, load_session):
    return commands.run(CONTRAST, args, load_session)


@pytest.fixture
def sets(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "c.txt").write_text("The Eiffel Tower is in Paris.\nFrance has cheese.\nParis is the capital.\n")
    (tmp_path / "n.jsonl").write_text('{"text": "A quick brown fox."}\n{"prompt": "The cat sleeps."}\n')
    return tmp_path


def test_defaults_are_the_shipped_sets():
    args = parse([])
    assert args.concept is None and args.anchors == 3 and args.cos == 0.3 and args.corr == 0.5


def test_json_output(tiny_sae_session, sets, capsys):
    args = parse(["--concept", str(sets / "c.txt"), "--neutral", str(sets / "n.jsonl"), "--json",
                  "--anchors", "2", "--cos", "0.2", "-o", str(sets / "out.md")])
    assert run_contrast(args, lambda a: tiny_sae_session) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["anchors"]) == 2 and out["settings"]["cos_threshold"] == 0.2
    assert out["n_concept"] == 3 and out["n_neutral"] == 2
    assert "Coarse-to-fine pairing report" in (sets / "out.md").read_text()


def test_table_and_markdown_output(tiny_sae_session, sets, capsys):
    base = ["--concept", str(sets / "c.txt"), "--neutral", str(sets / "n.jsonl")]
    assert run_contrast(parse(base), lambda a: tiny_sae_session) == 0
    out = capsys.readouterr().out
    assert "coarse anchors" in out and "GO" in out
    assert run_contrast(parse(base + ["--markdown"]), lambda a: tiny_sae_session) == 0
    assert capsys.readouterr().out.startswith("# Coarse-to-fine pairing report")


def test_clear_errors(tiny_session, sets, capsys):
    (sets / "empty.txt").write_text("")
    args = parse(["--concept", str(sets / "empty.txt")])
    assert run_contrast(args, lambda a: pytest.fail("must not load the model")) == 2
    assert "empty" in capsys.readouterr().err
    args = parse(["--concept", str(sets / "c.txt"), "--neutral", str(sets / "n.jsonl")])
    assert run_contrast(args, lambda a: tiny_session) == 2
    assert "needs a coarse and a fine SAE" in capsys.readouterr().err


def test_table_says_the_cache_file_size(tiny_sae_session, sets, capsys):
    from spectrascope.core.analysis import contrast

    base = ["--concept", str(sets / "c.txt"), "--neutral", str(sets / "n.jsonl")]
    for cached in (False, True):  # the size of the file written, then of the file read
        assert run_contrast(parse(base), lambda a: tiny_sae_session) == 0
        first_line = capsys.readouterr().out.splitlines()[0]
        (path,) = (sets / "cache" / "contrast").glob("*.npz")
        kb = round(path.stat().st_size / 1e3)
        assert f"cache file {kb} kB" in first_line and ("(cached)" in first_line) == cached
    assert contrast.CACHE_FORMAT == 2
    assert run_contrast(parse(base + ["--no-cache"]), lambda a: tiny_sae_session) == 0
    assert "cache file" not in capsys.readouterr().out.splitlines()[0]
