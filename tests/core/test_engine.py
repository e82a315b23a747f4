"""The single-owner engine: Session.forward is the only way to run the model, and it holds up
under the interleavings a user produces by typing while a steered run or a contrast run goes on."""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from spectrascope.core.analysis import steering as st
from spectrascope.core.analysis.contrast import collect_activations
from spectrascope.core.engine.generation import generate, system_prompt_ab
from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.engine.plan import AddFeature, Splice
from spectrascope.core.engine.session import Request, Session, resid_hook
from tests.conftest import hooks_left
from tests.tui.fake_session import fake_with_saes

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "The capital of France is"
GREEDY = SamplingSettings(temperature=0.0)
SAMPLED = SamplingSettings(temperature=1.0, seed=0)


class Gate(threading.Event):
    """A cancel event that parks the forward that checks it, mid-pass, until released."""

    def __init__(self):
        super().__init__()
        self.entered, self.release, self._calls = threading.Event(), threading.Event(), 0

    def is_set(self) -> bool:
        self._calls += 1
        if self._calls == 2:  # the first check is before the lock; the second is inside block 0
            self.entered.set()
            self.release.wait(10)
        return False


def steering_edits(session, ids, strength=50.0):
    feats = [st.SteerFeature("coarse", 3, strength)]
    return st.SteeringSpec(tuple(feats)).edits(st.feature_units(session, feats), len(ids))


def test_interleaved_keystrokes_cannot_strip_a_steered_run(tiny_sae_session):
    """Issue 12's reproduction: (1) a keystroke forward is mid-pass, (2) a steered run starts,
    (3) the first forward ends, (4) another keystroke runs, (5) the steered run continues.
    Before the engine rewrite the steering hook then fired 0 times (tokens diverged at step 1)."""
    s = tiny_sae_session
    ids, _ = s.tokenize(PROMPT)
    edits = steering_edits(s, ids)
    serial = generate(s, ids, GREEDY, [0], 8, edits)[0]
    unsteered = generate(s, ids, GREEDY, [0], 8)[0]
    assert serial.generated_ids() != unsteered.generated_ids()  # the steering is strong enough to see

    gate = Gate()
    first = threading.Thread(target=lambda: s.run(Request("hello there"), cancel=gate))
    first.start()
    assert gate.entered.wait(10)  # (1)
    started, resume, out = threading.Event(), threading.Event(), {}

    def on_token():
        if not started.is_set():
            started.set()
            resume.wait(10)

    steered = threading.Thread(target=lambda: out.setdefault("run", generate(s, ids, GREEDY, [0], 8, edits,
                                                                             on_token=on_token)[0]))
    steered.start()  # (2): it waits for the lock while the first forward holds it
    assert not started.wait(0.3)
    gate.release.set()  # (3)
    first.join()
    assert started.wait(10)
    s.run(Request("hello again"))  # (4)
    resume.set()  # (5)
    steered.join()
    run = out["run"]
    assert run.generated_ids() == serial.generated_ids()
    # prefill + 7 fed tokens + the SAE-only forward that records the last token's codes (issue 16)
    assert run.edited_forwards == serial.edited_forwards == len(run.steps) + 1
    assert hooks_left(s) == 0


