"""ctrl+s / --session keeps every pane: set each pane away from its defaults with keys, save, open a
fresh app on the file and compare every pane's state; Pairing shows its result again without `r`
(re-run from the contrast cache with the hand-picked anchors). Older files still load."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input

from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.panes.pairing import PairingPane
from spectrascope.tui.panes.spectrum import SpectrumPane
from spectrascope.tui.panes.steering import SteeringPane
from spectrascope.tui.session_file import VERSION, load_session_file
from tests.tui.fake_session import fake_with_saes
from tests.tui.pilot_helpers import until

PROMPT = "The capital of France is Paris"


@pytest.fixture
def sets(tmp_path, monkeypatch):
    """Two small prompt sets, and a contrast cache of this test's own."""
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "c.txt").write_text("The Eiffel Tower is in Paris.\nFrance has cheese.\nParis is in France.\n")
    (tmp_path / "n.txt").write_text("A quick brown fox.\nThe cat sleeps.\nModels predict tokens.\n")
    return tmp_path / "c.txt", tmp_path / "n.txt"


def pane_states(app) -> dict:
    return {pane.id: pane.get_state() for pane in app.query(".pane")}


async def type_into(pilot, selector: str, value: str) -> None:
    box = pilot.app.query_one(selector, Input)
    box.focus()
    box.value = value
    await pilot.press("enter")


async def set_every_pane(pilot, sets) -> None:
    """Move every pane off its defaults, the way a user would (keys), where a key exists."""
    app = pilot.app
    await pilot.press("f2", "t", "t", "K", "K", "p")  # Logits: knobs
    await type_into(pilot, "#logits-system", "You are a pirate.")  # enter applies it: A/B on

    await pilot.press("f3", "left", "m", "z", "s")  # Spectrum: a fixed token, mean over tokens, zoomed, density
    await pilot.press("enter")  # the feature card of the first row

    await pilot.press("f4")  # Pairing: own sets, a run, a hand-picked anchor, thresholds
    pairing = app.query_one(PairingPane)
    pairing.concept_path, pairing.neutral_path = sets
    await pilot.press("r")
    await until(pilot, lambda: pairing.result is not None and not pairing.busy)
    await pilot.press("end", "space")
    await until(pilot, lambda: not pairing.busy and len(pairing.result.anchors) == 4)
    await pilot.press("O", "c")

    await pilot.press("f5")  # Steering: typed features, the second made stronger, every setting moved
    steering = app.query_one(SteeringPane)
    await type_into(pilot, "#steer-features", "coarse:3:2 fine:10:1")
    await pilot.press("down", "plus", "m", "o", "right_square_bracket", "r")
    steering.tokens, steering.sweep, steering.unit = 5, (0.0, 1.5, 3.0), "resid_norm"  # no keys for these
    await type_into(pilot, "#steer-words", "Paris, France")

    await pilot.press("f6")  # Layers: the lens at an earlier token
    layers = app.query_one("#layers")
    layers.query_one("#layers-table").focus()
    await pilot.press("left")

    await pilot.press("f8")  # Anchor: the navigator's extra system prompts (its own takes the A/B's)
    await type_into(pilot, "#anchor-systems", "Be brief. | Answer in French.")

    await pilot.press("f10")  # Why: a target and a contrast token
    await type_into(pilot, "#attr-target", " Paris")
    await type_into(pilot, "#attr-vs", " the")

    await pilot.press("ctrl+f", "r")  # Find: the coarse SAE only, a query
    await type_into(pilot, "#find-query", "Paris")


