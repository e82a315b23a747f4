"""Shared Pilot helpers for the TUI tests."""


async def until(pilot, predicate, timeout: float = 60.0, step: float = 0.02) -> None:
    """Let the app run until `predicate()` holds; fail the test after `timeout` seconds."""
    for _ in range(int(timeout / step)):
        await pilot.pause(step)
        if predicate():
            return
    raise AssertionError("condition not reached")
