"""A model spread over devices by accelerate (`--device-map`) gives the numbers of the undispatched one.

This machine has one device (the CPU), where transformers dispatches nothing for a map naming one
device. `dispatched_session` therefore dispatches the tiny model the way a several-GPU box does,
with accelerate's per-block hooks (`force_hooks`), each layer's tensors moved to its execution
device on every call: the path the bridge, our hooks, the edits and the SAEs must survive.
"""

from __future__ import annotations

import pytest
import torch

from spectrascope.core.engine.plan import AddFeature, Splice
from spectrascope.core.engine.session import Session
from spectrascope.core.stats.knobs import SamplingSettings
from tests.conftest import build_tiny_model_dir, hooks_left, make_tiny_sae

HOOK = "blocks.2.hook_resid_post"
MODULES = ("model.embed_tokens", "model.rotary_emb", "model.layers.0", "model.layers.1", "model.layers.2",
           "model.layers.3", "model.norm", "lm_head")
DEVICE_MAP = dict.fromkeys(MODULES, "cpu")
PROMPT = "The capital of France is Paris, and the capital of Italy is"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-device-map"), "gemma3")


def _with_saes(session: Session) -> Session:
    session.attach_sae("coarse", make_tiny_sae(64, 128, HOOK, "topk", k=8, seed=1))
    return session


@pytest.fixture(scope="module")
def plain_session(tiny_folder):
    return _with_saes(Session.load(str(tiny_folder), device="cpu", dtype="float32", saes=()))


@pytest.fixture(scope="module")
def dispatched_session(tiny_folder):
    import accelerate
    import transformers

    load = transformers.AutoModelForCausalLM.from_pretrained

    def load_and_dispatch(*args, **kwargs):
        model = load(*args, **kwargs)
        accelerate.dispatch_model(model, kwargs["device_map"], force_hooks=True)
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_and_dispatch)
        session = Session.load(str(tiny_folder), dtype="float32", saes=(), device_map=DEVICE_MAP)
    return _with_saes(session)


def test_the_model_is_dispatched_and_knows_where_its_parts_are(dispatched_session):
    model = dispatched_session.model
    assert sum(hasattr(m, "_hf_hook") for m in model.hf_model.modules()) > len(MODULES)
    assert model.device_map == DEVICE_MAP
    assert model.device == "cpu" and model.block_device(2) == model.head_device == torch.device("cpu")
    assert dispatched_session.sae("coarse").W_enc.device == dispatched_session.hook_device(HOOK)


def test_logits_and_residuals_match_the_undispatched_model(plain_session, dispatched_session):
    ids, _ = plain_session.tokenize(PROMPT)
    a = plain_session.forward(ids, capture=[HOOK], keep_logits=len(ids))
    b = dispatched_session.forward(ids, capture=[HOOK], keep_logits=len(ids))
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.resid[HOOK], a.resid[HOOK], atol=1e-5, rtol=1e-5)
    resid = a.resid[HOOK][0]
    for vocab in (None, slice(10, 90), torch.tensor([5, 1, 300])):
        torch.testing.assert_close(dispatched_session.lens_logits(resid, vocab), plain_session.lens_logits(resid, vocab))
    assert hooks_left(plain_session) == hooks_left(dispatched_session) == 0


@pytest.mark.parametrize("edits", [
    (AddFeature("coarse", 3, 8.0, from_position=2),),
    (Splice("coarse", from_position=1),),
    (Splice("coarse", dims=(0, 5, 9)), AddFeature("coarse", 7, -4.0)),
], ids=["add", "splice", "splice-dims+add"])
def test_edits_change_both_models_alike(plain_session, dispatched_session, edits):
    ids, _ = plain_session.tokenize(PROMPT)
    a = plain_session.forward(ids, capture=[HOOK], edits=edits, keep_logits=len(ids))
    b = dispatched_session.forward(ids, capture=[HOOK], edits=edits, keep_logits=len(ids))
    assert a.edits_applied == b.edits_applied > 0
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.resid[HOOK], a.resid[HOOK], atol=1e-5, rtol=1e-5)
    assert hooks_left(plain_session) == hooks_left(dispatched_session) == 0


