"""An empty prompt is refused by every view subcommand before the model loads (it used to cost a load)."""

from __future__ import annotations

import pytest

from spectrascope.tui import cli


@pytest.mark.parametrize("argv", [["probe", ""], ["logits", ""], ["spectrum", ""], ["lens", ""],
                                  ["anchor", "", "--system", "Be brief."], ["steer", "", "--feature", "coarse:1"]])
def test_empty_prompt_is_refused_before_the_model_loads(argv, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: pytest.fail("the model was loaded"))
    assert cli.main(argv) == 2
    assert "prompt is empty" in capsys.readouterr().err
