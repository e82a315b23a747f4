"""Generation you can look inside: the Logits strip and the Spectrum follow each step (fake session)."""

import threading

import numpy as np
import pytest
import torch
from textual.widgets import Input, Static

from spectrascope.core.engine.labels import PENDING
from spectrascope.core.engine.session import resid_hook
from spectrascope.core.engine.codes import encode_all
from spectrascope.core.analysis.step_record import step_records
from spectrascope.core.text import SPACE
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from spectrascope.tui.widgets.step_strip import SURPRISE, p_text, step_strip_text, surprise_style
from tests.tui.fake_session import block_labels, fake_with_saes
from tests.tui.pilot_helpers import until

PROMPT = "The capital of France"


@pytest.fixture
def fake():
    return fake_with_saes()


@pytest.fixture
def app(fake, tmp_path):
    return SpectrascopeApp(lambda progress: fake, prompt=PROMPT, output_dir=tmp_path)


def strip_lines(app) -> list[str]:
    return str(app.query_one("#logits-strip", Static).render()).splitlines()


async def ready(pilot):
    await until(pilot, lambda: pilot.app.result is not None)
    pilot.app.query_one("#logits-table", FastTable).focus()
    await pilot.pause()
    return pilot.app.query_one("#logits")


async def press_and_wait(pilot, pane, key: str, n_steps: int) -> None:
    await pilot.press(key)
    await until(pilot, lambda: pane.stepper is not None and len(pane.stepper.steps) == n_steps and not pane.busy)
    await pilot.pause()  # the Stepped message reaches the Spectrum


async def labelled(pilot, pane):
    await until(pilot, lambda: not pane.labelling and PENDING not in "".join(strip_lines(pilot.app)))


def independent_codes(fake, ids):
    """The SAE codes of `ids` from one fresh forward over the whole sequence (no KV cache)."""
    out = fake.forward(ids, capture=[resid_hook(1)], keep_logits=0)
    return encode_all(fake.saes, {resid_hook(1): out.resid[resid_hook(1)][0]}, fake.resid_stats)


