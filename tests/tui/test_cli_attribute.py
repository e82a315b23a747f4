"""`spectrascope attribute` on the tiny SAE session: the JSON is the core view's report, the text and
Markdown render it, bad input is one line and exit 2."""

from __future__ import annotations

import json

from spectrascope.core.views.attribution import AttributionReport, AttributionSpec, build
from spectrascope.tui import cli

PROMPT = "The capital of France is"


def test_json_is_the_core_report(tiny_sae_session, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: tiny_sae_session)
    assert cli.main(["attribute", PROMPT, "--target", "#7", "--vs", "#9", "--top", "6", "--verify", "6",
                     "--json"]) == 0
    got = AttributionReport.from_dict(json.loads(capsys.readouterr().out))
    want = build(tiny_sae_session, AttributionSpec(PROMPT, "#7", "#9", top=6, verify=6))
    assert got.features == want.features and got.saes == want.saes and got.value == want.value
    assert cli.main(["attribute", PROMPT, "--target", "#7", "--verify", "3", "--markdown"]) == 0
    assert "| SAE | features | error |" in capsys.readouterr().out
    assert cli.main(["attribute", PROMPT, "--target", "#7", "--verify", "3", "--role", "fine"]) == 0
    out = capsys.readouterr().out
    assert "fine 1,024" in out and "coarse 128" not in out


def test_bad_input_is_one_line_and_exit_2(tiny_sae_session, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: tiny_sae_session)
    for argv, said in ((["--position", "40"], "outside the prompt"), (["--target", "#99999"], "outside the vocab"),
                       (["--target", "#7", "--vs", "#7"], "same token")):
        assert cli.main(["attribute", PROMPT, *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spectrascope attribute:") and said in err[0]
