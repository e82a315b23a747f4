"""The verdict's checks end to end (issue 34, items 4-6): withheld on small or identical sets and on an anchor
that is not the concept, in the JSON, the Markdown, the CLI text and the pane; `--match-neutral` and the
palette's matched neutral set."""

from __future__ import annotations

import argparse
import json

import pytest

from spectrascope.core.analysis import pairing
from spectrascope.core.analysis.set_checks import SetChecks
from spectrascope.core.stats import concept_words as cw
from spectrascope.core.stats.confounds import set_report
from spectrascope.tui import commands
from spectrascope.tui.commands.pairing import COMMANDS
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

(CONTRAST,) = COMMANDS
CONCEPT = ["Paris is the capital of France.", "The French eat bread in Paris.", "France has wine and cheese."]
NEUTRAL = ["The cat sat on the mat.", "A quick brown fox jumps.", "Language models predict tokens."]


def parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    commands.add_commands(sub, lambda p: p.add_argument("--model", default=None), lambda a: None)
    return parser.parse_args(["contrast", *argv])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_small_sets_get_intervals_but_no_verdict(tiny_sae_session, cache):
    res = pairing.analyse(tiny_sae_session, CONCEPT, NEUTRAL)
    v = res.verdict
    assert v.status == "WITHHELD" and v.withheld[0] == "3 concept / 3 neutral prompts, 30 per set needed"
    assert v.headline.startswith("NO VERDICT: 3 concept / 3 neutral prompts") and "The rule alone: " in v.headline
    d = pairing.to_dict(res)
    assert d["verdict"]["go"] is False and d["verdict"]["status"] == "WITHHELD"
    assert d["verdict"]["rule_go"] == v.go and d["checks"]["sets"]["too_small"] is True
    for a in d["anchors"]:  # every anchor has its interval, and the point estimate inside it
        lo, hi = a["selectivity_ci95"]
        assert lo <= a["selectivity"] + 1e-6 and a["selectivity"] <= hi + 1e-6
        assert a["concept_check"]["role"] == "coarse" and a["concept_check"]["feature"] == a["feature"]
    md = pairing.to_markdown(res)
    assert "**Verdict: NO VERDICT" in md and "## Checks" in md and "| prompts | 3 | 3 | ⚠ |" in md
    # The checks survive a threshold change and a re-pairing with other anchors (no new forward).
    moved = pairing.reclassify(res, res.settings)
    assert moved.verdict.withheld == v.withheld and moved.checks.ci.keys() == res.checks.ci.keys()
    other = pairing.repair(tiny_sae_session, res, res.settings, anchors=[res.anchors[0], 5])
    assert set(other.checks.ci) >= {res.anchors[0], 5} and 5 in other.checks.anchors
    assert other.verdict.status == "WITHHELD"


def test_identical_sets_are_flagged_and_withheld(tiny_sae_session, cache):
    concept = [f"Sentence number {i} is about the weather." for i in range(30)]
    res = pairing.analyse(tiny_sae_session, concept, list(concept))
    assert "the two sets are the same prompts" in res.verdict.withheld
    assert res.checks.sets.same.identical and pairing.to_dict(res)["checks"]["sets"]["same_prompts"]["identical"]


def test_an_anchor_that_fails_the_concept_check_withholds_the_verdict(tiny_sae_session, cache):
    concept = [f"France {i} is a country." for i in range(30)]
    neutral = [f"Kenya {i} is a country." for i in range(30)]
    res = pairing.analyse(tiny_sae_session, concept, neutral)
    a = res.verdict.anchor
    failing = cw.AnchorCheck("coarse", a, 100, (0.0, 0.3, 0.6, 0.1), (0.1, 0.3, 0.2, 0.4), 0.0, 2)
    checks = SetChecks(set_report(concept, neutral), res.checks.words, {a: failing}, pieces=res.checks.pieces)
    judged = pairing.with_checks(res, checks)
    assert judged.verdict.withheld == (f"coarse #{a} fires mostly on function words and punctuation (90% of its "
                                       f"tokens)",)
    assert pairing.to_dict(judged)["anchors"][res.anchors.index(a)]["concept_check"]["flagged"] is True
    passing = cw.AnchorCheck("coarse", a, 100, (0.8, 0.1, 0.0, 0.1), (0.1, 0.3, 0.2, 0.4), 0.9, 2)
    fine = pairing.with_checks(res, SetChecks(checks.sets, checks.words, {a: passing}))
    assert fine.verdict.withheld == () and fine.verdict.status in ("GO", "NO-GO")


def test_cli_prints_the_checks_and_each_sets_numbers(tiny_sae_session, cache, capsys):
    (cache / "c.txt").write_text("\n".join(CONCEPT))
    (cache / "n.txt").write_text("\n".join(NEUTRAL))
    args = parse(["--concept", str(cache / "c.txt"), "--neutral", str(cache / "n.txt"), "--anchors", "2"])
    assert commands.run(CONTRAST, args, lambda a: tiny_sae_session) == 0
    out = capsys.readouterr().out
    assert "NO VERDICT: 3 concept / 3 neutral prompts" in out and "set checks" in out
    assert "capitalised words (names)" in out and "vocabulary overlap" in out and "95% CI" in out


def test_match_neutral_builds_the_neutral_set_and_refuses_a_neutral_file_too(tiny_sae_session, cache, capsys):
    (cache / "c.txt").write_text("\n".join(f"The capital of France is Paris, said guide {i}." for i in range(30)))
    args = parse(["--concept", str(cache / "c.txt"), "--match-neutral", "--anchors", "1", "--json"])
    assert commands.run(CONTRAST, args, lambda a: tiny_sae_session) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_neutral"] == 30 and out["matched_neutral"]["n"] == 30 and out["matched_neutral"]["dropped"] == 0
    assert {s["from"] for s in out["matched_neutral"]["swaps"]} == {"France", "Paris"}
    both = parse(["--concept", str(cache / "c.txt"), "--neutral", str(cache / "c.txt"), "--match-neutral"])
    assert commands.run(CONTRAST, both, lambda a: tiny_sae_session) == 2
    assert "leave out --neutral" in capsys.readouterr().err


def test_the_spec_keeps_match_neutral_in_the_session_file(cache):
    from spectrascope.core.views.pairing import PairingSpec

    spec = PairingSpec(str(cache / "c.txt"), match_neutral=True)
    state = spec.to_state()
    assert state["match_neutral"] is True and state["neutral"].endswith("c-matched-neutral.txt")
    assert PairingSpec.from_state(state).match_neutral is True


@pytest.mark.asyncio
async def test_the_palette_builds_a_matched_neutral_set_for_the_pane(cache):
    from tests.tui.test_pairing_pane import PaneApp

    concept = cache / "c.txt"
    concept.write_text("\n".join(f"Tokyo is the capital of Japan, {i}." for i in range(30)))
    app = PaneApp(fake_with_saes(), concept, cache / "n.txt")
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one("#pairing")
        await pane.run_action("match_neutral")
        await until(pilot, lambda: pane.neutral_path.name == "c-matched-neutral.txt")
        assert "matched neutral set: 30 twins" in str(pane.query_one("#pairing-status").render())
        assert "Japan" not in pane.neutral_path.read_text() and "Tokyo" not in pane.neutral_path.read_text()
        concept.write_text("def f(x):\n    return x\n")  # nothing to swap: one line, the app keeps running
        await pane.run_action("match_neutral")
        await until(pilot, lambda: "no neutral twin" in str(pane.query_one("#pairing-status").render()))
