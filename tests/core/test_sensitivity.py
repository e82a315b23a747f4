"""The verdict over a grid of thresholds, against classifying at each grid point directly; and where the
report shows it (JSON, Markdown, the `contrast` table)."""

from __future__ import annotations

import json

import numpy as np
import torch

from spectrascope.core.analysis import pairing
from spectrascope.core.analysis.pairing import SUB_FEATURE, PairingSettings, classify, pair, reclassify
from spectrascope.core.stats.sensitivity import CORR_GRID, COS_GRID, NEEDED_GRID, ThresholdGrid, threshold_grid
from tests.core.synthetic_sae import world


def test_grid_shares_and_go_cells():
    g = ThresholdGrid((0.3, 0.4), (0.5,), (2, 3, 4), ((3,), (1,)))
    assert g.go().tolist() == [[[True, True, False]], [[False, False, False]]]
    assert g.go_share == 2 / 6 and "2 of 6 threshold settings say GO" in g.text
    md = g.markdown((0.4, 0.5))
    assert md[2] == "| 0.30 | 3 |" and md[3] == "| 0.40 | **1** |"
    assert threshold_grid(lambda c, r: 2).go_share == 1 / 3  # only N = 2 of 2, 3, 4 says GO, everywhere


def test_the_grid_classifies_the_anchors_again_at_every_point():
    r, wc, wf, _ = world([4, 2, 0, 1, 3, 0], extra=True, concept_topic=0, seed=1)
    res = pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=3))
    g = res.verdict.grid
    assert (g.cos, g.corr, g.needed) == (COS_GRID, CORR_GRID, NEEDED_GRID)
    for i, c in enumerate(COS_GRID):
        for j, rho in enumerate(CORR_GRID):
            want = max(int((classify(p.cosine, p.correlation, c, rho, p.nesting) == SUB_FEATURE).sum())
                       for p in res.pairings.values())
            assert g.best[i][j] == want
    share = np.mean([[[g.best[i][j] >= n for n in NEEDED_GRID] for j in range(5)] for i in range(4)])
    assert res.verdict.to_dict()["grid_go_share"] == share
    # The grid is about the anchors, not the current thresholds: moving them leaves it as it is.
    assert reclassify(res, PairingSettings(n_anchors=3, corr_threshold=0.9)).verdict.grid == g


def test_reports_carry_the_permutation_p_and_the_grid(tiny_sae_session, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    concept = ["The Eiffel Tower is in Paris.", "France has cheese.", "Paris is the capital of France."]
    neutral = ["A quick brown fox.", "The cat sleeps.", "Language models predict the next token."]
    res = pairing.analyse(tiny_sae_session, concept, neutral, labels=False)
    d = json.loads(pairing.export(res, tmp_path / "r.json").read_text())["verdict"]
    assert d["permutation_p"] == res.verdict.permutation.p_value and 1 / 201 <= d["permutation_p"] <= 1
    assert d["permutation"]["n_permutations"] == 200 and "top-K anchors" in d["permutation"]["statistic"]
    assert d["grid_go_share"] == res.verdict.grid.go_share and len(d["grid"]["best_count"]) == 4
    assert d["hierarchy_tested"] and "P(coarse | fine)" in d["hierarchy_definition"]
    md = pairing.to_markdown(res)
    assert "Permutation test: permutation p = " in md and "Threshold sensitivity: " in md
    assert "| cosine \\ correlation | 0.40 | 0.45 | 0.50 | 0.55 | 0.60 |" in md
    assert "P(coarse \\| fine)" in md
    from spectrascope.tui import cli

    (tmp_path / "c.txt").write_text("\n".join(concept))
    (tmp_path / "n.txt").write_text("\n".join(neutral))
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: tiny_sae_session)
    assert cli.main(["contrast", "--concept", str(tmp_path / "c.txt"), "--neutral", str(tmp_path / "n.txt"),
                     "--permutations", "50"]) == 0
    out = capsys.readouterr().out
    assert "50 label shuffles" in out and "GO over thresholds:" in out and "cos\\corr" in out