@pytest.mark.asyncio
async def test_every_pane_round_trips_through_a_session_file(sets, tmp_path):
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt=PROMPT, output_dir=tmp_path)
    async with app.run_test(size=(180, 60)) as pilot:
        await until(pilot, lambda: app.result is not None)
        defaults = pane_states(app)
        await set_every_pane(pilot, sets)
        saved_states = pane_states(app)
        pairing = app.query_one(PairingPane)
        anchors, shown = list(pairing.result.anchors), pairing.anchor
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any(tmp_path.glob("spectrascope-session-*.json")))

    for pane_id, state in saved_states.items():
        assert state != defaults[pane_id], f"{pane_id} was left at its defaults"
    assert saved_states["logits"]["ab"] and saved_states["spectrum"]["feature"] is not None
    assert saved_states["spectrum"]["zoom"] == 2 and saved_states["spectrum"]["scale"] == "density"
    assert saved_states["steering"]["features"][1] == {"role": "fine", "id": 10, "strength": 1.5}
    assert saved_states["steering"]["words"] == ["Paris", "France"]
    saved = load_session_file(next(tmp_path.glob("spectrascope-session-*.json")))
    assert saved["version"] == VERSION

    fake = fake_with_saes()  # a fresh session on the same weights: the same contrast cache key
    restored = SpectrascopeApp(lambda progress: fake, prompt="ignored", restore=saved)
    async with restored.run_test(size=(180, 60)) as pilot:
        pairing = restored.query_one(PairingPane)
        await until(pilot, lambda: restored.result is not None and pairing.result is not None and not pairing.busy)
        assert restored.query_one("#prompt", Input).value == PROMPT
        assert pane_states(restored) == saved_states
        # Pairing's result is back without `r`: from the cache, with the anchors the user picked.
        assert pairing.result.contrast.cached
        assert pairing.result.anchors == anchors and pairing.anchor == shown
        assert pairing.query_one("#pairing-anchors").row_count > 0
        steering = restored.query_one(SteeringPane)
        assert steering.query_one("#steer-words", Input).value == "Paris, France"
        assert steering.query_one("#steer-features", Input).value == " ".join(f.label() for f in steering.features)


@pytest.mark.asyncio
async def test_an_older_session_file_loads_with_the_rest_at_defaults(sets, tmp_path):
    """The first format: no version, no steering section, Pairing without anchors."""
    old = {"prompt": PROMPT, "model": "fake", "panes": {
        "logits": {"settings": {"temperature": 0.5, "top_k": 3, "top_p": 1.0, "seed": 0}, "system": "", "ab": False},
        "pairing": {"concept": str(sets[0]), "neutral": str(sets[1]),
                    "settings": {"n_anchors": 3, "cos_threshold": 0.4, "corr_threshold": 0.5,
                                 "min_subfeatures": 3, "max_rows": 50},
                    "contrast": {}, "anchor": None}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    saved = load_session_file(path)
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="ignored", restore=saved)
    async with app.run_test(size=(180, 60)) as pilot:
        await until(pilot, lambda: app.result is not None)
        assert app.query_one("#prompt", Input).value == PROMPT
        assert app.query_one("#logits").settings.temperature == 0.5
        pairing = app.query_one(PairingPane)
        assert pairing.settings.cos_threshold == 0.4 and pairing.concept_path == sets[0]
        assert pairing.result is None and not pairing.busy  # nothing was shown: nothing re-runs
        assert app.query_one(SteeringPane).get_state() == SteeringPane().get_state()
        spectrum = app.query_one(SpectrumPane)  # no zoom/scale keys: the analyzer's defaults
        assert (spectrum.zoom, spectrum.scale) == (1, "log")


@pytest.mark.parametrize("bad", [{"zoom": 3}, {"zoom": 0}, {"zoom": "2"}, {"scale": "linear"}])
def test_a_bad_analyzer_setting_is_refused_and_changes_nothing(bad):
    pane = SpectrumPane()
    with pytest.raises(ValueError, match="zoom|scale"):
        pane.set_state({"reduce": "mean", **bad})
    assert (pane.zoom, pane.scale, pane.reduce) == (1, "log", "max")


def test_session_file_versions(tmp_path):
    path = tmp_path / "s.json"
    for version in (None, 1, VERSION):
        path.write_text(json.dumps({"prompt": "x", "panes": {}} | ({} if version is None else {"version": version})))
        assert load_session_file(path)["prompt"] == "x"
    for bad in ({"version": VERSION + 1, "prompt": "x"}, {"version": "2", "prompt": "x"}, {"something": 1}):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="not a spectrascope session"):
            load_session_file(path)


# ---- results: what each pane showed comes back (issue 35) ------------------------------------------------
def text_of(app, selector: str) -> str:
    from textual.widgets import Static

    return str(app.query_one(selector, Static).render())


