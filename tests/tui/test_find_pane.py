"""The Find pane (ctrl+f) on the fake session: it and `spectrascope find` render one report; enter opens the
card; s / p / v hand the hit to Steering, Pairing and Spectrum; by example reads the prompt's tokens."""

from __future__ import annotations

import json

import pytest
from spectrascope.core.analysis.steering import SteerFeature
from spectrascope.core.views import find
from spectrascope.tui import cli
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.card_screen import FeatureCardScreen
from spectrascope.tui.widgets.fast_table import FastTable
from textual.widgets import Input, Static

from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

PROMPT = "The capital of France is"


def session_with_labels():
    """The fake with shipped labels on two coarse features: 3 fires on Paris, 7 has Paris in context."""
    session = fake_with_saes()
    session.labels["coarse"].shipped = {
        3: {"promoted": [" Paris"], "snippets": [{"act": 3.0, "text": "I flew to[[ Paris]] in May"},
                                                 {"act": 2.0, "text": "the city of[[ Paris]]"}],
            "max_act": 3.0, "freq": 0.01},
        7: {"promoted": [" the"], "snippets": [{"act": 1.0, "text": "Paris is[[ big]]"}], "max_act": 2.0, "freq": 0.05},
    }
    return session


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))


async def search_for(pilot, words: str):
    app = pilot.app
    await until(pilot, lambda: app.result is not None)
    await pilot.press("ctrl+f")
    pane = app.query_one("#find")
    await until(pilot, lambda: app.focused is app.query_one("#find-table"))
    await pilot.press("f", *words, "enter")
    await until(pilot, lambda: pane.report is not None and pane.report.spec.query == words, timeout=30)
    return pane


@pytest.mark.asyncio
async def test_the_pane_and_the_cli_render_one_report(monkeypatch, capsys, tmp_path):
    session = session_with_labels()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await search_for(pilot, "Paris")
        doc, rows, what = pane.export_doc()
        table = pane.query_one("#find-table", FastTable)
        assert table.row_count == len(pane.report.hits) and what == "Paris"
        assert table.row_text(0)[:2] == ["coarse", "3"] and "fires on" in table.row_text(0)[5]
        assert [(r["role"], r["feature"]) for r in rows] == [(h.role, h.feature) for h in pane.report.hits]
        markdown = pane.report.to_markdown()
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: session)
    assert cli.main(["find", "Paris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(doc))
    assert cli.main(["find", "Paris", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown
    assert cli.main(["find", "Paris"]) == 0  # the tables
    assert "fires on" in capsys.readouterr().out


@pytest.mark.asyncio
async def test_enter_opens_the_card_and_s_p_v_hand_the_hit_to_the_other_panes():
    session = session_with_labels()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await search_for(pilot, "Paris")
        hit = pane.report.hits[0]
        assert (hit.role, hit.feature) == ("coarse", 3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FeatureCardScreen))
        card = str(app.screen.query_one("#card-text", Static).render())
        assert "coarse feature 3" in card and "found by: fires on" in card
        await pilot.press("escape")
        await pilot.press("v")
        await until(pilot, lambda: app.current_pane().id == "spectrum")
        assert app.query_one("#spectrum").feature == ("coarse", 3)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: app.focused is app.query_one("#find-table"))
        await pilot.press("s")
        await until(pilot, lambda: app.current_pane().id == "steering")
        assert app.query_one("#steering").features == [SteerFeature("coarse", 3, 1.0)]
        await pilot.press("ctrl+f")
        await until(pilot, lambda: app.focused is app.query_one("#find-table"))
        await pilot.press("p")
        pairing = app.query_one("#pairing")
        await until(pilot, lambda: app.current_pane().id == "pairing")
        await until(pilot, lambda: pairing.report is not None and not pairing.busy, timeout=60)
        assert 3 in pairing.result.anchors and pairing.anchor == 3


@pytest.mark.asyncio
async def test_a_fine_hit_becomes_its_nearest_coarse_anchor():
    from spectrascope.tui.send_feature import nearest_coarse

    session = session_with_labels()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await search_for(pilot, "Paris")
        rows = [i for i, h in enumerate(pane.report.hits) if h.role == "fine"]
        assert rows, "the promoted-token score finds fine features too"
        pane.query_one("#find-table", FastTable).cursor = rows[0]
        fine = pane.report.hits[rows[0]].feature
        await pilot.press("p")
        want, _ = nearest_coarse(session, fine)
        pairing = app.query_one("#pairing")
        await until(pilot, lambda: pairing.report is not None and not pairing.busy, timeout=60)
        assert pairing.anchor == want and f"fine #{fine}" in str(app.query_one("#status").render())


@pytest.mark.asyncio
async def test_by_example_reads_the_chosen_tokens_of_the_prompt():
    session = session_with_labels()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("ctrl+f")
        pane = app.query_one("#find")
        await pilot.press("e")
        await until(pilot, lambda: pane.report is not None and pane.report.mode == "example")
        n = len(app.result.tokens)
        assert pane.report.positions == (n - 1,)  # the token under the cursor: the last
        await pilot.press("left", "space", "left", "space")
        await until(pilot, lambda: pane.report.positions == (n - 3, n - 2))
        spec = find.FindSpec(role="both", example=PROMPT, positions=(n - 3, n - 2))
        assert pane.report == find.from_result(session, spec, app.result)  # the prompt's own codes, no run
        assert "space picks" in str(pane.query_one("#find-tokens", Static).render())
        calls = session.calls
        pane.query_one("#find-query", Input).value = "Paris is nice"  # a typed phrase is run as the example
        await until(pilot, lambda: pane.report.spec.example == "Paris is nice", timeout=30)
        assert session.calls > calls and pane.report.positions == (1, 2, 3)


@pytest.mark.asyncio
async def test_bad_queries_get_one_line_and_the_app_keeps_running():
    session = session_with_labels()
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await search_for(pilot, "Paris")
        status = pane.query_one("#find-status", Static)
        pane.query_one("#find-query", Input).value = "the of"
        await until(pilot, lambda: "Nothing to search" in str(status.render()), timeout=10)
        pane.query_one("#find-query", Input).value = "[bold]x\x1b[31m"
        await until(pilot, lambda: not pane.job_running("find") and "finding" not in str(status.render()))
        pane.query_one("#find-query", Input).value = "Paris"
        await until(pilot, lambda: pane.report.spec.query == "Paris" and "hits for" in str(status.render()))
        table = pane.query_one("#find-table", FastTable)
        assert table.size.height >= 5  # header + 4 rows at 80x24
        for a, b in zip(pane.children, pane.children[1:]):
            if a.display and b.display:
                assert not a.region.overlaps(b.region)
