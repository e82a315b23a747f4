"""Gemma 3 4B and up are Gemma3ForConditionalGeneration checkpoints (a SigLIP vision tower + the LM): a tiny
random one, cached as google/gemma-3-4b-pt, loads by the preset's name as the text model spectrascope
reads, with HF's own multimodal forward's numbers on text (float32; logits and residuals within 1e-5)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

REPO = "google/gemma-3-4b-pt"
LAYERS = 4
# Image token ids at the top of the tiny vocabulary, out of the prompts' way (the real 4B's are 255999,
# 256000 and 262144 of 262208).
IMAGE_IDS = dict(boi_token_index=509, eoi_token_index=510, image_token_index=511)
PROMPT = "The capital of France is"


def build_tiny_multimodal(folder):
    """A random Gemma3ForConditionalGeneration (tiny Gemma 3 text model, tiny SigLIP tower) and the tests'
    small tokenizer, saved to `folder` as `hf download` leaves a 4B+ checkpoint (config with
    text_config + vision_config, architectures ["Gemma3ForConditionalGeneration"])."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from tests.conftest import build_tiny_model_dir

    scratch = build_tiny_model_dir(folder.parent / f"{folder.name}-tokenizer", "gemma3")  # for its tokenizer
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (scratch / name).exists():
            shutil.copy(scratch / name, folder / name)
    shutil.rmtree(scratch)
    torch.manual_seed(1)
    text = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS,
                num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=256,
                sliding_window=16, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, **IMAGE_IDS)
    Gemma3ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """An HF hub cache holding REPO (refs/main -> one snapshot), as `hf download google/gemma-3-4b-pt` leaves it."""
    hub = tmp_path_factory.mktemp("hf-4b") / "hub"
    repo = hub / f"models--{REPO.replace('/', '--')}"
    build_tiny_multimodal(repo / "snapshots" / "rev0")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev0")
    return hub


@pytest.fixture(scope="module")
def session(hub):
    from spectrascope.core.engine.session import Session

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
        # The preset's Gemma Scope 2 SAEs (layer 17) are not cached and the tiny model has 4 layers: none.
        return Session.load("gemma-3-4b-pt", device="cpu", dtype="float32", saes=())


@pytest.fixture(scope="module")
def reference(session):
    """HF's own multimodal model from the same snapshot."""
    from transformers import Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration.from_pretrained(
        str(session.model.folder), dtype=torch.float32, attn_implementation="eager").eval()


def test_the_preset_loads_the_text_model_of_a_multimodal_checkpoint(session):
    model = session.model
    assert json.loads((model.folder / "config.json").read_text())["architectures"] == ["Gemma3ForConditionalGeneration"]
    assert model.spec.name == "gemma-3-4b-pt" and model.spec.neuronpedia_model == "gemma-3-4b"
    assert type(model.hf_model).__name__ == "Gemma3ForCausalLM"
    assert (model.n_layers, model.d_model, model.max_tokens) == (LAYERS, 64, 256)
    assert model.default_layer == LAYERS // 2  # the preset's layer 17 is past the tiny model's layers
    names = [name for name, _ in model.hf_model.named_parameters()]
    assert not any("vision" in n or "projector" in n for n in names)  # the vision tower is not kept
    assert not any(p.is_meta for p in model.hf_model.parameters())
    assert model.hf_model.lm_head.weight is model.hf_model.model.embed_tokens.weight  # still tied
    assert session.sliding_layers() == (0, 1, 2, 3)  # the text config's layer types (5 of every 6 slide)


