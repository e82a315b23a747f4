"""Shared fixtures: tiny random Gemma-style models saved to disk and loaded through the real path."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see tui/cli.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SPECTRASCOPE_CONFIG"] = os.devnull + ".absent"  # a user's config must not leak into tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _isolate_result_caches() -> None:
    """Contrast and drift results go to a fresh folder per test run, so no test reads what an earlier run
    (or the user) cached; the converted embedded model (80 s to build) is shared through a symlink."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    real = Path(os.environ.get("SPECTRASCOPE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "spectrascope").expanduser()
    (real / "models").mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="spectrascope-test-cache-"))
    (fresh / "models").symlink_to(real / "models", target_is_directory=True)
    os.environ["SPECTRASCOPE_CACHE"] = str(fresh)
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)  # removes the link, not the models


_isolate_result_caches()


def _isolate_user_data() -> None:
    """Sessions, screenshots and exports of an app built without output_dir go to the per-user data
    folder (tui/folders.py; platformdirs reads XDG_DATA_HOME): a fresh one per run, never the user's."""
    import atexit
    import shutil
    import tempfile

    fresh = tempfile.mkdtemp(prefix="spectrascope-test-data-")
    os.environ["XDG_DATA_HOME"] = fresh
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)


_isolate_user_data()

import pytest

# A little real English so the tiny BPE tokenizer has sensible merges.
TOKENIZER_TEXT = [
    "The Eiffel Tower is located in the city of Paris.",
    "The capital of France is Paris and the capital of Italy is Rome.",
    "A quick brown fox jumps over the lazy dog while the cat sleeps.",
    "Language models predict the next token from the previous tokens.",
] * 20


def build_tiny_model_dir(folder, family: str = "gemma3", vocab_size: int = 512, seed: int = 0):
    """Save a random Gemma-2- or Gemma-3-style causal LM and a small BPE tokenizer to `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TOKENIZER_TEXT, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=256,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    if family == "gemma2":
        from transformers import Gemma2Config, Gemma2ForCausalLM

        model = Gemma2ForCausalLM(Gemma2Config(**common, final_logit_softcapping=30.0))
    else:
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, sliding_window=16))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", params=["gemma2", "gemma3"])
def tiny_model_dir(request, tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)


@pytest.fixture(scope="session")
def tiny_session(tmp_path_factory):
    """A Session on a tiny random Gemma 3, loaded through the same path as the real model."""
    from spectrascope.core.engine.session import Session

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-session"), "gemma3")
    return Session.load(str(folder), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_gemma2_session(tmp_path_factory):
    """A Session on a tiny random Gemma 2 (final logit softcap, alternating sliding windows)."""
    from spectrascope.core.engine.session import Session

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-gemma2-session"), "gemma2")
    return Session.load(str(folder), device="cpu", dtype="float32", saes=())


def make_tiny_sae(d_in: int, d_sae: int, hook_name: str, kind: str = "topk", k: int = 8, seed: int = 0):
    """A sae-lens SAE with random weights (TopK or JumpReLU), for tests that need no trained SAE."""
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(hook_name=hook_name, model_name="tiny", prepend_bos=True, hook_head_index=None)
    gen = torch.Generator().manual_seed(seed)
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="float32", device="cpu", metadata=meta))
    else:
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", metadata=meta))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=gen) / d_in**0.5)
        w_dec = torch.randn(d_sae, d_in, generator=gen)
        sae.W_dec.copy_(w_dec / w_dec.norm(dim=1, keepdim=True))
        sae.b_enc.copy_(torch.randn(d_sae, generator=gen) * 0.1)
        sae.b_dec.zero_()
        if kind != "topk":
            sae.threshold.copy_(torch.rand(d_sae, generator=gen) * 0.5)
    return sae.eval()


@pytest.fixture(scope="session")
def tiny_sae_session(tmp_path_factory):
    """A tiny Gemma 3 session with a coarse (TopK, 128) and a fine (JumpReLU, 1024) SAE at layer 2."""
    from spectrascope.core.engine.session import Session

    folder = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-sae-session"), "gemma3")
    session = Session.load(str(folder), device="cpu", dtype="float32")
    session.attach_sae("coarse", make_tiny_sae(64, 128, "blocks.2.hook_resid_post", "topk", k=8, seed=1))
    session.attach_sae("fine", make_tiny_sae(64, 1024, "blocks.2.hook_resid_post", "jumprelu", seed=2))
    return session


def hooks_left(session) -> int:
    """Forward hooks attached to the bridge's hook points (0 when no forward is in flight)."""
    seen, n = set(), 0
    for hp in session.model.bridge.hook_dict.values():
        if id(hp) not in seen:
            seen.add(id(hp))
            n += len(getattr(hp, "fwd_hooks", [])) + len(hp._forward_hooks)
    return n
