"""SAE specs and loading: embedded assets, sae-lens pretrained releases (cache only), Gemma Scope folders.

Every route returns a sae-lens `SAE`, so `encode`/`decode` are sae-lens' own.
Pretrained releases are loaded only when their files are already in the local
Hugging Face cache: `SAE.from_pretrained` makes network calls even offline (its Gemma 3
loader reads tensor shapes with HTTP range requests even for a cached file), so for
Gemma Scope (params.npz) and Gemma Scope 2 (params.safetensors) releases we read the
cached file ourselves; anything missing raises `SAEUnavailable` with instructions
instead of hanging on the network.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectrascope.core.assets import SAES_DIR
from spectrascope.core.engine import gemma_scope_2



class SAEUnavailable(RuntimeError):
    """The SAE's weights are not on this machine (and we will not fetch them implicitly)."""


class SAEIncompatible(ValueError):
    """The SAE does not match the model's width or hook point."""


@dataclass(frozen=True)
class SAESpec:
    kind: str                       # "embedded" | "pretrained" | "gemma_scope_folder" | "local"
    name: str | None = None         # embedded: folder name under assets/saes
    release: str | None = None      # pretrained: sae-lens release
    sae_id: str | None = None       # pretrained: id inside the release
    path: str | None = None         # gemma_scope_folder / local: a folder on disk
    hook_name: str | None = None    # gemma_scope_folder: where it reads (params.npz carries none)
    model_name: str | None = None

    def __post_init__(self):
        need = {"embedded": ("name",), "pretrained": ("release", "sae_id"),
                "gemma_scope_folder": ("path",), "local": ("path",)}
        if self.kind not in need:
            raise ValueError(f"unknown SAE kind {self.kind!r}; expected one of {sorted(need)}")
        missing = [f for f in need[self.kind] if not getattr(self, f)]
        if missing:
            raise ValueError(f"SAESpec(kind={self.kind!r}) needs {', '.join(missing)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SAESpec":
        return cls(**d)

    @property
    def label(self) -> str:
        return self.name or (f"{self.release}/{self.sae_id}" if self.release else str(self.path))


PRESETS: dict[str, SAESpec] = {
    "embedded-coarse": SAESpec("embedded", name="gemma-3-270m-res9-coarse"),
    "embedded-fine": SAESpec("embedded", name="gemma-3-270m-res9-fine"),
    "gemma-scope-2b-16k": SAESpec("pretrained", release="gemma-scope-2b-pt-res-canonical",
                                  sae_id="layer_12/width_16k/canonical"),
    "gemma-scope-2b-262k": SAESpec("pretrained", release="gemma-scope-2b-pt-res-canonical",
                                   sae_id="layer_12/width_262k/canonical"),
    # The seed's exact ids (the canonical ones above resolve to these L0s at layer 12).
    "gemma-scope-2b-16k-l0-82": SAESpec("pretrained", release="gemma-scope-2b-pt-res",
                                        sae_id="layer_12/width_16k/average_l0_82"),
    "gemma-scope-2b-262k-l0-121": SAESpec("pretrained", release="gemma-scope-2b-pt-res",
                                          sae_id="layer_12/width_262k/average_l0_121"),
}

PRESETS.update({  # the Gemma 3 presets' SAEs (core/engine/gemma_scope_2.py)
    gemma_scope_2.sae_preset(size, variant, width): SAESpec(
        "pretrained", release=f"gemma-scope-2-{size}-{variant}-res", sae_id=f"layer_{layer}_width_{width}_l0_medium")
    for size, layer in gemma_scope_2.LAYERS.items() for variant in ("pt", "it") for width in ("16k", "262k")})

CATALOG_RELEASES = ("gemma-scope-2b-pt-res", "gemma-scope-2b-pt-res-canonical")


def residual_releases() -> tuple[str, ...]:
    """The residual-stream releases spectrascope can read: Gemma Scope 2B, and every Gemma Scope 2
    `-res` / `-res-all` release of sae-lens' registry (all Gemma 3 sizes, pretrained and -it)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    gemma_scope_2 = sorted(r for r in get_pretrained_saes_directory()
                           if r.startswith("gemma-scope-2-") and re.search(r"-res(-all)?$", r))
    return CATALOG_RELEASES + tuple(gemma_scope_2)


def cached_releases(releases: tuple[str, ...] | None = None, cache_dir: str | None = None) -> list[dict[str, Any]]:
    """Every SAE of `releases` (default: `residual_releases()`) whose weights are in the local Hugging Face
    cache (offline), with the layer, width and L0 its id names."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    out = []
    for release in residual_releases() if releases is None else releases:
        lookup = directory.get(release)
        if lookup is None or not _repo_in_cache(lookup.repo_id, cache_dir):
            continue  # one folder check instead of one per SAE of a release that is not here at all
        for sae_id, path in lookup.saes_map.items():
            if _release_files_cached(lookup, path, cache_dir):
                out.append({"release": release, "sae_id": sae_id, "spec": f"{release}/{sae_id}", **_id_parts(sae_id)})
    return out


def releases_for(model_repo: str, cache_dir: str | None = None) -> list[dict[str, Any]]:
    """The residual SAE releases sae-lens' registry has for `model_repo` (e.g. "google/gemma-3-270m"), each
    with every SAE's layer, width and L0, whether the local HF cache holds it, and its Neuronpedia id."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    out = []
    for release in residual_releases():
        lookup = directory.get(release)
        if lookup is None or lookup.model != model_repo:
            continue
        here = _repo_in_cache(lookup.repo_id, cache_dir)
        saes = []
        for sae_id, path in lookup.saes_map.items():
            saes.append({"sae_id": sae_id, **_id_parts(sae_id), "cached": here and _release_files_cached(lookup, path, cache_dir),
                         "neuronpedia": lookup.neuronpedia_id.get(sae_id)})
        out.append({"release": release, "repo": lookup.repo_id, "saes": saes})
    return out


def _id_parts(sae_id: str) -> dict[str, str]:
    """The layer, width and L0 an SAE id names (Gemma Scope `layer_12/width_16k/average_l0_82`, Gemma Scope 2
    `layer_9_width_16k_l0_medium`)."""
    return {k: m.group(1) for k, pat in (("layer", r"layer_(\d+)"), ("width", r"width_(\w+?)[/_]"),
                                         ("l0", r"(?:average_l0|l0)_(\w+?)/")) if (m := re.search(pat, sae_id + "/"))}


def _repo_in_cache(repo_id: str, cache_dir: str | None = None) -> bool:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (Path(cache_dir or HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir()


def _params_file(lookup) -> str | None:
    """The one file a Gemma Scope release's SAE is (None: a sae-lens-format release)."""
    return {"gemma_2": "params.npz", "gemma_3": "params.safetensors"}.get(lookup.conversion_func)


def _release_files_cached(lookup, path: str, cache_dir: str | None = None) -> bool:
    params = _params_file(lookup)
    names = (params,) if params else ("cfg.json", "sae_weights.safetensors")
    return all(_hub_file_in_cache(lookup.repo_id, f"{path}/{n}", cache_dir) for n in names)


def sae_cached(spec: SAESpec, cache_dir: str | None = None) -> bool:
    """Whether `spec`'s weights are on this machine (offline: the HF cache or a folder)."""
    if spec.kind == "embedded":
        return (SAES_DIR / spec.name / "cfg.json").is_file()
    if spec.kind != "pretrained":
        return Path(spec.path).expanduser().is_dir()
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory().get(spec.release)
    path = lookup.saes_map.get(spec.sae_id) if lookup else None
    return path is not None and _release_files_cached(lookup, path, cache_dir)


def neuronpedia_id(spec: SAESpec | None) -> tuple[str, str] | None:
    """(model, source) of the SAE's Neuronpedia pages, from sae-lens' release list (offline).

    The list names them on some releases only (Gemma Scope: the canonical ones), so the id is
    found by the weights' repo and path: an `average_l0_82` id, or a folder in the HF cache
    (.../models--ORG--NAME/snapshots/REV/PATH), gets the id of the release entry with the same files."""
    if getattr(spec, "kind", "embedded") == "embedded":  # None, or an SAE shipped here
        return None
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    if spec.kind == "pretrained":
        directory = get_pretrained_saes_directory()
        lookup = directory.get(spec.release)
        if lookup is None or spec.sae_id not in lookup.saes_map:
            return None
        if lookup.neuronpedia_id.get(spec.sae_id):
            return _split_neuronpedia(lookup.neuronpedia_id[spec.sae_id])
        repo, path = lookup.repo_id, lookup.saes_map[spec.sae_id]
    else:  # a folder: only one in the HF cache layout says which release it is (parse the list only then)
        m = re.search(r"models--([^/]+)--([^/]+)/snapshots/[^/]+/(.+)$", str(Path(spec.path).expanduser()))
        if m is None:
            return None
        directory = get_pretrained_saes_directory()
        repo, path = f"{m[1]}/{m[2]}", m[3].rstrip("/")
    for lookup in directory.values():
        if lookup.repo_id == repo:
            for sae_id, p in lookup.saes_map.items():
                if p == path and lookup.neuronpedia_id.get(sae_id):
                    return _split_neuronpedia(lookup.neuronpedia_id[sae_id])
    return None


def _split_neuronpedia(text: str) -> tuple[str, str]:
    model, _, source = text.partition("/")  # "gemma-2-2b/12-gemmascope-res-16k"
    return model, source


def get_preset(name: str) -> SAESpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown SAE preset {name!r}; known: {', '.join(PRESETS)}") from None


ROLES = ("coarse", "fine")


def parse_sae_spec(text: str) -> SAESpec:
    """An SAE as the user names it (`--sae ROLE=SPEC`, the config's `[saes]`): a preset name,
    a sae-lens `release/sae_id`, or a local folder: a sae-lens folder (cfg.json), or Gemma Scope
    params (params.npz / params.safetensors) whose hook is read from a `layer_N` part of the
    path or given after `@` (`PATH@12` or `PATH@blocks.12.hook_resid_post`)."""
    text = text.strip()
    if text in PRESETS:
        return PRESETS[text]
    path, hook = _split_hook(text)
    folder = Path(path).expanduser()
    if folder.is_dir():
        if (folder / "cfg.json").is_file():
            return SAESpec("local", path=str(folder.resolve()))
        if any((folder / f).is_file() for f in ("params.npz", "params.safetensors")):
            return SAESpec("gemma_scope_folder", path=str(folder.resolve()), hook_name=hook or _hook_from_path(folder))
        raise ValueError(f"SAE folder {path} holds neither cfg.json (sae-lens) nor params.npz / "
                         "params.safetensors (Gemma Scope).")
    if path.startswith(("/", ".", "~")) or hook:
        raise ValueError(f"SAE folder {path} does not exist.")
    if "/" in text:
        release, sae_id = text.split("/", 1)
        return _pretrained_spec(release, sae_id)
    raise ValueError(f"Unknown SAE {text!r}: not a preset ({', '.join(PRESETS)}), a sae-lens "
                     "release/sae_id, or a folder.")


def parse_role_spec(text: str) -> tuple[str, SAESpec]:
    """`ROLE=SPEC` (the `--sae` flag) -> (role, spec)."""
    role, sep, spec = text.partition("=")
    if not sep or role.strip() not in ROLES:
        raise ValueError(f"--sae takes ROLE=SPEC with ROLE one of {', '.join(ROLES)}, not {text!r}.")
    return role.strip(), parse_sae_spec(spec)


def _split_hook(text: str) -> tuple[str, str | None]:
    """`PATH@12` or `PATH@blocks.12.hook_resid_post` -> (PATH, hook name); else (text, None)."""
    path, sep, tail = text.rpartition("@")
    if not sep:
        return text, None
    if tail.isdigit():
        return path, f"blocks.{int(tail)}.hook_resid_post"
    if re.fullmatch(r"blocks\.\d+\.hook_\w+", tail):
        return path, tail
    return text, None


def _hook_from_path(folder: Path) -> str:
    """Gemma Scope lays residual SAEs out as .../gemma-scope-*-res/layer_N/width_*/...: the hook is layer N's
    residual. Attention and MLP releases read elsewhere, so their hook must be given."""
    text = str(folder.resolve())
    # Gemma Scope: .../layer_12/width_16k/...; Gemma Scope 2: .../resid_post/layer_9_width_16k_l0_medium
    layer = re.findall(r"(?:^|/)layer_(\d+)(?:/|_width|$)", text)
    if not layer or re.search(r"-(att|mlp|transcoder)|(?:^|/)(attn_out|mlp_out|transcoder\w*|clt\w*)(?:/|$)", text):
        raise ValueError(f"Cannot tell which hook the Gemma Scope SAE in {folder} reads (no residual "
                         "layer_N in its path): give it as PATH@LAYER or PATH@blocks.N.hook_resid_post "
                         f"(`--sae coarse={folder}@LAYER`).")
    return f"blocks.{int(layer[-1])}.hook_resid_post"


def _pretrained_spec(release: str, sae_id: str) -> SAESpec:
    """A sae-lens release/sae_id, checked against sae-lens' own release list (offline)."""
    from difflib import get_close_matches

    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    lookup = directory.get(release)
    if lookup is None:
        near = get_close_matches(release, list(directory), n=3)
        raise ValueError(f"Unknown sae-lens release {release!r}" + (f"; did you mean {', '.join(near)}?" if near else
                                                                   " (and no folder of that name)."))
    if sae_id not in lookup.saes_map:
        folder = sae_id.rpartition("/")[0] + "/"  # same layer and width first, e.g. another L0
        near = sorted(i for i in lookup.saes_map if i.startswith(folder)) if folder != "/" else []
        near = near or get_close_matches(sae_id, list(lookup.saes_map), n=3, cutoff=0.5)
        raise ValueError(f"Release {release!r} has no SAE {sae_id!r}" + (f"; close: {', '.join(near)}." if near else "."))
    return SAESpec("pretrained", release=release, sae_id=sae_id)


def _torch_dtype(dtype) -> str | None:
    if dtype is None or isinstance(dtype, str):
        return dtype
    return str(dtype).removeprefix("torch.")


def load_sae(spec: SAESpec | str, device: str = "cpu", dtype=None):
    """Return a sae-lens SAE for `spec` (a SAESpec or a preset name). Never touches the network."""
    from sae_lens import SAE

    spec = get_preset(spec) if isinstance(spec, str) else spec
    dt = _torch_dtype(dtype)
    if spec.kind == "embedded":
        folder = SAES_DIR / spec.name
        if not (folder / "cfg.json").exists():
            raise SAEUnavailable(f"embedded SAE {spec.name!r} is missing from {folder}; "
                                 "build it with `python -m spectrascope.core.train all`")
        return SAE.load_from_disk(folder, device=device, dtype=dt)
    if spec.kind == "local":
        return SAE.load_from_disk(Path(spec.path).expanduser(), device=device, dtype=dt)
    if spec.kind == "gemma_scope_folder":
        return load_gemma_scope_folder(spec.path, device=device, dtype=dt, hook_name=spec.hook_name,
                                       model_name=spec.model_name)
    return _load_pretrained_cached(spec, device, dt)


# ---------------------------------------------------------------- Gemma Scope folders

GEMMA_SCOPE_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
_READ_CHUNK = 1 << 20  # elements read per step (4 MB of fp32): with the zip reader's own buffer, the only transient


def read_gemma_scope_params(folder: str | Path, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """W_enc, W_dec, b_enc, b_dec, threshold from params.npz or params.safetensors, in `dtype`.

    Each array is read in chunks straight into its final tensor, so the peak memory is what is
    kept plus one chunk: reading an fp32 npz whole and then converting it to bf16 held 2.4x."""
    folder = Path(folder).expanduser()
    if (folder / "params.safetensors").exists():
        sd = dict(_safetensors_arrays(folder / "params.safetensors", dtype))
    elif (folder / "params.npz").exists():
        sd = dict(_npz_arrays(folder / "params.npz", dtype))
    else:
        raise SAEUnavailable(f"{folder} holds neither params.npz nor params.safetensors")
    sd = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in sd.items()}
    missing = set(GEMMA_SCOPE_KEYS) - set(sd)
    if missing:
        raise ValueError(f"Gemma Scope params in {folder} lack {sorted(missing)}")
    return sd


def _npz_arrays(path: Path, dtype: torch.dtype):
    """(name, tensor) per array of an .npz, read from the zip member chunk by chunk (an npz cannot
    be memory-mapped)."""
    import zipfile

    fmt = np.lib.format
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            with zf.open(member) as f:
                version = fmt.read_magic(f)
                shape, fortran, src = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                       else fmt.read_array_header_2_0(f))
                if fortran:  # column-major: rare; read whole
                    out = torch.from_numpy(np.ascontiguousarray(fmt.read_array(f))).to(dtype)
                else:
                    out = torch.empty(shape, dtype=dtype)
                    flat, n = out.view(-1), out.numel()
                    buf = bytearray(min(n, _READ_CHUNK) * src.itemsize)  # reused: one chunk in flight
                    for start in range(0, n, _READ_CHUNK):
                        count = min(_READ_CHUNK, n - start)
                        f.readinto(memoryview(buf)[:count * src.itemsize])
                        chunk = np.frombuffer(buf, dtype=src, count=count)
                        flat[start:start + count] = torch.from_numpy(chunk.astype(np.float32, copy=False))
            yield member.removesuffix(".npy"), out


