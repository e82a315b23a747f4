"""Shared Pilot helpers for the TUI tests (`until` itself lives in the package)."""

from spectrascope.tui.pilot import until

PANES = ["logits", "spectrum", "pairing", "steering"]
# Every text field in the app, with the pane it shows on (the prompt shows on all).
TEXT_FIELDS = {"#prompt": "logits", "#logits-system": "logits", "#steer-features": "steering",
               "#steer-words": "steering", "#anchor-system": "anchor", "#anchor-systems": "anchor",
               "#attr-target": "attribution", "#attr-vs": "attribution", "#find-query": "find"}


def pane_home(app, pane: str):
    """The widget that has the keyboard when `pane` shows (its table)."""
    return app.query_one(app.query_one(f"#{pane}").focus_target)


async def show_pane(pilot, pane: str) -> None:
    """Show `pane` as F2-F5 do and wait until the keyboard is on it."""
    pilot.app.action_show_pane(pane)
    await until(pilot, lambda: pilot.app.focused is pane_home(pilot.app, pane))


__all__ = ["PANES", "TEXT_FIELDS", "pane_home", "show_pane", "until"]


def fake_app(prompt: str = "The capital of France is", **kwargs):
    """The real app on the deterministic fake session."""
    from spectrascope.tui.app import SpectrascopeApp
    from tests.tui.fake_session import fake_with_saes

    session = fake_with_saes()
    return SpectrascopeApp(lambda progress: session, prompt=prompt, **kwargs)
