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
