"""Several prompts extended in one batched forward (`core/engine/kv_batch.py`, `Request.companions`)
give each row what a fresh forward of that row alone gives: logits, residuals and SAE codes, with
cached prefixes of different lengths, new tokens of different lengths, and prompts past the tiny
Gemma 3's sliding window (16 tokens), where a padded column must not count toward the window."""

from __future__ import annotations

import pytest
import torch
from spectrascope.core.engine import kv_batch
from spectrascope.core.engine.session import Request

WORDS = ("the cat sat on a mat while the dog ran far away from home and then it rained over the quiet "
         "town all night long until morning came again").split()


def text(n_words: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n_words))


def fresh(session, prompt: str, hooks=()) -> tuple[torch.Tensor, dict]:
    ids, _ = session.tokenize(prompt)
    out = session.forward(ids, capture=hooks, keep_logits=1)
    return out.logits[0, -1].float(), {h: out.resid[h][0] for h in hooks}


def test_block_causal_masks_by_hand():
    # Cached: row 0 at positions 0, 1 (then a hole), row 1 at 0, 1, 2; new: row 0 at 2, row 1 at 3.
    owner_k, pos_k = torch.tensor([0, 0, -1, 1, 1, 1, 0, 1]), torch.tensor([0, 1, 2, 0, 1, 2, 2, 3])
    owner_q, pos_q = owner_k[-2:], pos_k[-2:]
    masks = kv_batch.attention_masks(owner_k, pos_k, owner_q, pos_q, ["full_attention", "sliding_attention"], 2,
                                     torch.float32)
    seen = (masks["full_attention"][0, 0] == 0).int().tolist()
    assert seen == [[1, 1, 0, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1, 0, 1]]  # its own row only, never a hole
    # Window 2: itself and one token back in its own row, however many columns lie between.
    assert (masks["sliding_attention"][0, 0] == 0).int().tolist() == [[0, 1, 0, 0, 0, 0, 1, 0],
                                                                      [0, 0, 0, 0, 0, 1, 0, 1]]


def test_a_group_crops_to_each_rows_prefix_and_cuts_the_holes_at_the_end():
    group = kv_batch.RowGroup(cache=type("C", (), {"layers": []})(), owner=torch.tensor([0, 0, 0, 1, 1, 1, 1]),
                              positions=torch.tensor([0, 1, 2, 0, 1, 2, 3]), size=2)
    group.crop([2, 4])
    assert group.owner.tolist() == [0, 0, -1, 1, 1, 1, 1] and group.lengths() == [2, 4]
    group.crop([2, 1])
    assert group.owner.tolist() == [0, 0, -1, 1] and group.positions.tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("head,system_words", [(5, 3), (14, 4), (30, 9)])
def test_a_keystroke_with_a_companion_equals_fresh_forwards(tiny_sae_session, head, system_words, monkeypatch):
    session = tiny_sae_session
    batched = []
    split = kv_batch.RowGroup.appended
    monkeypatch.setattr(kv_batch.RowGroup, "appended", lambda self: batched.append(self.size) or split(self))
    session.forget_prompt()
    hook = session.sae_hook("coarse")
    system = text(system_words, start=40)
    typed = [text(head), text(head) + " and", text(head) + " and the", text(head - 2), text(head + 6)]
    for prompt in typed:  # keystrokes, a deletion and a paste: prefixes reused and cut back
        with_system = f"{system}\n\n{prompt}"
        result = session.run(Request(prompt, companions=(Request(with_system, slot="ab-with"),)))
        logits, resid = fresh(session, prompt, (hook,))
        torch.testing.assert_close(result.logits, logits, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(result.resid[hook], resid[hook].float(), atol=2e-4, rtol=1e-4)
        # The companion's answer is kept: asking for it runs nothing and equals a fresh forward.
        kept = session.run(Request(with_system, layers=(), codes=False, slot="ab-with"))
        assert kept.reused == len(kept.tokens) - 1
        torch.testing.assert_close(kept.logits, fresh(session, with_system)[0], atol=2e-4, rtol=1e-4)
    assert batched == [2] * len(typed)  # each keystroke: one forward over both rows


def test_a_run_without_companions_is_unchanged(tiny_sae_session):
    session = tiny_sae_session
    session.forget_prompt()
    first = session.run(Request(text(20)))
    again = session.run(Request(text(20) + " and"))
    assert again.reused > 0
    torch.testing.assert_close(again.logits, fresh(session, text(20) + " and")[0], atol=2e-4, rtol=1e-4)
    assert first.logits is not None


def test_rows_that_change_by_different_amounts_leave_holes_and_stay_exact(tiny_sae_session):
    """The system text and the prompt both change: the with-system row is cut back further than the
    prompt's, so the group gets holes in the middle; past a quarter of holes it is rebuilt."""
    session = tiny_sae_session
    session.forget_prompt()
    steps = [(text(3, 40), text(12)), (text(5, 40), text(12) + " and"), (text(2, 7), text(12) + " and the"),
             (text(2, 7), text(25)), (text(9, 3), text(25) + " far"), (text(9, 3), text(25) + " far away")]
    for system, prompt in steps:
        with_system = f"{system}\n\n{prompt}"
        result = session.run(Request(prompt, companions=(Request(with_system, slot="ab-with"),)))
        torch.testing.assert_close(result.logits, fresh(session, prompt)[0], atol=2e-4, rtol=1e-4)
        kept = session.run(Request(with_system, layers=(), codes=False, slot="ab-with"))
        torch.testing.assert_close(kept.logits, fresh(session, with_system)[0], atol=2e-4, rtol=1e-4)
    # The A/B off again: the prompt's row is copied out of the group and extended on its own.
    alone = session.run(Request(text(25) + " far away from"))
    assert alone.reused > 0
    torch.testing.assert_close(alone.logits, fresh(session, text(25) + " far away from")[0], atol=2e-4, rtol=1e-4)
