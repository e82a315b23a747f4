"""`spectrascope steer` through its own parser, on the tiny SAE session."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from spectrascope.tui import commands
from spectrascope.tui.commands.steering import COMMANDS, fired_most_on

(STEER,) = COMMANDS
# What these tests drove before `steer` became a view command (tui/cli_steer.py's run and fired_most_on).
cli_steer = SimpleNamespace(run=lambda args, load_session: commands.run(STEER, args, load_session),
                            fired_most_on=fired_most_on)


def parse(argv):
    parser = argparse.ArgumentParser(prog="spectrascope")
    sub = parser.add_subparsers(dest="command")
    commands.add_commands(sub, lambda p: p.add_argument("--model", default=None), lambda a: None)
    return parser.parse_args(["steer", *argv])


WORDS = Path(__file__).resolve().parents[2] / "assets" / "prompts" / "concept_words" / "france.txt"


def test_json_sweep(tiny_sae_session, capsys):
    args = parse(["The capital of France is", "--feature", "coarse:3:2", "--feature", "fine:10",
                  "--sweep", "0,4", "--seeds", "2", "--tokens", "3", "--json", "--words", str(WORDS)])
    assert cli_steer.run(args, lambda a: tiny_sae_session) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(c["config"], c["strength"]) for c in out["cells"]] == [
        ("baseline", 0.0), ("coarse", 4.0), ("fine", 4.0), ("coarse+fine", 4.0)]
    assert out["seeds"] == [0, 1] and all(len(c["runs"]) == 2 for c in out["cells"])
    assert out["cells"][1]["features"] == [{"role": "coarse", "id": 3, "strength": 8.0}]
    assert {"concept_act", "concept_share", "perplexity"} <= set(out["cells"][0])
    assert [r["config"] for r in out["targeting"]] == ["coarse", "fine", "coarse+fine"]
    for run in (r for c in out["cells"] for r in c["runs"]):  # where the concept feature fired, token by token
        assert len(run["concept_trace"]) == len(run["token_ids"])
        assert sum(run["concept_trace"]) / len(run["token_ids"]) == pytest.approx(run["concept_act"], rel=1e-6, abs=1e-9)


def test_table_output_clamp(tiny_sae_session, capsys):
    args = parse(["Paris is", "--feature", "coarse:3:1", "--seeds", "1", "--tokens", "2", "--method", "clamp",
                  "--words", str(WORDS)])
    assert cli_steer.run(args, lambda a: tiny_sae_session) == 0
    out = capsys.readouterr().out
    assert "clamp" in out and "baseline" in out and "coarse" in out and "ppl" in out
    assert "targeting" in out and "concept words (given)" in out


def test_intervals_matched_cost_and_words_from_the_feature(tiny_sae_session, capsys):
    args = parse(["Paris is", "--feature", "coarse:3:1", "--feature", "fine:10:1", "--seeds", "3",
                  "--tokens", "2", "--words", str(WORDS), "--json"])
    assert cli_steer.run(args, lambda a: tiny_sae_session) == 0
    out = json.loads(capsys.readouterr().out)
    cell = out["cells"][0]
    assert cell["n_seeds"] == 3 and len(cell["concept_act_ci95"]) == 2 and len(cell["perplexity_ci95"]) == 2
    assert "matched_cost" in out and out["words_source"] == "given"
    # No words given and the tiny SAE's labels have no contexts: a clear message, before any run.
    args = parse(["Paris is", "--feature", "coarse:3:1", "--seeds", "1", "--tokens", "2"])
    assert cli_steer.run(args, lambda a: tiny_sae_session) == 2
    assert "--words" in capsys.readouterr().err


@pytest.mark.parametrize("feature, message", [
    ("medium:3", "No 'medium' SAE"),
    ("coarse:128", "0..127"),
    ("fine:5:strong", "not a number"),
    ("coarse", "ROLE:ID"),
    ("coarse:-3", "whole number"),
])
def test_bad_features_exit_2(tiny_sae_session, capsys, feature, message):
    loads = []
    args = parse(["x", "--feature", feature, "--tokens", "1", "--seeds", "1"])
    assert cli_steer.run(args, lambda a: loads.append(a) or tiny_sae_session) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if ":" not in feature or not feature.split(":")[1].isdigit() or feature.count(":") == 2:
        assert loads == []  # format errors are caught before the model loads


def test_missing_feature_and_bad_sweep(tiny_sae_session, capsys):
    assert cli_steer.run(parse(["x"]), lambda a: tiny_sae_session) == 2
    assert "--feature" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        parse(["x", "--feature", "coarse:1", "--sweep", "1,two"])
    assert exc.value.code == 2


def test_fired_most_on_names_the_pieces_with_the_largest_trace():
    from spectrascope.core.analysis.steering import Piece, SteeredRun

    run = SteeredRun(config="coarse", strength=1.0, seed=0, token_ids=(1, 2, 3, 4), text=" a [b] France\x1b",
                     concept_act=1.0, concept_words=(), nll=(1.0,) * 4,
                     pieces=(Piece(" a"), Piece(" [b]"), Piece(" France"), Piece("\x1b", tokens=1)),
                     concept_trace=(0.5, 0.0, 3.25, 0.25))
    assert cli_steer.fired_most_on(run) == "' France' 3.25 · ' a' 0.50 · '\\x1b' 0.25"
    silent = SteeredRun(config="baseline", strength=0.0, seed=0, token_ids=(1,), text="x", concept_act=0.0,
                        concept_words=(), nll=(1.0,), pieces=(Piece("x"),), concept_trace=(0.0,))
    assert cli_steer.fired_most_on(silent) == "-"