async def show_results_everywhere(pilot, sets) -> None:
    """Make every pane show something that took the model: steps and runs, a Spectrum token among the
    generated ones, a steering comparison and sweep, drift, an attribution and a pairing run."""
    app = pilot.app
    logits = app.query_one("#logits")
    await pilot.press("f2", "t", "t")  # T 0.8: the sampled step is drawn under other knobs than 1.0
    await pilot.press("g", "s", "g")
    await until(pilot, lambda: logits.stepper is not None and len(logits.stepper.steps) == 3 and not logits.busy)
    await pilot.press("n")
    await until(pilot, lambda: logits.runs is not None and not logits.busy)

    await pilot.press("f3", "left")  # Spectrum: the second-to-last token, a generated one

    await pilot.press("f5")
    steering = app.query_one(SteeringPane)
    steering.tokens, steering.n_seeds, steering.sweep = 3, 2, (0.0, 2.0)
    await type_into(pilot, "#steer-words", "Paris, France")
    await type_into(pilot, "#steer-features", "coarse:3:2 fine:10:1")
    await pilot.press("g")
    await until(pilot, lambda: steering.report is not None and not steering.busy)
    await pilot.press("w")  # the sweep too: the pane then shows the sweep
    await until(pilot, lambda: steering.sweep_report is not None and not steering.busy)

    await pilot.press("f8")
    anchor = app.query_one("#anchor")
    await type_into(pilot, "#anchor-system", "You are a pirate.")
    await pilot.press("d")
    await until(pilot, lambda: anchor.drift is not None and not anchor.job_running())

    await pilot.press("f10")
    attribution = app.query_one("#attribution")
    await until(pilot, lambda: attribution.report is not None and not attribution.job_running())

    await pilot.press("f4")
    pairing = app.query_one(PairingPane)
    pairing.concept_path, pairing.neutral_path = sets
    await pilot.press("r")
    await until(pilot, lambda: pairing.result is not None and not pairing.busy)


def shown_numbers(app) -> dict:
    """The numbers on screen in each pane: what a restored session must show again, digit for digit."""
    logits, spectrum = app.query_one("#logits"), app.query_one(SpectrumPane)
    steering, anchor = app.query_one(SteeringPane), app.query_one("#anchor")
    attribution, pairing = app.query_one("#attribution"), app.query_one(PairingPane)
    return {
        "logits steps": [r.to_dict() for r in logits.records], "logits text": text_of(app, "#logits-text"),
        "logits runs": [(r.seed, r.text, tuple(r.token_ids), r.diverges_at) for r in logits.runs],
        "spectrum": (spectrum.position, spectrum.follow_end, spectrum.result.tokens[spectrum.position].text,
                     spectrum.view().to_dict()),
        "steering": (steering.view, steering.report.to_dict(), steering.sweep_report.to_dict(),
                     text_of(app, "#steer-col-coarse")),
        "drift": (anchor.drift.to_dict(), text_of(app, "#anchor-status").replace(" (as saved)", "")),
        "attribution": (attribution.report.to_dict(), text_of(app, "#attr-header")),
        "pairing": (pairing.result.anchors, pairing.anchor, text_of(app, "#pairing-verdict")),
    }


