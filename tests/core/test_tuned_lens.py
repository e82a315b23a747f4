"""The linear tuned lens: translators equal numpy least squares, KL and top-1 equal a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrascope.core.analysis.tuned_lens import compare, fit_translators, residual_stream


def _rows(session, texts):
    return [session.tokenize(t)[0] for t in texts]


def test_residual_stream_is_hf_hidden_states_without_bos(tiny_session):
    ids = _rows(tiny_session, ["one two three four five"])
    stream = residual_stream(tiny_session, ids)
    hf = tiny_session.model.hf_model
    with torch.no_grad():
        hs = hf(torch.tensor(ids), output_hidden_states=True).hidden_states
    L = tiny_session.model.n_layers
    assert stream.shape == (L + 1, len(ids[0]) - 1, hf.config.hidden_size)
    for layer in range(L):  # HF's last hidden state is normed; the earlier ones are the raw stream
        torch.testing.assert_close(stream[layer], hs[layer][0, 1:].float(), rtol=1e-4, atol=1e-5)


def test_translators_equal_numpy_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 400, 6)) * np.array([1.0, 5.0, 0.2, 1, 1, 1])
    x[2] = x[1] @ rng.normal(size=(6, 6)) + rng.normal(size=6) + 0.01 * rng.normal(size=(400, 6))
    stream = torch.tensor(x, dtype=torch.float32)
    maps = fit_translators(stream, ridge=0.0)
    for layer in range(2):
        design = np.hstack([x[layer], np.ones((400, 1))])
        coef = np.linalg.lstsq(design, x[2], rcond=None)[0]
        A, b = maps[layer]
        np.testing.assert_allclose(A.numpy(), coef[:6], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b.numpy(), coef[6], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(maps[-1][0], torch.eye(6))
    # A ridge penalty shrinks the map (towards predicting the mean).
    shrunk = fit_translators(stream, ridge=10.0)
    assert float(shrunk[1][0].norm()) < float(maps[1][0].norm())


def test_compare_scores_both_lenses_like_a_direct_computation(tiny_session):
    texts = ["the cat sat on the mat and looked around", "one two three four five six seven eight",
             "a b c d e f g h i j k", "red green blue yellow purple orange"]
    fit = residual_stream(tiny_session, _rows(tiny_session, texts[:3]))
    held = residual_stream(tiny_session, _rows(tiny_session, texts[3:]))
    maps = fit_translators(fit, ridge=1e-2)
    scores = compare(tiny_session, held, maps, chunk=2)
    assert [s.layer for s in scores] == ["emb"] + [str(i) for i in range(tiny_session.model.n_layers)]
    out = torch.log_softmax(tiny_session.lens_logits(held[-1]), -1)
    for layer, s in enumerate(scores):
        for x, kl, top1 in ((held[layer], s.kl_logit, s.top1_logit),
                            (held[layer] @ maps[layer][0] + maps[layer][1], s.kl_tuned, s.top1_tuned)):
            logp = torch.log_softmax(tiny_session.lens_logits(x), -1)
            ref = torch.nn.functional.kl_div(logp, out, log_target=True, reduction="none").sum(-1).mean()
            assert kl == pytest.approx(float(ref), rel=1e-4, abs=1e-6)
            assert top1 == pytest.approx(float((logp.argmax(-1) == out.argmax(-1)).float().mean()))
    # At the output both lenses are the model itself.
    assert scores[-1].kl_logit == pytest.approx(0, abs=1e-6) and scores[-1].kl_tuned == pytest.approx(0, abs=1e-6)
    assert scores[-1].top1_logit == scores[-1].top1_tuned == 1.0


def test_tuned_lens_is_fitted_once_then_read_from_the_cache(tiny_session, monkeypatch, tmp_path):
    import spectrascope.core.analysis.tuned_lens as tl

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    prompts = ["the cat sat on the mat", "one two three four five", "a b c d e f g", "red green blue"]
    seen = []
    first = tl.tuned_lens(tiny_session, prompts, ridge=1e-2, progress=lambda msg, frac: seen.append(frac))
    assert seen and seen[-1] == 1.0 and first.positions == sum(len(tiny_session.tokenize(p)[0]) - 1 for p in prompts)
    direct = fit_translators(residual_stream(tiny_session, _rows(tiny_session, prompts)), ridge=1e-2)
    for (A, b), (A2, b2) in zip(first.maps, direct):
        torch.testing.assert_close(A, A2)
        torch.testing.assert_close(b, b2)
    monkeypatch.setattr(tl, "residual_stream", lambda *a, **k: pytest.fail("fitted again"))
    again = tl.tuned_lens(tiny_session, prompts, ridge=1e-2)
    assert again.fitted_on == first.fitted_on == f"4 prompts ({first.positions} positions)"
    for (A, b), (A2, b2) in zip(first.maps, again.maps):
        torch.testing.assert_close(A, A2)
        torch.testing.assert_close(b, b2)
    stream = residual_stream(tiny_session, _rows(tiny_session, prompts[:1]))
    out = again.apply(stream)
    torch.testing.assert_close(out[1], stream[1] @ again.maps[1][0] + again.maps[1][1])
    torch.testing.assert_close(out[-1], stream[-1])  # the output row is the identity
    with pytest.raises(ValueError, match="rows"):
        again.apply(stream[:-1])


def test_lens_report_through_the_tuned_lens(tiny_session, monkeypatch, tmp_path):
    from spectrascope.core.analysis.lens import logit_lens, read_stream
    from spectrascope.core.analysis.tuned_lens import tuned_lens

    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path))
    tuned = tuned_lens(tiny_session, ["the cat sat on the mat", "one two three four five", "a b c d e f g"], ridge=1e-2)
    prompt = "red green blue yellow"
    plain, rep = logit_lens(tiny_session, prompt, 2), logit_lens(tiny_session, prompt, 2, tuned=tuned)
    assert plain.lens == "logit lens" and rep.lens == f"tuned lens (fitted on {tuned.fitted_on})"
    stream = read_stream(tiny_session, prompt).resid  # (L+1, T, d)
    for layer, row in enumerate(rep.rows):
        A, b = tuned.maps[layer]
        p = tiny_session.lens_logits(stream[layer, 2] @ A + b).softmax(-1)
        assert [t for t, _, _ in row.top] == p.topk(5).indices.tolist()
        assert row.norm == pytest.approx(float(stream[layer, 2].norm()), rel=1e-5)  # the residual's own norm
    assert rep.rows[-1] == plain.rows[-1] and rep.target == plain.target  # the output row is the model's
    final = tiny_session.lens_logits(stream[-1]).argmax(-1)
    for layer, settled in enumerate(rep.settled[:-1]):
        A, b = tuned.maps[layer]
        want = (tiny_session.lens_logits(stream[layer] @ A + b).argmax(-1) == final).tolist()
        assert list(settled) == want