@pytest.mark.asyncio
async def test_strip_shows_each_steps_p_rank_and_top_feature_as_the_core_report(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        assert not app.query_one("#logits-strip").display  # nothing generated yet
        await press_and_wait(pilot, pane, "g", 1)
        await press_and_wait(pilot, pane, "s", 2)
        await press_and_wait(pilot, pane, "s", 3)
        await labelled(pilot, pane)
        steps = pane.stepper.steps
        expected = step_records(steps, fake.piece, fake.labels, top=1)  # the `logits --features` report
        assert [r.to_dict() for r in pane.records] == [r.to_dict() for r in expected]
        for step, rec in zip(steps, pane.records):  # p and rank against numpy on the step's own logits
            logits = step.dist.logits.numpy().astype(np.float64)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            assert rec.prob == pytest.approx(probs[step.token_id], abs=1e-6)
            assert rec.rank == 1 + int((logits > logits[step.token_id]).sum())
        assert pane.records[0].rank == 1  # greedy took the top token
        top, bottom = strip_lines(app)
        for rec in pane.records:
            assert f"{p_text(rec.prob)} #{rec.rank}" in top
            hit = rec.features["coarse"][0]
            assert f"c{hit.feature} {hit.label.removeprefix('fires on: ')}"[:18] in bottom and hit.label != PENDING


@pytest.mark.asyncio
async def test_spectrum_follows_steps_and_back_without_another_forward(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        spectrum = app.query_one("#spectrum")
        n_prompt = len(app.result.tokens)
        await press_and_wait(pilot, pane, "g", 1)
        await press_and_wait(pilot, pane, "s", 2)
        runs, forwards = fake.calls, fake.forwards
        await press_and_wait(pilot, pane, "s", 3)
        assert fake.calls == runs and fake.forwards == forwards + 1  # the step's own forward, nothing more
        ids = pane.stepper.ids
        assert len(spectrum.result.tokens) == n_prompt + 3 == len(ids)
        assert [t.id for t in spectrum.result.tokens] == ids
        assert spectrum.position == n_prompt + 2  # the newest token selected
        assert "the last 3 generated" in str(app.query_one("#spectrum-tokens", Static).render())
        fresh = independent_codes(fake, ids)
        for role, spec in spectrum.result.spectra.items():
            assert spec.n_tokens == len(ids)
            torch.testing.assert_close(spec.codes, fresh[role].codes, atol=1e-5, rtol=1e-4)
        newest = pane.stepper.steps[-1]
        assert str(app.query_one("#spectrum-tokens", Static).render()).count(fake.piece(newest.token_id).strip())

        await pilot.press("b")
        await until(pilot, lambda: len(pane.stepper.steps) == 2 and not pane.busy)
        await pilot.pause()
        assert len(spectrum.result.tokens) == n_prompt + 2 and spectrum.position == n_prompt + 1
        assert len(pane.records) == 2 and len(strip_lines(app)[0].split("#")) == 3  # two cells
        torch.testing.assert_close(spectrum.result.spectra["coarse"].codes, fresh["coarse"].codes[:-1])

        await pilot.press("b", "b")
        await until(pilot, lambda: not pane.stepper.steps and not pane.busy)
        await pilot.pause()
        assert spectrum.result is app.result and not app.query_one("#logits-strip").display
        assert spectrum.generated == 0 and "generated" not in str(app.query_one("#spectrum-tokens", Static).render())


@pytest.mark.asyncio
async def test_editing_the_prompt_returns_the_spectrum_to_the_prompt(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        spectrum = app.query_one("#spectrum")
        await press_and_wait(pilot, pane, "g", 1)
        assert len(spectrum.result.tokens) == len(app.result.tokens) + 1
        app.query_one("#prompt", Input).value = "Paris is"
        await until(pilot, lambda: app.result.prompt == "Paris is" and spectrum.result is app.result)
        assert pane.stepper is None and not app.query_one("#logits-strip").display
        assert len(spectrum.result.tokens) == len(fake.tokenize("Paris is")[0])


@pytest.mark.asyncio
async def test_labels_arrive_later_and_keys_keep_working(fake, tmp_path):
    gate, threads = threading.Event(), []
    block_labels(fake, gate, threads)
    app = SpectrascopeApp(lambda progress: fake, prompt=PROMPT, output_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        await press_and_wait(pilot, pane, "g", 1)
        await until(pilot, lambda: pane.labelling)
        assert PENDING in strip_lines(app)[1]  # the placeholder while the label is computed
        await press_and_wait(pilot, pane, "s", 2)  # stepping goes on while the labels are held
        await pilot.press("t")
        assert pane.settings.temperature == pytest.approx(0.9)
        assert threads and threading.main_thread() not in threads
        gate.set()
        await labelled(pilot, pane)
        for rec in pane.records:
            hit = rec.features["coarse"][0]
            assert hit.label == fake.labels["coarse"].known(hit.feature).short(3)


def record(token: str, prob: float, rank: int, label: str = "x"):
    from spectrascope.core.analysis.step_record import FeatureHit, TokenRecord

    return TokenRecord(0, 1, token, "sampled", prob, prob, rank, {"coarse": (FeatureHit(7, 1.0, label),)})


def test_strip_keeps_the_newest_tokens_that_fit_and_colours_by_surprise():
    recs = [record(f" w{i}", p, r) for i, (p, r) in enumerate([(0.9, 1), (0.2, 2), (0.05, 9), (0.001, 300)] * 5)]
    text = step_strip_text(recs, 80)
    top, bottom = text.plain.splitlines()
    assert len(top) <= 80 and len(bottom) <= 80
    assert top.startswith("◀") and top.rstrip().endswith(f"{SPACE}w19 1e-3 #300")  # the newest, at the end
    hidden = int(top[1:].split()[0])
    assert top.count("#") == len(recs) - hidden  # every other token is counted in the marker
    assert step_strip_text(recs, 1000, earlier=3).plain.startswith("◀3 ")  # steps the pane left out
    assert "◀" not in step_strip_text(recs[:2], 80).plain
    colours = [surprise_style(p) for p in (0.9, 0.2, 0.05, 0.001)]
    assert colours == [style for _, style in SURPRISE] and len(set(colours)) == 4
    assert [p_text(p) for p in (1.0, 0.234, 0.01, 0.00123)] == ["1", ".23", ".01", "1e-3"]
    newest = [s for s in text.spans if "reverse" in str(s.style)]
    assert newest and surprise_style(0.001) in str(newest[0].style)


@pytest.mark.asyncio
async def test_at_80x24_many_steps_show_the_newest_and_the_table_keeps_rows(app):
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await ready(pilot)
        for n in range(1, 13):
            await press_and_wait(pilot, pane, "s", n)
        await labelled(pilot, pane)
        strip = app.query_one("#logits-strip")
        top, bottom = strip_lines(app)
        assert strip.size.height == 2 and len(top) <= 80 and len(bottom) <= 80
        assert top.startswith("◀")  # the earlier steps are counted, the newest shown
        newest = pane.records[-1]
        assert top.rstrip().endswith(f"{p_text(newest.prob)} #{newest.rank}")
        table = app.query_one("#logits-table", FastTable)
        assert table.size.height >= 4 and not strip.region.overlaps(table.region)


@pytest.mark.asyncio
async def test_export_holds_the_records_of_every_step(app, fake, tmp_path):
    import json

    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        await press_and_wait(pilot, pane, "g", 1)
        await press_and_wait(pilot, pane, "s", 2)
        await labelled(pilot, pane)
        want = step_records(pane.stepper.steps, fake.piece, fake.labels)  # top 3, as `logits --features`
        forwards = fake.forwards  # (computing `want` filled the label caches the export reads)
        await pilot.press("ctrl+e")
        assert fake.forwards == forwards
        doc = json.loads(next(tmp_path.glob("spectrascope-exports/*.json")).read_text())
        assert doc["generation"] == json.loads(json.dumps([r.to_dict() for r in want]))


@pytest.mark.asyncio
async def test_all_tokens_stays_all_tokens_while_the_generation_grows(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot)
        spectrum = app.query_one("#spectrum")
        await press_and_wait(pilot, pane, "g", 1)
        spectrum.action_all_tokens()
        assert spectrum.position is None
        await press_and_wait(pilot, pane, "s", 2)
        await pilot.pause()
        assert spectrum.position is None and len(spectrum.result.tokens) == len(app.result.tokens) + 2
        spectrum.action_all_tokens()  # back to one token: the newest, and it follows again
        await press_and_wait(pilot, pane, "s", 3)
        await pilot.pause()
        assert spectrum.position == len(spectrum.result.tokens) - 1
