"""Waiting on a running app under Textual's Pilot: shared by the tests, the benchmarks and
the screenshot script, which all drive the real app headless."""


async def until(pilot, predicate, timeout: float = 60.0, step: float = 0.02) -> None:
    """Let the app run until `predicate()` holds; raise AssertionError after `timeout` seconds."""
    for _ in range(int(timeout / step)):
        await pilot.pause(step)
        if predicate():
            return
    raise AssertionError("condition not reached")
