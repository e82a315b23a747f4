"""The Logits pane driven by keys in the real app, on the fake session (stepping runs the real Stepper)."""

import json
import threading

import pytest
from textual.widgets import DataTable, Input, Static

from spectrascope.core.views.logits import NextToken, SeededRun
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.fake_session import FakeSession
from tests.tui.pilot_helpers import until


def distribution_report(dist, piece, top):  # the Logits report's distribution, as its JSON has it
    return NextToken.of(dist, piece, top).to_dict()


def runs_report(runs):  # the Logits report's seeded runs, as its JSON has them
    return [SeededRun.of(r).to_dict() for r in runs]


def text_of(app, selector):
    return str(app.query_one(selector, Static).render())


@pytest.fixture
def fake():
    return FakeSession()


@pytest.fixture
def app(fake, tmp_path):
    return SpectrascopeApp(lambda progress: fake, prompt="The capital of France", output_dir=tmp_path)


async def ready(pilot, app):
    await until(pilot, lambda: app.result is not None)
    app.query_one("#logits-table", FastTable).focus()
    await pilot.pause()
    return app.query_one("#logits")


async def new_prompt(pilot, app, prompt):
    app.query_one("#prompt", Input).value = prompt
    await until(pilot, lambda: app.result.prompt == prompt and app.query_one("#logits").prompt == prompt)
    app.query_one("#logits-table", FastTable).focus()