def test_stress_keystrokes_against_steering_and_contrast(tiny_sae_session):
    """200+ keystroke forwards at random moments (seeded) while a steered sampled generation
    and a contrast run go on in other threads: every steered forward got its edit, and every
    result equals the serial one."""
    s = tiny_sae_session
    ids, _ = s.tokenize(PROMPT)
    edits = steering_edits(s, ids, 20.0)
    prompts = ["Paris is lovely", "The cat sleeps.", "Rome", "Language models predict", "France"] * 4
    serial_runs = generate(s, ids, SAMPLED, [0, 1, 2], 12, edits)
    serial_acts, _ = collect_activations(s, prompts, batch_size=3)
    serial_key = {p: s.run(Request(p)).logits for p in ("a", "ab", "abc", "The cap", "The capital")}

    rng = random.Random(1234)
    errors, got, key_results = [], {}, []

    def typist():
        try:
            for _ in range(210):
                p = rng.choice(list(serial_key))
                key_results.append((p, s.run(Request(p)).logits))
                if rng.random() < 0.3:
                    threading.Event().wait(rng.random() * 0.002)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def steerer():
        try:
            got["runs"] = generate(s, ids, SAMPLED, [0, 1, 2], 12, edits)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    def contrast():
        try:
            got["acts"] = collect_activations(s, prompts, batch_size=3)[0]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (typist, steerer, contrast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(key_results) == 210
    for run, ref in zip(got["runs"], serial_runs):
        assert run.generated_ids() == ref.generated_ids()
        assert run.edited_forwards == len(run.steps) + 1  # prefill, every fed token, and the last token's SAE-only forward
    for role in ("coarse", "fine"):
        for kind in ("max", "mean"):
            np.testing.assert_allclose(got["acts"][role][kind], serial_acts[role][kind], rtol=1e-5, atol=1e-5)
    for p, logits in key_results:
        torch.testing.assert_close(logits, serial_key[p], rtol=1e-4, atol=1e-4)
    assert hooks_left(s) == 0


EDITS = [
    ("The capital of France is", "The capital of France is Paris"),  # typing at the end
    ("The capital of France is Paris", "The capital of France is"),  # deleting at the end
    ("The capital of France is", "The capital of Italy is"),  # an edit in the middle
    ("The capital of France is", "The capital of France is"),  # the same prompt again
    ("The quick brown fox jumps over the lazy dog", "A quick brown fox"),  # the first token changes
]


@pytest.mark.parametrize("before,after", EDITS)
def test_incremental_run_equals_a_full_forward(tiny_model_dir, before, after):
    session = Session.load(str(tiny_model_dir), device="cpu", dtype="float32")
    layers = (1, 2)
    session.run(Request(before, layers=layers))
    inc = session.run(Request(after, layers=layers))
    session.forget_prompt()
    full = session.run(Request(after, layers=layers))
    assert full.reused == 0
    common = 0
    for a, b in zip(session.tokenize(before)[0], session.tokenize(after)[0]):
        if a != b:
            break
        common += 1
    assert inc.reused == min(common, len(full.tokens) - 1)
    torch.testing.assert_close(inc.logits, full.logits, rtol=1e-4, atol=1e-4)
    for layer in layers:
        torch.testing.assert_close(inc.resid[resid_hook(layer)], full.resid[resid_hook(layer)], rtol=1e-4, atol=1e-4)
    # And against HF's own full forward, an independent path.
    with torch.inference_mode():
        ref = session.model.hf_model(torch.tensor([full.ids]), output_hidden_states=True)
    torch.testing.assert_close(inc.logits, ref.logits[0, -1].float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(inc.resid[resid_hook(2)], ref.hidden_states[3][0].float(), rtol=1e-4, atol=1e-4)


def test_incremental_spectra_equal_a_full_encode(tiny_sae_session):
    s = tiny_sae_session
    s.run(Request("The capital of France is"))
    inc = s.run(Request("The capital of France is Paris"))
    s.forget_prompt()
    full = s.run(Request("The capital of France is Paris"))
    assert inc.reused > 0
    for role in ("coarse", "fine"):
        torch.testing.assert_close(inc.spectra[role].codes, full.spectra[role].codes, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(inc.spectra[role].fidelity, full.spectra[role].fidelity, rtol=1e-4, atol=1e-4)


def test_incremental_survives_the_sliding_window(tmp_path):
    """Past the window, sliding layers drop old keys unless the cache records them: a middle
    edit of a long prompt must still equal a full forward."""
    from tests.conftest import build_tiny_model_dir

    session = Session.load(str(build_tiny_model_dir(tmp_path, "gemma3")), device="cpu", dtype="float32")
    window = session.model.hf_model.config.sliding_window
    long = " ".join(["word"] * (3 * window))
    session.run(Request(long, layers=(2,)))
    edited = long.replace("word", "Paris", 1)[: len(long)]
    changed = " ".join(["word"] * window + ["Paris"] + ["word"] * (2 * window - 1))
    for after in (edited, changed, long + " again"):
        inc = session.run(Request(after, layers=(2,)))
        with torch.inference_mode():
            ref = session.model.hf_model(torch.tensor([inc.ids])).logits[0, -1].float()
        torch.testing.assert_close(inc.logits, ref, rtol=1e-4, atol=1e-4)
    assert inc.reused > window


def count_forwards(session, monkeypatch) -> list[int]:
    """The ids-lengths of every `session.forward` call from now on (the list grows as they happen)."""
    calls, forward = [], session.forward

    def counted(ids, **kw):
        calls.append(len(ids[0]) if isinstance(ids, torch.Tensor) and ids.dim() == 2 else len(ids))
        return forward(ids, **kw)

    monkeypatch.setattr(session, "forward", counted)
    return calls


def test_the_same_request_again_runs_no_forward(tiny_sae_session, monkeypatch):
    s = tiny_sae_session
    s.forget_prompt()
    first = s.run(Request(PROMPT))
    calls = count_forwards(s, monkeypatch)
    again = s.run(Request(PROMPT))
    assert calls == []
    torch.testing.assert_close(again.logits, first.logits)
    assert again.resid.keys() == first.resid.keys() and again.spectra.keys() == first.spectra.keys()
    # A request asking for less than the cached state holds is answered by it too; one asking more is not.
    s.run(Request(PROMPT, codes=False))
    assert calls == []
    s.run(Request(PROMPT, layers=(0,)))
    assert calls == [len(first.tokens)]


def test_the_ab_keeps_its_own_slots_and_equals_full_forwards(tiny_sae_session, monkeypatch):
    """With the A/B on, a keystroke still reuses the prompt's prefix; on a base model the A/B's
    "without" variant is the prompt itself (no forward) and its "with" variant runs only new tokens."""
    s = tiny_sae_session
    s.forget_prompt()
    system = "You are a geography teacher."
    s.run(Request(PROMPT))
    calls = count_forwards(s, monkeypatch)
    system_prompt_ab(s, PROMPT, system, SAMPLED)
    assert len(calls) == 1  # "with" only, from scratch: its slot was empty
    typed = PROMPT + " Paris"
    key = s.run(Request(typed))
    assert key.reused == len(s.tokenize(PROMPT)[0])  # the A/B did not evict the prompt's slot
    ab = system_prompt_ab(s, typed, system, SAMPLED)
    assert len(calls) == 3 and calls[2] < len(s.tokenize(f"{system}\n\n{typed}")[0])  # "with": its new tokens
    system_prompt_ab(s, typed, system, SAMPLED)
    assert len(calls) == 3  # nothing changed: no forward at all
    s.forget_prompt()
    full = s.run(Request(typed))
    torch.testing.assert_close(key.logits, full.logits, rtol=1e-4, atol=1e-4)
    for hook, x in full.resid.items():
        torch.testing.assert_close(key.resid[hook], x, rtol=1e-4, atol=1e-4)
    for role, spectrum in full.spectra.items():
        torch.testing.assert_close(key.spectra[role].codes, spectrum.codes, rtol=1e-4, atol=1e-4)
    s.forget_prompt()
    fresh = system_prompt_ab(s, typed, system, SAMPLED)
    torch.testing.assert_close(ab.without.logits, fresh.without.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ab.with_system.logits, fresh.with_system.logits, rtol=1e-4, atol=1e-4)


def test_splice_is_the_sae_reconstruction_and_positions_are_absolute(tiny_sae_session):
    s = tiny_sae_session
    ids, _ = s.tokenize(PROMPT)
    hook = s.sae_hook("coarse")
    base = s.forward(ids, capture=[hook]).resid[hook][0]
    spliced = s.forward(ids, capture=[hook], edits=[Splice("coarse", from_position=2)]).resid[hook][0]
    sae = s.sae("coarse")
    with torch.inference_mode():
        want = torch.cat([base[:2], sae.decode(sae.encode(base[2:]))])
    torch.testing.assert_close(spliced, want, rtol=1e-5, atol=1e-5)
    # In a cached call the first new token sits at position cache length.
    cache = s.forward(ids[:3], cache=s.new_cache()).cache
    out = s.forward(ids[3:], capture=[hook], cache=cache, edits=[AddFeature("coarse", 1, 5.0, from_position=4)])
    w = sae.W_dec[1] / sae.W_dec[1].norm()
    torch.testing.assert_close(out.resid[hook][0, 0], base[3], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.resid[hook][0, 1], base[4] + 5.0 * w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("which", ["session", "fake"])
def test_splice_limited_to_dims_replaces_only_those(which, request):
    """Splice(dims=...) is the reconstruction in those dimensions and the model's own values elsewhere,
    in the session and in the UI test fake alike (both apply core/engine/edits.py)."""
    s = request.getfixturevalue("tiny_sae_session") if which == "session" else fake_with_saes()
    ids, _ = s.tokenize(PROMPT)
    hook = s.sae_hook("coarse")
    base = s.forward(ids, capture=[hook]).resid[hook][0]
    dims = (0, 3, 5)
    spliced = s.forward(ids, capture=[hook], edits=[Splice("coarse", from_position=1, dims=dims)]).resid[hook][0]
    sae = s.sae("coarse")
    with torch.inference_mode():
        want = base.clone()
        want[1:, list(dims)] = sae.decode(sae.encode(base[1:]))[:, list(dims)]
    torch.testing.assert_close(spliced, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(spliced[1:, list(dims)], base[1:, list(dims)])


def test_forward_rejects_unknown_hooks_and_roles(tiny_sae_session):
    s = tiny_sae_session
    with pytest.raises(ValueError, match="not a hook point"):
        s.forward([2, 5, 6], capture=["blocks.99.hook_resid_post"])
    with pytest.raises(KeyError, match="No nope SAE"):
        s.forward([2, 5, 6], edits=[AddFeature("nope", 0, 1.0)])
    assert hooks_left(s) == 0


# Who may run the model: only core/engine/session.py (and core/engine/models.py, which loads it).
MODEL_CALLS = re.compile(r"\.bridge\b|hf_model|original_model|\.hooks\(|register_forward_hook|"
                         r"register_forward_pre_hook|run_with_hooks|run_with_cache|get_output_embeddings")


def test_only_the_session_module_runs_the_model():
    owners = {ROOT / "core" / "engine" / "session.py", ROOT / "core" / "engine" / "models.py"}
    offenders = []
    for folder in ("core", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in owners:
                continue
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if MODEL_CALLS.search(line.split("#")[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
