"""A demo caption's `expect` lines (tui/demo_checks.py): parsed strictly, checked on the fake session, and a
false one is shown to the presenter, never silent."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from spectrascope.core.assets import PROMPTS_DIR
from spectrascope.tui.demo import END_CAPTION, load_demo, parse_demo
from tests.tui.pilot_helpers import fake_app, until

SHIPPED = sorted((PROMPTS_DIR.parent / "demos").glob("*.demo"))


@pytest.mark.parametrize("text, message", [
    ('expect top " the"', "put it under a caption"),
    ('caption x\nexpect colour red', "expect what"),
    ('caption x\nexpect rank " Paris"', 'expect rank "TOKEN" N'),
    ('caption x\nexpect rank " Paris" 4-3', 'expect rank "TOKEN" N'),
    ('caption x\nexpect top-k five', "expect top-k N|off"),
    ('caption x\nexpect top-p 1.5', "expect top-p X|off"),
    ('caption x\nexpect ab maybe', "expect ab on|off"),
    ('caption x\nexpect pane nowhere', "expect pane NAME"),
    ('caption x\nexpect feature 2997', "expect feature ROLE:ID"),
    ('caption x\nexpect top " the', "No closing quotation"),
])
def test_bad_expectations_are_refused_with_their_line(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_demo(text)
    assert f"line {len(text.splitlines())}" in str(err.value)


def test_good_expectations_parse():
    steps = parse_demo('caption c\nexpect top " the"\nexpect rank " Paris" 3\nexpect rank " a" 2-5\nexpect top-k off\nexpect top-p 0.9\n'
                       'expect card strongest\nexpect feature coarse:2997\nexpect contrast 200 200\n'
                       'expect pane steering\nexpect done pairing\n')
    assert [s.verb for s in steps] == ["caption"] + ["expect"] * 10


@pytest.mark.parametrize("script", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_caption_says_what_to_check(script):
    """A shipped caption without an `expect` would go unchecked by tests/integration/test_demo_plays.py."""
    steps = load_demo(script)
    captions = [i for i, s in enumerate(steps) if s.verb == "caption" and s.arg]
    for i, start in enumerate(captions):
        stop = captions[i + 1] if i + 1 < len(captions) else len(steps)
        assert any(s.verb == "expect" for s in steps[start:stop]), f"{script.name} line {steps[start].line}"


@pytest.mark.asyncio
async def test_a_false_caption_is_marked_and_notified_a_true_one_is_not():
    """On the fake session: the true expectations pass (the A/B one once its job lands), the false ones
    mark their caption in red, notify with the script line, and the end line counts them."""
    steps = parse_demo(
        "caption one · knobs\n"                                  # line 1
        "type The capital of France is\nwait-result\nfocus #logits-table\nkey 0 K K K K\n"
        "expect top-k 5\nexpect pane logits\nexpect ab off\n"     # lines 6-8: true
        "expect top-k 10\n"                                      # line 9: false
        "pause 0\n"
        "caption two · the A/B\n"
        "field #logits-system Talk like a pirate.\n"
        "expect ab on\n"                                         # line 13: true once computed
        "expect top \" Paris\"\n"                                # line 14: false, the A/B table is shown
        "pause 0\nend\n")
    app = fake_app(prompt="", demo=steps, demo_pause_scale=0.0)
    async with app.run_test(size=(130, 42)) as pilot:
        caption = lambda: app.query_one("#caption", Static).render()  # noqa: E731
        await until(pilot, lambda: str(caption()) == END_CAPTION, timeout=30)
        assert [(f.line, f.expect) for f in app.demo_failures] == [(9, "expect top-k 10"), (14, 'expect top " Paris"')]
        assert "top-k 5" in app.demo_failures[0].shown and app.demo_failures[0].caption == "one · knobs"
        assert "A/B table is shown" in app.demo_failures[1].shown
        messages = [n.message for n in app._notifications]
        assert any("Line 9" in m and "top-k 5" in m for m in messages)
        assert any("Line 14" in m for m in messages)
        assert "2 expectations did not hold" in str(app.query_one("#status", Static).render())


@pytest.mark.asyncio
async def test_the_caption_shows_the_mark_while_it_is_read():
    steps = parse_demo('caption Paris on top\ntype The capital of France is\nwait-result\n'
                       'expect top "nowhere"\npause 600\nend\n')
    app = fake_app(prompt="", demo=steps)
    async with app.run_test(size=(130, 42)) as pilot:
        caption = lambda: app.query_one("#caption", Static).render()  # noqa: E731
        await until(pilot, lambda: "✗" in str(caption()), timeout=30)
        shown = caption()
        assert str(shown).startswith("Paris on top   ✗ on screen: ") and "is on top" in str(shown)
        assert any("red" in str(span.style) for span in shown.spans)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: str(caption()) == END_CAPTION, timeout=5)