@pytest.mark.asyncio
async def test_knobs_rerender_without_a_model_call(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        forwards = fake.forwards
        await pilot.press("t", "t", "t")
        assert pane.settings.temperature == pytest.approx(0.7)
        await pilot.press("K", "K", "K")  # top-k off -> 1 -> 2 -> 3
        assert pane.settings.top_k == 3
        assert "survivors 3 of" in text_of(app, "#logits-summary")
        await pilot.press("p", "p")
        assert pane.settings.top_p == pytest.approx(0.9)
        table = app.query_one("#logits-table", FastTable)
        statuses = [table.row_text(i)[-1] for i in range(table.row_count)]
        assert statuses[0] == "kept" and "✗ top-k" in statuses
        await pilot.press(*["t"] * 12)  # all the way down: greedy
        assert pane.settings.is_greedy and "greedy" in text_of(app, "#logits-knobs")
        assert fake.forwards == forwards


@pytest.mark.asyncio
async def test_step_back_and_pick_on_a_growing_cache(app, fake):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        table = app.query_one("#logits-table", FastTable)
        top_row = int(table.keys[0])
        await pilot.press("g")
        await until(pilot, lambda: pane.stepper is not None and len(pane.stepper.steps) == 1 and not pane.busy)
        assert pane.stepper.steps[0].token_id == top_row  # greedy takes the row shown first
        prompt_len = len(pane.stepper.prompt_ids)
        assert pane.stepper._cache.get_seq_length() == prompt_len + 1
        await pilot.press("s")
        await until(pilot, lambda: len(pane.stepper.steps) == 2 and not pane.busy)
        await pilot.press("b")
        await until(pilot, lambda: len(pane.stepper.steps) == 1 and not pane.busy)
        assert pane.stepper.steps[0].token_id == top_row
        assert pane.stepper._cache.get_seq_length() == prompt_len + 1  # cropped back, not rebuilt
        third = int(table.keys[2])
        await pilot.press("down", "down", "enter")  # pick the third row
        await until(pilot, lambda: len(pane.stepper.steps) == 2 and not pane.busy)
        assert pane.stepper.steps[1].how == "picked" and pane.stepper.steps[1].token_id == third
        assert "[2 steps]" in text_of(app, "#logits-text")


@pytest.mark.asyncio
async def test_a_step_for_an_older_prompt_is_dropped(app, fake, monkeypatch):
    gate, held = threading.Event(), threading.Event()
    forward = fake.forward

    def held_when_stepping(ids, **kw):
        if kw.get("cache") is not None:  # the Stepper's forwards, not the prompt's
            held.set()
            gate.wait(10)
        return forward(ids, **kw)

    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        monkeypatch.setattr(fake, "forward", held_when_stepping)
        await pilot.press("g")
        await until(pilot, held.is_set)
        await new_prompt(pilot, app, "Paris is")
        monkeypatch.setattr(fake, "forward", forward)
        gate.set()
        await until(pilot, lambda: not pane.busy)
        assert pane.stepper is None and "step]" not in text_of(app, "#logits-text") and "steps]" not in text_of(app, "#logits-text")
        assert "Paris is" in text_of(app, "#logits-text")


def hold_steps(fake):
    """(gate, held, forward): a forward that, stepping (with a KV cache), sets `held` and waits for `gate`."""
    gate, held = threading.Event(), threading.Event()
    forward = fake.forward

    def held_when_stepping(ids, **kw):
        if kw.get("cache") is not None and not gate.is_set():
            held.set()
            gate.wait(10)
        return forward(ids, **kw)

    return gate, held, held_when_stepping


@pytest.mark.asyncio
async def test_keys_pressed_while_a_step_runs_are_queued_and_run_in_order(app, fake, monkeypatch):
    """A demo types ahead: g s s b g pressed while the first step is held all happen, in order,
    and the knobs line says how many wait; a new prompt drops what was queued for the old one."""
    gate, held, held_when_stepping = hold_steps(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        greedy_first = int(app.query_one("#logits-table", FastTable).keys[0])
        monkeypatch.setattr(fake, "forward", held_when_stepping)
        await pilot.press("g")
        await until(pilot, held.is_set)
        await pilot.press("s", "s", "b", "g")
        assert "(+4 queued)" in text_of(app, "#logits-knobs")
        gate.set()
        await until(pilot, lambda: not pane.busy and not pane.queued and pane.stepper is not None)
        steps = pane.stepper.steps
        assert [s.how for s in steps] == ["greedy", "sampled", "greedy"]  # g, s, s, then b undid the second s, g
        assert steps[0].token_id == greedy_first
        assert "queued" not in text_of(app, "#logits-knobs")

        gate.clear(), held.clear()
        await pilot.press("s")
        await until(pilot, held.is_set)
        await pilot.press("s", "s")
        assert len(pane.queued) == 2
        await new_prompt(pilot, app, "Paris is")
        assert not pane.queued  # the old prompt's steps are not run on the new one
        gate.set()
        await until(pilot, lambda: not pane.busy)
        assert pane.stepper is None


@pytest.mark.asyncio
async def test_seeded_runs_are_marked_stale_when_the_prompt_or_knobs_change(app):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        pane.run_steps = 5
        await pilot.press("n")
        runs = app.query_one("#logits-runs", DataTable)
        await until(pilot, lambda: runs.row_count == pane.n_runs)
        assert runs.display and str(runs.get_row_at(0)[0]) == "0"
        note = text_of(app, "#logits-runs-note")
        assert "seeded runs of 'The capital of France'" in note and "stale" not in note

        await new_prompt(pilot, app, "Paris is")
        assert "stale: computed for 'The capital of France'" in text_of(app, "#logits-runs-note")
        await new_prompt(pilot, app, "The capital of France")
        assert "stale" not in text_of(app, "#logits-runs-note")

        await pilot.press("r")  # a new seed: other runs
        assert "stale: computed for T 1.00" in text_of(app, "#logits-runs-note")
        await pilot.press("n")
        await until(pilot, lambda: not pane.busy and "stale" not in text_of(app, "#logits-runs-note"))
        assert str(runs.get_row_at(0)[0]) == "1"


@pytest.mark.asyncio
async def test_system_prompt_ab_columns_and_stale_knobs(app):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press("a")  # no system prompt yet: focus goes to its field
        assert isinstance(app.focused, Input) and app.focused.id == "logits-system"
        await pilot.press(*"You are a pirate.", "enter")
        await until(pilot, lambda: pane.ab is not None)
        assert "KL(with ‖ without)" in text_of(app, "#logits-summary")
        table = app.query_one("#logits-table", FastTable)
        assert table.column_names[3:5] == ["p without", "p with"]
        await pilot.press("t")
        assert "stale: computed for T 1.00" in text_of(app, "#logits-summary")
        await pilot.press("ctrl+r")  # the prompt again: the A/B follows under the new knobs
        await until(pilot, lambda: pane.ab is not None and not pane.busy and
                    "stale" not in text_of(app, "#logits-summary"))
        await new_prompt(pilot, app, "Paris is")
        await until(pilot, lambda: pane.ab is not None and not pane.busy)
        assert pane.ab_basis.prompt == "Paris is"
        await pilot.press("a")
        assert not pane.ab_on and "survivors" in text_of(app, "#logits-summary")


@pytest.mark.asyncio
async def test_with_the_ab_on_the_prompts_run_carries_its_variant(app, fake, monkeypatch):
    """A keystroke's run takes the A/B's with-system text along (Request.companions), so the session
    extends both in one batched forward; with the A/B off it carries nothing."""
    from spectrascope.core.engine.generation import with_system_prompt

    asked = []
    run = fake.run
    monkeypatch.setattr(fake, "run", lambda request, cancel=None: asked.append(request) or run(request, cancel))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press("a", *"You are a pirate.", "enter")
        await until(pilot, lambda: pane.ab is not None and not pane.busy)
        await new_prompt(pilot, app, "Paris is")
        await until(pilot, lambda: pane.ab is not None and not pane.busy)
        prompt_runs = [r for r in asked if r.prompt == "Paris is" and r.slot == "prompt"]
        variants = {c.slot: c.prompt for c in prompt_runs[-1].companions}
        assert variants["ab-with"] == with_system_prompt(fake, "You are a pirate.", "Paris is")
        await pilot.press("a")  # off
        await new_prompt(pilot, app, "Rome is")
        assert [r.companions for r in asked if r.prompt == "Rome is" and r.slot == "prompt"][-1] == ()


@pytest.mark.asyncio
async def test_export_is_the_core_report_without_a_model_call(app, fake, tmp_path):
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        pane.run_steps = 3
        await pilot.press("K", "K", "n")
        await until(pilot, lambda: pane.runs is not None and not pane.busy)
        forwards = fake.forwards
        await pilot.press("ctrl+e")
        assert fake.forwards == forwards
        doc = json.loads(next(tmp_path.glob("spectrascope-exports/*.json")).read_text())
        dist = pane.view.apply(pane.settings)
        assert {k: doc[k] for k in ("survivors", "vocab", "top")} == {
            k: v for k, v in distribution_report(dist, fake.piece, pane.top_n).items() if k in ("survivors", "vocab", "top")}
        assert doc["runs"] == runs_report(pane.runs) and doc["prompt"] == "The capital of France"
        csv_lines = next(tmp_path.glob("spectrascope-exports/*.csv")).read_text().splitlines()
        assert csv_lines[0] == "rank,token_id,token,logit,raw_p,final_p,status" and len(csv_lines) == 21
        await pilot.press("r", "ctrl+e")  # the runs are stale now: left out
        newest = max(tmp_path.glob("spectrascope-exports/*.json"), key=lambda p: p.stat().st_mtime_ns)
        assert "runs" not in json.loads(newest.read_text())


@pytest.mark.asyncio
@pytest.mark.parametrize("knob_keys, cli_knobs, basis", [
    ((), [], "on the final distributions"),
    (("K", "K", "K"), ["--top-k", "3"], "on the raw distributions"),  # a cut: KL on the raw ones, said so
])
async def test_ab_kl_line_is_the_cli_line_and_names_its_distributions(app, fake, monkeypatch, capsys, knob_keys,
                                                                      cli_knobs, basis):
    from spectrascope.tui import cli

    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press(*knob_keys, "a")
        await pilot.press(*"You are a pirate.", "enter")
        await until(pilot, lambda: pane.ab is not None and not pane.busy)
        shown = text_of(app, "#logits-summary")
    monkeypatch.setattr(cli, "_load_session", lambda args, progress=None: fake)
    assert cli.main(["logits", "The capital of France", "--system", "You are a pirate.", *cli_knobs, "--json"]) == 0
    line = json.loads(capsys.readouterr().out)["system_ab"]["kl_summary"]
    assert basis in line and f"A/B: {line} · top" in shown


@pytest.mark.asyncio
async def test_a_running_step_moves_a_copy_never_the_shown_stepper(app, fake, monkeypatch):
    """The UI draws `pane.stepper` (and has handed it to the Spectrum) while a step runs: the worker moves a
    copy, which the pane adopts when the step returns; the shown one keeps its steps, then and after."""
    gate, held, held_when_stepping = hold_steps(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await ready(pilot, app)
        await pilot.press("g")
        await until(pilot, lambda: pane.stepper is not None and not pane.busy)
        shown = pane.stepper
        monkeypatch.setattr(fake, "forward", held_when_stepping)
        await pilot.press("s")
        await until(pilot, held.is_set)
        await pilot.press("t")  # a knob change redraws from the shown stepper meanwhile
        assert pane.stepper is shown and len(shown.steps) == 1
        gate.set()
        await until(pilot, lambda: not pane.busy and pane.stepper is not shown)
        assert len(shown.steps) == 1 and len(pane.stepper.steps) == 2
        assert pane.stepper.steps[0] is shown.steps[0]
        stepped = pane.stepper
        await pilot.press("b")
        await until(pilot, lambda: not pane.busy and pane.stepper is not stepped)
        assert len(stepped.steps) == 2 and len(pane.stepper.steps) == 1
