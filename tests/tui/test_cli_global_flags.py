"""Model flags work before or after the subcommand, or are rejected: never silently ignored.

No model loads here: `_load_session` is replaced by one that records the flags it was given."""

from __future__ import annotations

import pytest

from spectrascope.tui import cli

# Every subcommand that loads a model, with the arguments it needs to parse.
SUBCOMMANDS = {
    "probe": ["probe", "x"], "logits": ["logits", "x"], "spectrum": ["spectrum", "x"], "serve": ["serve"],
    "lens": ["lens", "x"], "anchor": ["anchor", "x", "--system", "s"],
    "drift": ["drift", "--system", "s", "--question", "q"], "sae-info": ["sae-info"],
    "contrast": ["contrast"], "steer": ["steer", "x", "--feature", "coarse:1"],
}
FLAGS = ["--model", "some/model", "--device", "cpu", "--dtype", "float32", "--sae-dtype", "float16",
         "--sae", "coarse=embedded-coarse"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
@pytest.mark.parametrize("order", ["before", "after"])
def test_model_flags_in_either_position(name, order):
    words = SUBCOMMANDS[name]
    args = cli.parse_args(FLAGS + words if order == "before" else words + FLAGS)
    assert (args.model, args.device, args.dtype, args.sae_dtype, args.sae) == (
        "some/model", "cpu", "float32", "float16", ["coarse=embedded-coarse"])
    assert not any(k.startswith("sub_") for k in vars(args))


def test_sae_flags_on_both_sides_add_up_and_same_values_agree():
    args = cli.parse_args(["--sae", "coarse=a", "--model", "m", "spectrum", "x", "--sae", "fine=b", "--model", "m"])
    assert args.sae == ["coarse=a", "fine=b"] and args.model == "m"


@pytest.mark.parametrize("argv, message", [
    (["--model", "a", "probe", "x", "--model", "b"], "--model given twice"),
    (["--model", "a", "saes"], "`saes` loads no model"),
    (["--session", "s.json", "probe", "x"], "--session is a TUI option"),
    (["--prompt", "hi", "lens", "x"], "--prompt is a TUI option"),
    (["--demo", "d.demo", "spectrum", "x"], "--demo is a TUI option"),
])
def test_flags_that_cannot_apply_are_rejected_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("order", ["before", "after"])
def test_the_model_named_before_or_after_reaches_the_session(order, monkeypatch, tmp_path):
    """End to end through `main`: the session is asked for the named model in both orders."""
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(tmp_path / "none.toml"))
    asked = []

    def load(args, progress=None):
        asked.append((args.model, args.device))
        raise ValueError("stop here")  # main turns it into a message and exit status 2

    monkeypatch.setattr(cli, "_load_session", load)
    flags = ["--model", "other-model", "--device", "cpu"]
    for words in (["probe", "x"], ["contrast"], ["steer", "x", "--feature", "coarse:1"]):
        assert cli.main(flags + words if order == "before" else words + flags) == 2
    assert asked == [("other-model", "cpu")] * 3
