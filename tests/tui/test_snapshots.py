"""Snapshot tests of each pane (deterministic fake session; cursor blink off)."""


from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.pilot import until
from tests.tui.fake_session import fake_with_saes


def fake_app():
    session = fake_with_saes()
    return SpectrascopeApp(lambda progress: session, prompt="The capital of France is")


async def settle(pilot):
    for _ in range(200):
        await pilot.pause(0.02)
        if pilot.app.result is not None:
            break
    for inp in pilot.app.query("Input"):
        inp.cursor_blink = False
    await pilot.pause(0.1)


def test_logits_pane_snapshot(snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.query_one("#logits-table").focus()
        await pilot.press("t", "t", "t", "K", "K", "K", "K", "K", "p", "p")
        await pilot.pause(0.1)

    assert snap_compare(fake_app(), terminal_size=(120, 40), run_before=run_before)


def test_spectrum_pane_snapshot(snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f3")
        pilot.app.query_one("#spectrum-table").focus()
        await pilot.press("left", "enter")
        pane = pilot.app.query_one("#spectrum")
        await until(pilot, lambda: not pane.labelling and not pane.view().pending())  # labels come from a worker
        await pilot.pause(0.1)

    assert snap_compare(fake_app(), terminal_size=(140, 45), run_before=run_before)


def test_help_screen_snapshot(snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause(0.1)

    assert snap_compare(fake_app(), terminal_size=(120, 50), run_before=run_before)
