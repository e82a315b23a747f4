"""Every shipped demo played end to end on the embedded model (Gemma 3 270M and its SAEs), pauses skipped:
each caption's `expect` lines must hold on the screen the audience would see. And the three captions the
talk rehearsal found false (../shared/reviews/stage-2026-12-06.md) are caught by those checks."""

from __future__ import annotations

import pytest
from textual.widgets import Static
from textual.worker import WorkerState

from spectrascope.core.assets import PROMPTS_DIR, SAES_DIR
from spectrascope.core.engine.embedded import embedded_dir, is_complete
from spectrascope.tui.demo import END_CAPTION, load_demo, parse_demo
from spectrascope.tui.pilot import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_complete(embedded_dir()), reason="embedded model not converted here"),
    pytest.mark.skipif(not all((SAES_DIR / f"gemma-3-270m-res9-{r}" / "cfg.json").exists() for r in ("coarse", "fine")),
                       reason="embedded SAEs not built yet (assets/saes/gemma-3-270m-res9-*)"),
]

DEMOS = sorted((PROMPTS_DIR.parent / "demos").glob("*.demo"))


@pytest.fixture(scope="module")
def session():
    from spectrascope.core.engine.session import Session

    return Session.load("gemma-3-270m")  # as the app loads it by default


async def play_to_the_end(session, steps, size=(130, 42)):
    """The app in its own --demo mode (the real path), pauses skipped; returns it after the demo worker ends."""
    from spectrascope.tui.app import SpectrascopeApp

    app = SpectrascopeApp(lambda progress: session, prompt="", demo=steps, demo_pause_scale=0.0)
    async with app.run_test(size=size) as pilot:
        demo = next(w for w in app.workers if w.group == "demo")
        await until(pilot, lambda: demo.is_finished, timeout=900)
        assert demo.state == WorkerState.SUCCESS, demo.error
        assert str(app.query_one("#caption", Static).render()).startswith(END_CAPTION)
        return app


@pytest.mark.asyncio
@pytest.mark.parametrize("script", DEMOS, ids=lambda p: p.stem)
async def test_every_shipped_demo_says_what_the_screen_shows(session, script):
    steps = load_demo(script)
    app = await play_to_the_end(session, steps)
    assert not app.demo_failures, "\n".join([session.describe(), *map(str, app.demo_failures)])
    assert sum(s.verb == "expect" for s in steps) >= 1


REHEARSED = """
caption 2 · The next-token distribution over the whole vocabulary: " Paris" on top
type The capital of France is
wait-result
focus #logits-table
key 0
expect top " Paris"
pause 6
caption 3 · top-k 5 keeps five tokens: the rest are dimmed, with the knob that dropped them
key 0 K K K K K
expect top-k 5
pause 6
caption 4 · A system prompt shifts the distribution: same prompt with and without it, rank shifts and KL
key 0
field #logits-system You are a travel guide who only talks about Italy.
focus #logits-table
key a
expect ab on
pause 8
key a
end
"""


@pytest.mark.asyncio
async def test_the_rehearsals_three_false_captions_are_caught(session):
    """The script as rehearsed (captions and keys), with what its captions said written as expectations."""
    app = await play_to_the_end(session, parse_demo(REHEARSED))
    shown = {f.expect: f.shown for f in app.demo_failures}
    assert list(shown) == ['expect top " Paris"', "expect top-k 5", "expect ab on"]
    assert shown['expect top " Paris"'].startswith('" the" is on top; " Paris" is #')  # 3 or 4: see france.demo
    assert "top-k 10" in shown["expect top-k 5"]
    assert "A/B is off" in shown["expect ab on"]


@pytest.mark.asyncio
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
async def test_the_logits_captions_hold_in_either_cpu_dtype(dtype):
    """On a CPU the dtype is picked by timing (README), so one machine can show either: the captions up to the
    Spectrum must be true in both (in bfloat16 " Paris" and " one" tie)."""
    from spectrascope.core.engine.session import Session

    steps = load_demo(DEMOS[0].parent / "france.demo")
    upto = next(i for i, s in enumerate(steps) if s.verb == "pane" and s.arg != "logits")
    session = Session.load("gemma-3-270m", dtype=dtype, saes=[])
    app = await play_to_the_end(session, [*steps[:upto], *parse_demo("end")])
    assert sum(s.verb == "expect" for s in steps[:upto]) >= 8
    assert not app.demo_failures, "\n".join([session.describe(), *map(str, app.demo_failures)])
