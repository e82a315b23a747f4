"""The logit lens against an independent computation from HF hidden states."""

from __future__ import annotations

import pytest
import torch

from spectrascope.core.analysis.lens import logit_lens
from spectrascope.core.engine.session import Request


@pytest.mark.parametrize("fixture", ["tiny_session", "tiny_gemma2_session"])
def test_lens_equals_hf_hidden_states_through_norm_and_unembedding(fixture, request):
    session = request.getfixturevalue(fixture)
    prompt = "The capital of France is"
    rep = logit_lens(session, prompt, position=-1, top=5)
    hf = session.model.hf_model
    ids = torch.tensor([session.tokenize(prompt)[0]])
    with torch.no_grad():
        out = hf(ids, output_hidden_states=True)
    hs = out.hidden_states  # emb, after block 0, ..., after the last block *normed* (HF convention)
    cap = hf.config.final_logit_softcapping if hasattr(hf.config, "final_logit_softcapping") else None
    L = session.model.n_layers
    assert len(rep.rows) == L + 1 and rep.rows[0].layer == "emb" and rep.rows[-1].layer == str(L - 1)
    for layer in range(L):  # HF's hidden_states[L] is already normed, so check up to L - 1 by hand
        x = hs[layer][0, -1]
        ref = hf.lm_head(hf.model.norm(x)).float()
        if cap:
            ref = torch.tanh(ref / cap) * cap
        p = ref.softmax(-1)
        row = rep.rows[layer]
        assert [t for t, _, _ in row.top] == p.topk(5).indices.tolist()
        assert [v for _, _, v in row.top] == pytest.approx(p.topk(5).values.tolist(), rel=1e-4, abs=1e-6)
        assert row.norm == pytest.approx(float(x.norm()), rel=1e-4)
    # The last layer's lens is the model's own next-token distribution.
    final = out.logits[0, -1].float().softmax(-1)
    assert rep.target[0] == int(final.argmax())
    assert rep.rows[-1].target_rank == 1 and rep.rows[-1].target_prob == pytest.approx(float(final.max()), rel=1e-4)
    res = session.run(Request(prompt, codes=False))
    assert rep.target[0] == int(res.logits.argmax())


def test_commitment_and_settled_grid(tiny_session):
    rep = logit_lens(tiny_session, "one two three four", position=2)
    n_layers = tiny_session.model.n_layers + 1
    assert len(rep.settled) == n_layers and all(len(r) == len(rep.tokens) for r in rep.settled)
    assert all(rep.settled[-1])  # at the output every position's top-1 is itself
    column = [r[2] for r in rep.settled]
    first = [r.layer for r in rep.rows].index(rep.commitment)
    assert all(column[first:]) and (first == 0 or not column[first - 1])
    assert [r.target_rank == 1 for r in rep.rows] == column
    with pytest.raises(ValueError, match="outside the prompt"):
        logit_lens(tiny_session, "one two", position=9)


def test_lens_command_table_and_json(tiny_model_dir, capsys):
    import json

    from spectrascope.tui.cli import main

    assert main(["lens", "The capital of France", "--model", str(tiny_model_dir), "--dtype", "float32", "--json",
                 "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"][0]["layer"] == "emb" and len(out["rows"][0]["top"]) == 3 and out["commitment"] is not None
    assert main(["lens", "The capital of France", "--model", str(tiny_model_dir), "--dtype", "float32"]) == 0
    assert "logit lens at token" in capsys.readouterr().out
    assert main(["lens", "x", "--position", "7", "--model", str(tiny_model_dir)]) == 2


@pytest.mark.parametrize("fixture", ["tiny_session", "tiny_gemma2_session"])
@pytest.mark.parametrize("chunk", [37, 8192])
def test_settled_grid_equals_the_full_argmax_of_every_layer(fixture, chunk, request):
    """The chunked, early-exit grid against the plain computation: every (layer, position) through
    the whole unembedding, argmax compared with the output's top-1."""
    from spectrascope.core.analysis.lens import hooks, settled_grid

    session = request.getfixturevalue(fixture)
    ids = session.tokenize("one two three four five six seven eight")[0]
    names = hooks(session.model.n_layers)
    resid = session.forward(ids, capture=names, keep_logits=0).resid
    stream = torch.stack([resid[h][0].float() for h in names])  # (L+1, T, d)
    full = [session.lens_logits(stream[layer]).argmax(-1) for layer in range(len(names))]
    ref = tuple(tuple(bool(v) for v in (top == full[-1])) for top in full)
    grid = settled_grid(session, stream, full[-1], chunk=chunk)
    assert grid == ref
    assert any(not v for row in grid for v in row)  # not all True: the scan had rows to reject


def test_the_table_first_then_the_grid_from_one_stream_equals_the_whole_report(tiny_session, monkeypatch):
    """The pane's order (table, then grid) from one forward gives the CLI's report, at any position."""
    from dataclasses import replace

    from spectrascope.core.analysis.lens import lens_grid, lens_table, read_stream

    prompt = "one two three four five"
    whole = {pos: logit_lens(tiny_session, prompt, pos) for pos in (-1, 2)}
    stream = read_stream(tiny_session, prompt)
    monkeypatch.setattr(tiny_session, "forward", lambda *a, **k: pytest.fail("a second forward"))
    grid = lens_grid(tiny_session, stream)
    for pos, want in whole.items():
        table = lens_table(tiny_session, stream, pos)
        assert table.settled == () and replace(table, settled=grid) == want
    with pytest.raises(ValueError, match="outside the prompt"):
        lens_table(tiny_session, stream, len(stream.ids))


class _MatrixLens:
    """A lens over a fixed unembedding, to put exact ties where the scan must break them as argmax does."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    def unembedding(self) -> torch.Tensor:
        return self.weight

    def lens_logits(self, resid, vocab=None):
        w = self.weight if vocab is None else self.weight[vocab]
        return resid @ w.T


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_settled_grid_breaks_exact_ties_towards_the_lower_id_like_argmax(chunk):
    from spectrascope.core.analysis.lens import settled_grid

    g = torch.Generator().manual_seed(0)
    weight = torch.randint(-3, 4, (11, 4), generator=g).float()
    weight[2], weight[4] = torch.tensor([3.0, -3, 3, -3]), torch.tensor([3.0, 3, -3, 3])  # |w| = 6, the most entries of 3 allow
    weight[7] = weight[2]  # token 7 always ties token 2 (lower id: 2 wins where they are best)
    weight[9] = weight[4]  # and 9 ties 4
    stream = torch.randint(-2, 3, (5, 6, 4), generator=g).float()  # (L+1, T, d), small integers: exact sums
    stream[:, 0] = weight[2] * 3  # position 0's rows all point at tokens 2 and 7
    stream[:, 1] = weight[4] * 3
    lens = _MatrixLens(weight)
    full = [(stream[layer] @ weight.T).argmax(-1) for layer in range(stream.shape[0])]
    assert all(int(top[0]) == 2 and int(top[1]) == 4 for top in full)  # the ties are real: 2 = 7 and 4 = 9 are best
    for final in (full[-1], torch.tensor([7, 9, 0, 1, 2, 3])):  # the model's own, then targets that lose the tie
        want = tuple(tuple(bool(v) for v in (top == final)) for top in full[:-1]) + ((True,) * 6,)
        assert settled_grid(lens, stream, final, chunk=chunk) == want