def test_steered_generation_draws_the_same_tokens(plain_session, dispatched_session):
    from spectrascope.core.engine.generation import generate

    ids, _ = plain_session.tokenize(PROMPT)
    settings = SamplingSettings(temperature=1.0)
    edits = (AddFeature("coarse", 3, 8.0),)
    runs = [generate(s, ids, settings, seeds=(0, 1), steps=6, edits=edits) for s in (plain_session, dispatched_session)]
    assert [r.generated_ids() for r in runs[0]] == [r.generated_ids() for r in runs[1]]
    assert hooks_left(plain_session) == hooks_left(dispatched_session) == 0


def test_a_layer_offloaded_to_disk_is_refused_with_the_reason(tiny_folder, tmp_path):
    """accelerate runs a disk-offloaded layer from meta-device weights it fills in per call; the bridge's
    components read the weights themselves, so such a map is refused at load, never run wrong."""
    import transformers

    load = transformers.AutoModelForCausalLM.from_pretrained
    with pytest.MonkeyPatch.context() as patch:  # the folder accelerate writes the layer to
        patch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                      lambda *a, **kw: load(*a, offload_folder=str(tmp_path), **kw))
        with pytest.raises(ValueError, match="offloaded model.layers.2 to the CPU or disk"):
            Session.load(str(tiny_folder), dtype="float32", saes=(), device_map={**DEVICE_MAP, "model.layers.2": "disk"})


@pytest.mark.parametrize("device, device_map, max_memory, message", [
    ("cpu", "auto", None, "both say where the model goes"),
    (None, None, {0: "1GiB"}, "--max-memory budgets a --device-map"),
    (None, "everywhere", None, "use one of auto, balanced"),
])
def test_placements_that_make_no_sense_fail_before_loading(device, device_map, max_memory, message):
    from spectrascope.core.engine.models import load_model

    with pytest.raises(ValueError, match=message):
        load_model("/nonexistent/model/folder", device=device, device_map=device_map, max_memory=max_memory)


def test_max_memory_is_read_as_accelerate_wants_it():
    from spectrascope.core.engine.models import parse_max_memory

    assert parse_max_memory("0=70GiB, 1=70GiB,cpu=200GiB") == {0: "70GiB", 1: "70GiB", "cpu": "200GiB"}
    for bad in ("", "70GiB", "gpu0=70GiB", "0=lots"):
        with pytest.raises(ValueError, match="max-memory"):
            parse_max_memory(bad)


@pytest.mark.parametrize("argv, message", [
    (["--device-map", "auto", "--max-memory", "0=lots", "probe", "x"], "--max-memory '0=lots'"),
    (["probe", "x", "--max-memory", "0=70GiB"], "--max-memory budgets a --device-map"),
    (["--device", "cpu", "probe", "x", "--device-map", "auto"], "both say where the model goes"),
])
def test_the_cli_checks_the_placement_before_any_model_loads(argv, message, monkeypatch, tmp_path, capsys):
    from spectrascope.tui import cli

    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setattr(cli, "_load_session", lambda *a, **kw: pytest.fail("the model was loaded"))
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_cli_passes_the_placement_to_the_session(monkeypatch, tmp_path):
    from spectrascope.tui import cli

    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(tmp_path / "none.toml"))
    asked = {}

    def load(*args, **kwargs):
        asked.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(Session, "load", load)
    assert cli.main(["probe", "x", "--device-map", "auto", "--max-memory", "0=70GiB,1=70GiB,cpu=200GiB"]) == 2
    assert (asked["device"], asked["device_map"], asked["max_memory"]) == (
        "auto", "auto", {0: "70GiB", 1: "70GiB", "cpu": "200GiB"})
