"""`spectrascope lens` through the CLI's own parser, on the tiny session: logit and tuned lens."""

from __future__ import annotations

import json

from spectrascope.tui import cli


def test_lens_json_logit_and_tuned(tiny_session, monkeypatch, capsys, tmp_path):
    from spectrascope.core.analysis.lens import logit_lens
    from spectrascope.core.analysis.tuned_lens import tuned_lens

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: tiny_session)
    prompts = ["the cat sat on the mat", "one two three four five", "a b c d e f g"]
    monkeypatch.setattr("spectrascope.core.analysis.tuned_lens.calibration_prompts", lambda: prompts)
    assert cli.main(["lens", "red green blue", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["lens"] == "logit lens"
    assert plain["rows"][0]["top"][0][0] == logit_lens(tiny_session, "red green blue").rows[0].top[0][0]

    assert cli.main(["lens", "red green blue", "--tuned", "--json"]) == 0
    captured = capsys.readouterr()
    rep = json.loads(captured.out)
    assert "calibration prompts" in captured.err  # the fit says what it is doing
    want = logit_lens(tiny_session, "red green blue", tuned=tuned_lens(tiny_session, prompts))
    assert rep["lens"] == want.lens and want.lens.startswith("tuned lens (fitted on 3 prompts (")
    assert [r["top"][0][0] for r in rep["rows"]] == [r.top[0][0] for r in want.rows]

    assert cli.main(["lens", "red green blue", "--tuned"]) == 0
    assert "tuned lens (fitted on 3 prompts" in capsys.readouterr().out
