import pytest

from spectrascope.tui.cli import main, parse_args
from spectrascope.tui.config import load_config
from spectrascope.tui.demo import parse_demo


def test_config_fills_unset_flags_and_flags_win(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[model]\nname = "gemma-2-2b"\ndtype = "float32"\nsae_dtype = "float32"\n'
                   '[knobs]\ntemperature = 0.5\ntop_k = 40\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    from spectrascope.tui.cli import _apply_config

    args = parse_args([])
    config = _apply_config(args)
    assert (args.model, args.dtype, args.device, args.sae_dtype) == ("gemma-2-2b", "float32", "auto", "float32")
    assert config["knobs"]["top_k"] == 40
    args = parse_args(["--model", "gemma-3-270m", "--sae-dtype", "bfloat16"])
    _apply_config(args)
    assert args.model == "gemma-3-270m" and args.sae_dtype == "bfloat16"
    cfg.write_text('[model]\nsae_dtype = "fp8"\n')
    with pytest.raises(ValueError, match="sae_dtype"):
        _apply_config(parse_args([]))


@pytest.mark.parametrize("text, message", [
    ("[model\nname=1", "not valid TOML"),
    ("[colors]\nx = 1", "unknown section"),
    ("[model]\nnmae = 'x'", "unknown key"),
    ("[knobs]\ntemperature = -1", "temperature"),
])
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(cfg)


def test_bad_config_is_a_clean_cli_error(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[knobs]\ntop_p = 7")
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    assert main(["probe", "x"]) == 2
    assert "top_p" in capsys.readouterr().err


def test_demo_scripts_parse_and_reject_typos(tmp_path):
    steps = parse_demo("# talk\ntype The capital of France is\nwait-result\npause 1.5\nkey t t\npane spectrum\n")
    assert [s.verb for s in steps] == ["type", "wait-result", "pause", "key", "pane"]
    with pytest.raises(ValueError, match="line 1: unknown step 'tpye'"):
        parse_demo("tpye hello")
    with pytest.raises(ValueError, match="pause needs a number"):
        parse_demo("pause soon")


@pytest.mark.asyncio
async def test_demo_replays_against_the_app(tiny_sae_session):
    from spectrascope.tui.app import SpectrascopeApp

    steps = parse_demo("type Paris is\nwait-result\nfocus #logits-table\nkey t t\npane spectrum\n")
    app = SpectrascopeApp(lambda progress: tiny_sae_session, prompt="", demo=steps)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(500):
            await pilot.pause(0.02)
            if app.query_one("TabbedContent").active == "tab-spectrum":
                break
        assert app.result is not None and app.result.prompt == "Paris is"
        assert app.query_one("#logits").settings.temperature == pytest.approx(0.8)


def test_serve_binds_loopback_by_default():
    args = parse_args(["serve"])
    assert args.host == "127.0.0.1"


def test_sae_flags_override_the_config_per_role(tmp_path, monkeypatch):
    from spectrascope.core.engine.saes import PRESETS, SAESpec
    from spectrascope.tui.cli import _apply_config

    scope = tmp_path / "gemma-scope-2b-pt-res" / "layer_12" / "width_16k" / "average_l0_82"
    scope.mkdir(parents=True)
    (scope / "params.npz").write_bytes(b"")  # only its name is read here
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[saes]\ncoarse = "gemma-scope-2b-16k"\nfine = "{scope}"\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    args = parse_args([])
    _apply_config(args)
    assert args.sae_presets == (("coarse", PRESETS["gemma-scope-2b-16k"]),
                                ("fine", SAESpec("gemma_scope_folder", path=str(scope),
                                                 hook_name="blocks.12.hook_resid_post")))
    args = parse_args(["spectrum", "x", "--sae", "fine=gemma-scope-2b-pt-res/layer_12/width_262k/"
                                      "average_l0_121", "--role", "fine"])
    _apply_config(args)
    assert args.role == "fine" and dict(args.sae_presets)["coarse"] == PRESETS["gemma-scope-2b-16k"]
    assert dict(args.sae_presets)["fine"].sae_id == "layer_12/width_262k/average_l0_121"
    monkeypatch.delenv("SPECTRASCOPE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    args = parse_args(["--model", "gemma-2-2b", "--sae", "coarse=gemma-scope-2b-262k"])
    _apply_config(args)  # no config: the model's defaults, then the flag
    assert args.sae_presets == (("coarse", PRESETS["gemma-scope-2b-262k"]), ("fine", "gemma-scope-2b-262k"))
    cfg.write_text('[saes]\nfine = "gemma-scope-2b-pt-res/layer_99/width_16k/average_l0_82"\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    with pytest.raises(ValueError, match=r"\[saes\] fine: Release"):
        _apply_config(parse_args([]))


@pytest.mark.asyncio
async def test_the_shipped_talk_plays_start_to_end():
    """assets/demos/france.demo on the fake session, pauses skipped: every pane in the story is
    reached, each run finishes, and the demo ends on its end marker."""
    from textual.widgets import Static

    from spectrascope.core.assets import PROMPTS_DIR
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.demo import END_CAPTION, load_demo
    from tests.tui.fake_session import fake_with_saes
    from tests.tui.pilot_helpers import until

    steps = load_demo(PROMPTS_DIR.parent / "demos" / "france.demo")
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="", demo=steps, demo_pause_scale=0.0)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: END_CAPTION in str(app.query_one("#caption", Static).render()), timeout=120)
        assert app.result.prompt == "My favourite place in the world is"  # steering runs on a neutral prompt
        assert app.query_one("#pairing").result is not None and app.query_one("#steering").report is not None
        assert app.query_one("#logits-system").value.startswith("You are a travel guide")
        assert app.query_one("#spectrum").feature is not None  # the card of a feature was opened


@pytest.mark.asyncio
async def test_ctrl_n_ends_a_hold_and_a_long_pause():
    from textual.widgets import Static

    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.demo import END_CAPTION
    from tests.tui.fake_session import fake_with_saes
    from tests.tui.pilot_helpers import until

    steps = parse_demo("caption first\nhold\ncaption second\npause 600\nend\n")
    app = SpectrascopeApp(lambda progress: fake_with_saes(), prompt="x", demo=steps)
    async with app.run_test(size=(120, 40)) as pilot:
        caption = lambda: str(app.query_one("#caption", Static).render())  # noqa: E731
        await until(pilot, lambda: caption() == "first")
        await pilot.pause(0.3)
        assert caption() == "first"  # a hold waits for the presenter
        await pilot.press("ctrl+n")
        await until(pilot, lambda: caption() == "second")
        await pilot.press("ctrl+n")  # and a 10-minute pause ends now
        await until(pilot, lambda: caption() == END_CAPTION, timeout=5)