def _safetensors_arrays(path: Path, dtype: torch.dtype):
    """(name, tensor) per tensor of a safetensors file, copied in row chunks from the mapped file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        for name in f.keys():
            piece = f.get_slice(name)
            shape = piece.get_shape()
            if not shape:
                yield name, f.get_tensor(name).to(dtype)
                continue
            out = torch.empty(shape, dtype=dtype)
            rows = max(1, _READ_CHUNK // max(1, int(np.prod(shape[1:]))))
            for start in range(0, shape[0], rows):
                out[start:start + rows] = piece[start:start + rows]
            yield name, out


def load_gemma_scope_folder(folder: str | Path, device: str = "cpu", dtype: str | None = None,
                            hook_name: str | None = None, model_name: str | None = None):
    """A JumpReLU SAE from a Gemma Scope folder (no b_dec subtraction on input, as Gemma Scope)."""
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    dtype = dtype or "float32"
    sd = read_gemma_scope_params(folder, getattr(torch, dtype))
    d_in, d_sae = sd["W_enc"].shape
    # Built on the meta device: sae-lens would otherwise allocate and initialise full-size
    # weights only for load_state_dict to replace them.
    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype=dtype, device="meta",
                            apply_b_dec_to_input=False, normalize_activations="none",
                            metadata=SAEMetadata(hook_name=hook_name, model_name=model_name,
                                                 prepend_bos=True, hook_head_index=None))
    sae = JumpReLUSAE(cfg)
    sae.load_state_dict({k: sd.pop(k) for k in GEMMA_SCOPE_KEYS}, assign=True)  # takes the tensors: no copy
    return sae.to(device)  # also sets cfg.device / sae.device from "meta"


# ---------------------------------------------------------------- pretrained (cache only)

def _hub_file_in_cache(repo_id: str, filename: str, cache_dir: str | None = None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id=repo_id, filename=filename, cache_dir=cache_dir)
    return hit if isinstance(hit, str) else None


def _unavailable(spec: SAESpec, repo_id: str, path: str, file: str = "params.npz") -> SAEUnavailable:
    return SAEUnavailable(
        f"SAE {spec.release} / {spec.sae_id} is not in the local Hugging Face cache "
        f"(looked for {repo_id}:{path}/{file}; HF cache: $HF_HOME or ~/.cache/huggingface). "
        "spectrascope never downloads implicitly. To get it: run once online with "
        f"`hf download {repo_id} --include '{path}/*'` (the Gemma Scope repos are "
        "gated: accept the license and `hf auth login` first), or point HF_HOME at a cache "
        f"that has it, or pass the downloaded folder: `--sae ROLE=/path/to/{path.rsplit('/', 1)[-1]}`."
    )


def gemma_scope_2_hook(path: str) -> str:
    """The hook a Gemma Scope 2 SAE reads, from its path in the release (`resid_post/layer_9_width_…`).
    Only residual-stream SAEs: attention, MLP and transcoder SAEs read and write other hooks."""
    layer = re.search(r"layer_(\d+)", path)
    if layer is None or not path.startswith("resid_post"):
        raise SAEUnavailable(f"{path} is not a residual-stream SAE: spectrascope reads the residual stream "
                             "(the gemma-scope-2-…-res and -res-all releases).")
    return f"blocks.{int(layer[1])}.hook_resid_post"


def _load_pretrained_cached(spec: SAESpec, device: str, dtype: str | None):
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory().get(spec.release)
    if lookup is None:
        raise SAEUnavailable(f"unknown sae-lens release {spec.release!r}")
    path = lookup.saes_map.get(spec.sae_id)
    if path is None:
        raise SAEUnavailable(f"release {spec.release!r} has no SAE id {spec.sae_id!r}")
    if lookup.conversion_func == "gemma_3":  # Gemma Scope 2: the hook from the path, the shapes from the file
        hook = gemma_scope_2_hook(path)
        hit = _hub_file_in_cache(lookup.repo_id, f"{path}/params.safetensors")
        if hit is None:
            raise _unavailable(spec, lookup.repo_id, path, "params.safetensors")
        return load_gemma_scope_folder(Path(hit).parent, device=device, dtype=dtype, hook_name=hook,
                                       model_name=lookup.model)
    if lookup.conversion_func == "gemma_2":
        hit = _hub_file_in_cache(lookup.repo_id, f"{path}/params.npz")
        if hit is None:
            raise _unavailable(spec, lookup.repo_id, path)
        from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf

        meta = get_gemma_2_config_from_hf(lookup.repo_id, path, device)  # pure string logic, no I/O
        return load_gemma_scope_folder(Path(hit).parent, device=device, dtype=dtype,
                                       hook_name=meta["hook_name"], model_name=meta["model_name"])
    # Other sae-lens-format releases: only when both files are cached, and with the hub offline.
    cfg_hit = _hub_file_in_cache(lookup.repo_id, f"{path}/cfg.json")
    w_hit = _hub_file_in_cache(lookup.repo_id, f"{path}/sae_weights.safetensors")
    if cfg_hit is None or w_hit is None:
        raise _unavailable(spec, lookup.repo_id, path)
    from sae_lens import SAE

    return SAE.load_from_disk(Path(w_hit).parent, device=device, dtype=dtype)


# ---------------------------------------------------------------- compatibility

def check_compatible(sae, d_model: int, hook_name: str | None = None) -> None:
    """Raise SAEIncompatible if the SAE's input width or hook point does not match the model's."""
    d_in = sae.cfg.d_in
    if d_in != d_model:
        raise SAEIncompatible(f"SAE expects d_in={d_in} but the model's residual width is {d_model}; "
                              "pick an SAE trained on this model")
    sae_hook = getattr(sae.cfg.metadata, "hook_name", None)
    if hook_name is not None and sae_hook is not None and sae_hook != hook_name:
        raise SAEIncompatible(f"SAE was trained on {sae_hook!r} but is being applied at {hook_name!r}")
