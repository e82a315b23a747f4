import pytest
from textual.widgets import Input, Static

from spectrascope.tui.app import SpectrascopeApp
from tests.tui.fake_session import FakeSession
from tests.tui.pilot_helpers import until


def make_app(session=None, prompt="The capital of France is", fail_load=None):
    def factory(progress):
        progress("loading fake", 0.5)
        if fail_load:
            raise fail_load
        return session or FakeSession()

    return SpectrascopeApp(factory, prompt=prompt)




@pytest.mark.asyncio
async def test_first_frame_then_result_after_load():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.result is not None)
        assert app.query_one("#logits-table").row_count == 20
        assert "fake" in str(app.sub_title)


@pytest.mark.asyncio
async def test_typing_runs_the_latest_prompt_only():
    session = FakeSession(delay=0.05)
    app = make_app(session, prompt="")
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.session is not None)
        await pilot.press("slash", *"Paris is")  # / enters the prompt (keys act on the pane until then)
        await until(pilot, lambda: app.result is not None and app.result.prompt == "Paris is")


@pytest.mark.asyncio
async def test_bursts_of_edits_are_debounced_into_one_run():
    session = FakeSession()
    app = make_app(session, prompt="x")
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.result is not None)
        before = session.calls
        for _ in range(10):  # ten edits inside one debounce window
            app.schedule_run()
        await pilot.pause(0.5)
        assert session.calls == before + 1


@pytest.mark.asyncio
async def test_stale_results_are_dropped():
    app = make_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.result is not None)
        current = app.result
        from spectrascope.core.engine.session import Request
        from spectrascope.tui.messages import ResultReady

        stale = FakeSession().run(Request("old prompt", run_id=app._run_id - 1))
        app.post_message(ResultReady(stale))
        await pilot.pause(0.1)
        assert app.result is current


@pytest.mark.asyncio
async def test_load_failure_is_shown_and_app_keeps_running():
    from spectrascope.core.engine.models import ModelUnavailable

    app = make_app(fail_load=ModelUnavailable("Model 'gemma-2-2b' is not on this machine"))
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        status = str(app.query_one("#status", Static).render())
        assert "not on this machine" in status
        await pilot.press("slash", "a")  # still responsive
        assert app.query_one("#prompt", Input).value.endswith("a")


@pytest.mark.asyncio
async def test_engine_error_is_inline_and_next_prompt_works():
    app = make_app(FakeSession(fail_on="boom"), prompt="")
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.session is not None)
        await pilot.press("slash", *"boom", "enter")
        await pilot.pause(0.3)
        assert "boom" in str(app.query_one("#status", Static).render())
        app.query_one("#prompt", Input).value = "ok"
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not None)


@pytest.mark.asyncio
async def test_hostile_tokens_render_as_text():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.result is not None)
        app.query_one("#prompt", Input).value = "[bold] \x1b[31m [/] é"
        await pilot.press("enter")
        await until(pilot, lambda: app.result is not None and "[/]" in app.result.prompt)
        strip = str(app.query_one("#tokens").render())
        assert "\x1b" not in strip


@pytest.mark.asyncio
async def test_quit_cancels_a_running_forward():
    app = make_app(FakeSession(delay=5.0))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.session is not None)
        await pilot.pause(0.1)
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
    assert app._cancel is not None and app._cancel.is_set()


@pytest.mark.asyncio
async def test_ctrl_o_shows_each_loaded_saes_info():
    from spectrascope.tui.sae_info import SAEInfoScreen
    from tests.tui.fake_session import fake_with_saes

    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="Paris")
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, SAEInfoScreen))
        assert [i.role for i in app.screen.infos] == ["coarse", "fine"]
        assert all(i.measured is None for i in app.screen.infos)  # random SAEs: it says so
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SAEInfoScreen))


@pytest.mark.asyncio
async def test_f7_switches_an_sae_without_a_restart(tmp_path):
    from spectrascope.tui.sae_picker import SAEPickerScreen
    from tests.conftest import make_tiny_sae
    from tests.tui.fake_session import fake_with_saes

    folder = tmp_path / "new-fine"
    make_tiny_sae(8, 96, "blocks.1.hook_resid_post", "topk", k=4, seed=9).save_model(str(folder))
    wide = tmp_path / "too-wide"
    make_tiny_sae(16, 32, "blocks.1.hook_resid_post").save_model(str(wide))
    session = fake_with_saes()
    app = SpectrascopeApp(lambda progress: session, prompt="Paris")
    async with app.run_test(size=(140, 45)) as pilot:
        await until(pilot, lambda: app.result is not None)
        await pilot.press("f7")
        await until(pilot, lambda: isinstance(app.screen, SAEPickerScreen))
        box = app.screen.query_one("#picker-spec", Input)
        box.value = "medium=x"
        await pilot.press("enter")
        assert "ROLE=SPEC" in str(app.screen.query_one("#picker-error", Static).render())  # stays open, says why
        box.value = f"fine={wide}"
        await pilot.press("enter")
        await until(pilot, lambda: "not switched" in str(app.query_one("#status", Static).render()))
        assert session.saes["fine"].cfg.d_sae == 512  # a mismatched SAE leaves the old one in place
        await pilot.press("f7")
        await until(pilot, lambda: isinstance(app.screen, SAEPickerScreen))
        app.screen.query_one("#picker-spec", Input).value = f"fine={folder}"
        await pilot.press("enter")
        await until(pilot, lambda: session.saes["fine"].cfg.d_sae == 96 and app.result.spectra["fine"].width == 96)
