"""The Logits strip and the following Spectrum on the embedded model (skipped until its SAEs exist)."""

from __future__ import annotations

import pytest

from spectrascope.core.assets import SAES_DIR
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.engine.labels import PENDING
from spectrascope.core.views.logits import generation_records
from spectrascope.core.engine.session import Session
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.widgets.fast_table import FastTable
from tests.tui.pilot_helpers import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all((SAES_DIR / f"gemma-3-270m-res9-{r}" / "cfg.json").exists() for r in ("coarse", "fine")),
        reason="embedded SAEs not built yet (assets/saes/gemma-3-270m-res9-*)",
    ),
]
PROMPT = "The Eiffel Tower is located in the city of"


def generation_report(*args, **kwargs):  # as `logits --features --json` prints it
    return [r.to_dict() for r in generation_records(*args, **kwargs)]


@pytest.fixture(scope="module")
def session():
    s = Session.load("gemma-3-270m", device="cpu")
    assert set(s.saes) == {"coarse", "fine"}, s.sae_errors
    return s


@pytest.mark.asyncio
async def test_greedy_steps_show_the_cli_report_and_the_spectrum_follows(session):
    app = SpectrascopeApp(lambda progress: session, prompt=PROMPT)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None, timeout=120)
        app.query_one("#logits-table", FastTable).focus()
        pane, spectrum = app.query_one("#logits"), app.query_one("#spectrum")
        for n in (1, 2, 3):
            await pilot.press("g")
            await until(pilot, lambda: pane.stepper is not None and len(pane.stepper.steps) == n and not pane.busy,
                        timeout=120)
        await until(pilot, lambda: not pane.labelling and all(r.features["coarse"][0].label != PENDING
                                                               for r in pane.records), timeout=120)
        cli = generation_report(session, PROMPT, SamplingSettings(temperature=0.0), 3, top=1)  # logits --features
        assert cli[0]["token"] == " Paris" and [r.token for r in pane.records] == [r["token"] for r in cli]
        for rec, want in zip(pane.records, cli):
            assert rec.rank == want["rank"] and rec.prob == pytest.approx(want["prob"], abs=1e-4)
            for role, hits in want["features"].items():
                assert [h.feature for h in rec.features[role]] == [h["feature"] for h in hits]
                assert [h.label for h in rec.features[role]] == [h["label"] for h in hits]
        await pilot.pause()
        n = len(app.result.tokens) + 3
        assert len(spectrum.result.tokens) == n and spectrum.position == n - 1
        coarse = [r for r in spectrum.view().rows() if r.role == "coarse"]
        assert coarse[0].feature == pane.records[-1].features["coarse"][0].feature  # the same codes