def test_logits_and_residuals_match_hfs_multimodal_forward(session, reference):
    ids, _ = session.tokenize(PROMPT)
    assert not set(ids) & set(IMAGE_IDS.values())
    hooks = [f"blocks.{i}.hook_resid_post" for i in range(LAYERS)]
    out = session.forward(ids, capture=hooks, keep_logits=len(ids))
    with torch.no_grad():
        ref = reference(torch.tensor([ids]), output_hidden_states=True)
    # float32 both ways, the same modules: equal up to rounding (measured 1.2e-7)
    torch.testing.assert_close(out.logits[0], ref.logits[0], atol=1e-5, rtol=1e-5)
    # hidden_states[i + 1] is block i's output; the last one is after the final norm, so read it by a hook
    for i in range(LAYERS - 1):
        torch.testing.assert_close(out.resid[hooks[i]][0], ref.hidden_states[i + 1][0], atol=1e-5, rtol=1e-5)
    last = {}
    handle = reference.model.language_model.layers[-1].register_forward_hook(
        lambda module, args, output: last.setdefault("out", output[0] if isinstance(output, tuple) else output))
    try:
        with torch.no_grad():
            reference(torch.tensor([ids]))
    finally:
        handle.remove()
    torch.testing.assert_close(out.resid[hooks[-1]][0], last["out"][0], atol=1e-5, rtol=1e-5)
    # the logit lens of the last block's residual is the model's own logits
    torch.testing.assert_close(session.lens_logits(out.resid[hooks[-1]][0, -1:]), out.logits[0, -1:],
                               atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_hfs_generate(session, reference):
    from spectrascope.core.engine.generation import generate
    from spectrascope.core.stats.knobs import SamplingSettings

    ids, _ = session.tokenize(PROMPT)
    ours = generate(session, ids, SamplingSettings(temperature=0.0), [0], 8)[0].generated_ids()
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids):].tolist()
    assert len(ours) >= 1 and list(ours) == theirs[: len(ours)]


def test_probe_cli_runs_the_preset_from_the_cache(hub, monkeypatch, capsys):
    from spectrascope.tui.cli import main

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert main(["probe", PROMPT, "--top", "3", "--json", "--model", "gemma-3-4b-pt", "--dtype", "float32"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["top"]) == 3 and report["resid"]["shape"][1] == 64


@pytest.mark.parametrize("size, hidden, layers", [("4b", 2560, 34), ("12b", 3840, 48), ("27b", 5376, 62)])
def test_a_multimodal_folder_is_recognised_from_its_text_config(tmp_path, size, hidden, layers):
    from spectrascope.core.engine.models import recognise_folder

    def folder(path):
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps({
            "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "text_config": {"hidden_size": hidden, "num_hidden_layers": layers, "model_type": "gemma3_text"},
            "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}}))
        return path

    assert recognise_folder(folder(tmp_path / f"gemma-3-{size}-pt")).name == f"gemma-3-{size}-pt"
    assert recognise_folder(folder(tmp_path / f"gemma-3-{size}-it")).name == f"gemma-3-{size}-it"


def test_a_dispatched_multimodal_checkpoint_keeps_its_placement_under_text_names(session, monkeypatch):
    """--device-map on a 4B+ checkpoint: accelerate's per-module hooks (forced, as on a several-GPU box; see
    test_device_map.py) stay on the language model's modules, the map is renamed to the text model's names
    and drops the vision tower, and the numbers are the undispatched model's."""
    import accelerate
    import transformers

    from spectrascope.core.engine.session import Session

    names = [f"model.language_model.{m}" for m in ("embed_tokens", "rotary_emb", "norm")]
    names += [f"model.language_model.layers.{i}" for i in range(LAYERS)]
    placement = dict.fromkeys([*names, "model.vision_tower", "model.multi_modal_projector", "lm_head"], "cpu")
    load = transformers.AutoModelForCausalLM.from_pretrained

    def load_and_dispatch(*args, **kwargs):
        model = load(*args, **kwargs)
        accelerate.dispatch_model(model, kwargs["device_map"], force_hooks=True)
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_and_dispatch)
    dispatched = Session.load(str(session.model.folder), dtype="float32", saes=(), device_map=placement)
    assert set(dispatched.model.device_map) == {n.replace("model.language_model.", "model.") for n in names} | {"lm_head"}
    assert hasattr(dispatched.model.hf_model.model.layers[0], "_hf_hook")
    ids, _ = session.tokenize(PROMPT)
    hook = f"blocks.{LAYERS - 2}.hook_resid_post"
    want, got = session.forward(ids, capture=[hook]), dispatched.forward(ids, capture=[hook])
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.resid[hook], want.resid[hook], atol=1e-5, rtol=1e-5)