async def saved_session(tmp_path, sets) -> tuple[dict, dict]:
    """A session file made with every pane showing results, and those results' numbers."""
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt=PROMPT, output_dir=tmp_path)
    async with app.run_test(size=(180, 60)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await show_results_everywhere(pilot, sets)
        shown = shown_numbers(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any(tmp_path.glob("spectrascope-session-*.json")))
    return load_session_file(next(tmp_path.glob("spectrascope-session-*.json"))), shown


def restored_everywhere(app) -> bool:
    logits, spectrum = app.query_one("#logits"), app.query_one(SpectrumPane)
    pairing = app.query_one(PairingPane)
    return (app.result is not None and logits.stepper is not None and len(logits.stepper.steps) == 3
            and not logits.busy and spectrum.generated == 3 and pairing.result is not None and not pairing.busy)


@pytest.mark.asyncio
async def test_a_session_brings_back_what_every_pane_showed(sets, tmp_path):
    saved, shown = await saved_session(tmp_path, sets)
    assert saved["results"]["logits"]["steps"][1]["how"] == "sampled"  # with the knobs it was drawn with
    assert saved["results"]["logits"]["steps"][1]["temperature"] == 0.8

    fake = fake_with_saes()
    restored = SpectrascopeApp(lambda progress: fake, prompt="ignored", restore=saved)
    async with restored.run_test(size=(180, 60)) as pilot:
        await until(pilot, lambda: restored_everywhere(restored))
        await pilot.press("f8")  # the Anchor pane: its comparison recomputes when shown, its drift stays
        await pilot.press("f10")  # the Attribution pane: the saved report, not a new run
        await pilot.pause(0.2)
        assert shown_numbers(restored) == shown
        steering = restored.query_one(SteeringPane)
        assert "experiment" not in steering._jobs  # the reports came from the file, not a new run
        assert not restored.query_one("#anchor").job_running("drift")
        assert "attribute" not in restored.query_one("#attribution")._jobs
        notes = [str(n.message) for n in restored._notifications]
        assert any("Session restored" in n and "3 steps fed again, 5 seeded runs as saved" in n and "side and sweep reports" in n
                   for n in notes), notes


@pytest.mark.asyncio
async def test_a_bad_field_gets_one_line_naming_it_and_the_rest_restores(sets, tmp_path):
    saved, shown = await saved_session(tmp_path, sets)
    saved["panes"]["logits"]["settings"]["temperature"] = "hot"
    saved["panes"]["steering"]["features"][0]["strength"] = "x"
    saved["results"]["steering"]["side"]["cells"][0]["runs"][0]["nll"] = "x"
    saved["results"]["anchor"]["drift"]["points"][0]["kl"] = "high"
    saved["results"]["attribution"]["report"]["saes"] = "[bold]broken"
    restored = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="ignored", restore=saved)
    async with restored.run_test(size=(180, 60)) as pilot:
        await until(pilot, lambda: restored_everywhere(restored))
        problems = [str(n.message) for n in restored._notifications if n.severity == "warning"]
        for field in ("temperature", "SteerFeature.strength", "SteeredRun.nll", "DriftPoint.kl",
                      "AttributionReport.saes"):
            hits = [p for p in problems if field in p]
            assert len(hits) == 1 and "\n" not in hits[0] and hits[0].startswith("Session file: "), (field, problems)
        # The app runs on, and everything else came back: the steps, the sweep, the Spectrum's token.
        now = shown_numbers_without(restored, "steering", "drift", "attribution")
        assert now == {k: v for k, v in shown.items() if k in now}
        steering = restored.query_one(SteeringPane)
        assert steering.report is None and steering.sweep_report is not None
        assert restored.query_one("#anchor").drift is None and restored.query_one("#attribution").report is None
        await pilot.press("f2", "g")  # still answering keys
        logits = restored.query_one("#logits")
        await until(pilot, lambda: len(logits.stepper.steps) == 4 and not logits.busy)


def shown_numbers_without(app, *skipped: str) -> dict:
    """`shown_numbers` less the panes whose results were refused."""
    logits, spectrum, pairing = app.query_one("#logits"), app.query_one(SpectrumPane), app.query_one(PairingPane)
    out = {"logits steps": [r.to_dict() for r in logits.records], "logits text": text_of(app, "#logits-text"),
           "logits runs": [(r.seed, r.text, tuple(r.token_ids), r.diverges_at) for r in logits.runs],
           "spectrum": (spectrum.position, spectrum.follow_end, spectrum.result.tokens[spectrum.position].text,
                        spectrum.view().to_dict()),
           "pairing": (pairing.result.anchors, pairing.anchor, text_of(app, "#pairing-verdict"))}
    return {k: v for k, v in out.items() if k not in skipped}


def test_a_results_section_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": VERSION, "prompt": "x", "panes": {}, "results": ["logits"]}))
    with pytest.raises(ValueError, match="'results' objects"):
        load_session_file(path)


def test_each_results_section_restores_on_its_own():
    from spectrascope.tui.session_file import apply_session

    class Pane:
        pane_title = "P"

        def set_state(self, state):
            pass

        def set_results(self, results):
            if results.get("bad"):
                raise ValueError("SavedStep.how: 'x' is not greedy, sampled or picked.")
            return "1 report as saved"

    notes: list[str] = []
    problems = apply_session({"a": Pane(), "b": Pane()}, {"results": {"a": {"bad": 1}, "b": {}, "c": {}, "d": 3}},
                             notes)
    assert problems == ["Session file: a results: SavedStep.how: 'x' is not greedy, sampled or picked.",
                        "Session file: no pane 'c' to restore", "Session file: no pane 'd' to restore"]
    problems = apply_session({"a": Pane()}, {"results": {"a": 3}}, notes)
    assert problems == ["Session file: a results: expected an object, not int"]
    assert notes == ["P: 1 report as saved"]  # b's, once: a failed both times
