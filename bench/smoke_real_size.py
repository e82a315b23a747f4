"""Real-size smoke run (issue 13): Gemma 2 2B + Gemma Scope 16K and 262K, random weights, on this machine.

    .venv/bin/python bench/smoke_real_size.py --tiny          # every step at toy sizes (a minute)
    nice -n 10 .venv/bin/python bench/smoke_real_size.py      # real sizes: ~5 GB model + 5 GB of SAEs
        [--keep] [--skip-build] [--only probe,spectrum,...] [--root DIR]
    .venv/bin/python bench/smoke_real_size.py --gemma-scope-2 # Gemma 3 270M + Gemma Scope 2 (issue 33)
    nice -n 10 .venv/bin/python bench/smoke_real_size.py --gemma-3-4b [--fine 65k]  # Gemma 3 4B-shaped (issue 33)

--gemma-scope-2: the embedded model's weights placed as google/gemma-3-270m, and
google/gemma-scope-2-270m-pt's resid_post/layer_9_width_16k_l0_medium and width_262k
params.safetensors (random JumpReLU at real shapes, fp32), chosen by `--model gemma-3-270m-pt` and
its default SAEs: the Gemma 3 preset path a GPU box takes, offline (HF_HUB_OFFLINE=1).

--gemma-3-4b: google/gemma-3-4b-pt as the hub ships it, a Gemma3ForConditionalGeneration checkpoint
(the real config.json: text model 2560 wide, 34 layers, 8 heads / 4 KV heads of 256, MLP 10240, vocab
262208, sliding window 1024; the real SigLIP tower, 27 layers of 1152; tensors named as the hub names
them), random bf16 weights (8.6 GB), the embedded model's tokenizer (Gemma 3's), plus
google/gemma-scope-2-4b-pt's resid_post/layer_17_width_16k_l0_medium and width_262k (or --fine 65k)
params.safetensors, random at real shapes (d 2560, fp32: 5.4 GB at 262k, 1.3 GB at 65k). Runs
build, saes, probe and spectrum by default (--only for the other steps); measured at 262k: at most 12.7 GB
peak RSS a step (pilot); spectrum 11.7-12.7 GB over three runs (mapped SAE pages come and go).

Builds, in a temporary Hugging Face cache (HF_HOME), what `hf download` would leave there:
google/gemma-2-2b with its real config and random bf16 weights (plus a synthetic tokenizer of
the real vocabulary size: the real one is gated and this box is offline), and
google/gemma-scope-2b-pt-res's layer_12/width_16k/average_l0_82 and width_262k/average_l0_121
params.npz (random JumpReLU, fp32 as Google ships them). Then runs, each in its own
subprocess so the peak RSS is that step's (os.wait4): `saes`, `probe`, `spectrum`,
`contrast` (8 vs 8 prompts), `steer` (4 tokens, 2 seeds) and a Pilot pass over every pane of
the real TUI, timing keystroke -> the Spectrum pane's labelled table at 262K. Model and SAEs
are chosen by the same flags a user types (`--model gemma-2-2b --sae ROLE=release/sae_id`).

Not part of CI. Without --keep the folders are deleted afterwards; with --keep they stay under
--root (printed) and --skip-build reuses them. Check `free -g` first: a real-size step holds
~8 GB (bf16 model + bf16 SAEs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sae_load import write_gemma_scope_folder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REVISION = "0" * 40  # the snapshot's commit hash in the fake HF cache
SCOPE_REPO = "google/gemma-scope-2b-pt-res"
SAE_IDS = {"coarse": "layer_12/width_16k/average_l0_82", "fine": "layer_12/width_262k/average_l0_121"}
PROMPT = "The Eiffel Tower is located in the city of"
TYPED = " Paris"  # typed into the TUI's prompt for the keystroke -> labelled table timing

# google/gemma-2-2b's config.json (the fields transformers reads).
GEMMA2_2B = dict(
    architectures=["Gemma2ForCausalLM"], vocab_size=256000, hidden_size=2304, intermediate_size=9216,
    num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
    hidden_activation="gelu_pytorch_tanh", max_position_embeddings=8192, rms_norm_eps=1e-6,
    rope_theta=10000.0, attention_bias=False, attention_dropout=0.0, query_pre_attn_scalar=256,
    sliding_window=4096, final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
    pad_token_id=0, eos_token_id=1, bos_token_id=2, initializer_range=0.02, tie_word_embeddings=True,
)
# --tiny: the same architecture and layer 12, toy widths (every code path, a minute in all).
TINY = {**GEMMA2_2B, "vocab_size": 2048, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 14,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32}
WIDTHS = {False: {"coarse": 16_384, "fine": 262_144}, True: {"coarse": 256, "fine": 2048}}
SHARD_BYTES = 2 << 30  # safetensors shards written one at a time (the build never holds the model)

# --gemma-scope-2: Gemma 3 270M (the embedded weights) + Gemma Scope 2 at layer 9, by the preset's own SAEs.
GS2_REPO = "google/gemma-scope-2-270m-pt"
GS2_IDS = {"coarse": "resid_post/layer_9_width_16k_l0_medium", "fine": "resid_post/layer_9_width_262k_l0_medium"}

# --gemma-3-4b: google/gemma-3-4b-pt's config.json (what the hub ships; the text model's other fields are
# Gemma3TextConfig's defaults: 8 heads, 4 KV heads, head_dim 256, vocab 262208, rope 1e6 / 1e4 local).
GEMMA3_4B = dict(
    architectures=["Gemma3ForConditionalGeneration"], model_type="gemma3", boi_token_index=255999,
    eoi_token_index=256000, image_token_index=262144, eos_token_id=[1, 106], initializer_range=0.02,
    mm_tokens_per_image=256, torch_dtype="bfloat16", transformers_version="4.50.0.dev0",
    text_config=dict(model_type="gemma3_text", hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                     rope_scaling={"factor": 8.0, "rope_type": "linear"}, sliding_window=1024),
    vision_config=dict(model_type="siglip_vision_model", hidden_size=1152, image_size=896, intermediate_size=4304,
                       num_attention_heads=16, num_hidden_layers=27, patch_size=14, vision_use_head=False),
)
# --tiny: the same layout and vocabulary (the real tokenizer), toy widths; 20 layers so layer 17 exists.
GEMMA3_4B_TINY = {**GEMMA3_4B, "mm_tokens_per_image": 4,
                  "text_config": dict(model_type="gemma3_text", hidden_size=64, intermediate_size=128, num_hidden_layers=20,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16),
                  "vision_config": dict(model_type="siglip_vision_model", hidden_size=32, image_size=28, intermediate_size=64,
                                        num_attention_heads=2, num_hidden_layers=1, patch_size=14, vision_use_head=False)}
G4B_REPO = "google/gemma-scope-2-4b-pt"
SAE_WIDTHS = {"16k": 16_384, "65k": 65_536, "262k": 262_144}


def g4b_ids(fine: str) -> dict[str, str]:
    return {"coarse": "resid_post/layer_17_width_16k_l0_medium", "fine": f"resid_post/layer_17_width_{fine}_l0_medium"}


def hub_name(name: str) -> str:
    """A Gemma3ForConditionalGeneration tensor as google/gemma-3-4b-pt's safetensors name it (4.50 layout)."""
    for new, old in (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower.vision_model."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


CONCEPT = ["The Eiffel Tower stands in Paris.", "Paris is the capital of France.", "French bakers sell baguettes.",
           "The Louvre holds the Mona Lisa.", "Lyon and Marseille are French cities.", "The Seine flows through Paris.",
           "Bordeaux is known for its wine.", "The French Revolution began in 1789."]
NEUTRAL = ["The cat sleeps on the warm mat.", "Rain is expected tomorrow morning.", "She bought a new bicycle.",
           "The meeting starts at nine.", "Water boils at one hundred degrees.", "He plays the guitar at night.",
           "The library opens on Sundays.", "Apples grow on trees in autumn."]


# ---------------------------------------------------------------- build

def hub_snapshot(hf_home: Path, repo_id: str) -> Path:
    """models--ORG--NAME/snapshots/REV in HF's cache layout, refs/main pointing at it."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    """A byte-level BPE trained on the shipped prompt sets, padded to `vocab_size` with filler tokens
    (reachable by id only) so every id the random model can emit decodes; Gemma's special ids 0-3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = [line for p in sorted((REPO / "assets" / "prompts").rglob("*.txt")) for line in p.read_text().splitlines()]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text or CONCEPT + NEUTRAL, trainers.BpeTrainer(
        vocab_size=min(vocab_size, 4000), special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(len(vocab), vocab_size):
        vocab[f"fill{i}"] = i
    padded = Tokenizer.from_str(json.dumps(spec))
    PreTrainedTokenizerFast(tokenizer_object=padded, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                            pad_token="<pad>").save_pretrained(folder)


def write_model(folder: Path, config: dict) -> None:
    """Random bf16 weights for every tensor of the config's model, shard by shard (std 0.02, as HF
    initialises; norms near 0, i.e. scale ~1 under Gemma's 1 + w)."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    cfg = Gemma2Config(**config)
    cfg.torch_dtype = torch.bfloat16
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Gemma2ForCausalLM(cfg).state_dict().items()}
    if cfg.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    write_shards(folder, shapes)
    cfg.save_pretrained(folder)


def write_shards(folder: Path, shapes: dict) -> None:
    """Random bf16 tensors of `shapes` ({name: shape}) as sharded safetensors + index, one shard in memory."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    names: list[list[str]] = []  # per shard written
    shard: dict[str, torch.Tensor] = {}

    def flush() -> None:  # only one shard is ever in memory
        save_file(shard, str(folder / f"shard-{len(names)}.safetensors"), metadata={"format": "pt"})
        names.append(list(shard))
        shard.clear()

    for name, shape in shapes.items():
        t = torch.randn(shape, generator=gen, dtype=torch.bfloat16) * (0.02 if len(shape) > 1 else 0.01)
        if shard and sum(x.numel() * 2 for x in shard.values()) + t.numel() * 2 > SHARD_BYTES:
            flush()
        shard[name] = t
    flush()
    weight_map = {}
    for i, keys in enumerate(names):
        final = f"model-{i + 1:05d}-of-{len(names):05d}.safetensors"
        (folder / f"shard-{i}.safetensors").rename(folder / final)
        weight_map.update(dict.fromkeys(keys, final))
    total = sum((folder / f).stat().st_size for f in set(weight_map.values()))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))


def build_gemma_scope_2(hf_home: Path, tiny: bool) -> None:
    """google/gemma-3-270m as links to the embedded model's converted files, and random Gemma Scope 2 SAEs."""
    from spectrascope.core.engine.embedded import ensure_embedded_model

    model = hub_snapshot(hf_home, "google/gemma-3-270m")
    # The parent names the user's converted copy: this process runs with a fresh SPECTRASCOPE_CACHE.
    embedded = Path(os.environ["SMOKE_EMBEDDED"]) if os.environ.get("SMOKE_EMBEDDED") else ensure_embedded_model()
    for f in embedded.iterdir():
        if f.suffix in (".json", ".safetensors") and f.name != "spectrascope-complete.json" and not (model / f.name).exists():
            (model / f.name).symlink_to(f)
    scope = hub_snapshot(hf_home, GS2_REPO)
    for role, path in GS2_IDS.items():
        write_gemma_scope_2_sae(scope / path, WIDTHS[tiny][role], 640, seed=len(role))


def write_gemma_scope_2_sae(folder: Path, width: int, d: int, seed: int) -> None:
    """A random JumpReLU at Gemma Scope 2's names and shapes (w_enc (d, width), w_dec (width, d), fp32): unit
    decoder rows, encoder 0.05 x the decoder's transpose, threshold 1. Written as safetensors by hand, the
    encoder in row chunks, so only the decoder is ever whole in memory (2.7 GB at 262k x 2560)."""
    import struct

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "params.safetensors").is_file():
        return
    gen = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(width, d, generator=gen)
    for rows in torch.split(w_dec, 4096):
        rows /= rows.norm(dim=1, keepdim=True)
    shapes = {"w_enc": (d, width), "w_dec": (width, d), "b_enc": (width,), "b_dec": (d,), "threshold": (width,)}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        size = 4 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(folder / "params.safetensors.part", "wb") as out:
        out.write(struct.pack("<Q", len(head)) + head)
        for start in range(0, d, 64):  # w_enc, 64 rows at a time
            out.write((w_dec[:, start:start + 64].T * 0.05).contiguous().numpy().tobytes())
        out.write(memoryview(w_dec.numpy()))  # no copy
        out.write(torch.zeros(width).numpy().tobytes() + torch.zeros(d).numpy().tobytes()
                  + torch.full((width,), 1.0).numpy().tobytes())
    (folder / "params.safetensors.part").rename(folder / "params.safetensors")


def build_gemma_3_4b(hf_home: Path, tiny: bool, fine: str) -> None:
    """google/gemma-3-4b-pt (its config.json, random bf16 weights under the hub's tensor names, the embedded
    model's Gemma 3 tokenizer) and random Gemma Scope 2 16k + `fine` SAEs at layer 17."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from spectrascope.core.engine.embedded import ensure_embedded_model

    config = GEMMA3_4B_TINY if tiny else GEMMA3_4B
    model = hub_snapshot(hf_home, "google/gemma-3-4b-pt")
    if not (model / "config.json").is_file():
        embedded = Path(os.environ["SMOKE_EMBEDDED"]) if os.environ.get("SMOKE_EMBEDDED") else ensure_embedded_model()
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (model / name).unlink(missing_ok=True)
            (model / name).symlink_to(embedded / name)
        with torch.device("meta"):
            net = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
            shapes = {hub_name(k): v.shape for k, v in net.state_dict().items() if k != "lm_head.weight"}  # tied
        write_shards(model, shapes)
        (model / "config.json").write_text(json.dumps(config, indent=2))  # last: marks the snapshot complete
    scope = hub_snapshot(hf_home, G4B_REPO)
    d = config["text_config"]["hidden_size"]
    for role, path in g4b_ids(fine).items():
        width = SAE_WIDTHS[path.split("_width_")[1].split("_")[0]]
        write_gemma_scope_2_sae(scope / path, width // 64 if tiny else width, d, seed=len(role))


def build(hf_home: Path, tiny: bool) -> None:
    config = TINY if tiny else GEMMA2_2B
    model = hub_snapshot(hf_home, "google/gemma-2-2b")
    if not (model / "config.json").is_file():
        write_tokenizer(model, config["vocab_size"])
        write_model(model, config)
    scope = hub_snapshot(hf_home, SCOPE_REPO)
    for role, sae_id in SAE_IDS.items():
        write_gemma_scope_folder(scope / sae_id, config["hidden_size"], WIDTHS[tiny][role], seed=len(role))


# ---------------------------------------------------------------- the Pilot pass (a child process)

async def pilot_pass(argv: list[str], timeout: float) -> dict:
    """The real TUI, loaded by the CLI's own path from `argv`'s flags: every pane shown in turn (each
    until its workers are idle), then TYPED into the prompt, timed until the Spectrum pane's table
    shows the new token's features, and until every shown label is in."""
    from spectrascope.tui import cli
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.pilot import until

    cli._environment()
    args = cli.parse_args(argv)
    args.model_given = True
    args.config = cli._apply_config(args)
    app = SpectrascopeApp(lambda progress: cli._load_session(args, progress), prompt=PROMPT)
    out: dict = {"panes": {}}

    def idle() -> bool:
        return not any(w.is_running for w in app.workers)

    async with app.run_test(size=(160, 50)) as pilot:
        t0 = time.perf_counter()
        await until(pilot, lambda: app.result is not None, timeout=timeout)
        out["load_and_first_result_s"] = time.perf_counter() - t0
        for key, name in (("f2", "logits"), ("f3", "spectrum"), ("f4", "pairing"), ("f5", "steering"),
                          ("f6", "layers"), ("f8", "anchor"), ("f7", "sae picker"), ("f1", "help")):
            t0 = time.perf_counter()
            await pilot.press(key)
            try:
                await until(pilot, idle, timeout=timeout)
                out["panes"][name] = round(time.perf_counter() - t0, 2)
            except AssertionError:
                out["panes"][name] = f"still busy after {timeout:.0f} s"
            if name in ("sae picker", "help"):  # modal screens: back to the panes
                await pilot.press("escape")
                await pilot.pause(0.2)
        await pilot.press("f3")
        pane = app.query_one("#spectrum")
        app.query_one("#prompt").focus()
        await until(pilot, idle, timeout=timeout)

        def labelled(prompt: str) -> bool:  # the table shows `prompt`'s features, every label in
            return (pane.result is not None and pane.result.prompt == prompt and bool(pane.result.spectra)
                    and not pane.labelling and not pane.view().pending())

        async def keystroke(key: str, prompt: str, name: str) -> None:
            t0 = time.perf_counter()
            await pilot.press(key)
            await until(pilot, lambda: pane.result is not None and pane.result.prompt == prompt, timeout=timeout)
            out[f"{name}_table_s"] = time.perf_counter() - t0
            await until(pilot, lambda: labelled(prompt), timeout=timeout)
            out[f"{name}_labelled_s"] = time.perf_counter() - t0

        # Typed as a person types (no waiting between keys): the last key is timed, so earlier keys'
        # forwards and label batches still in flight count. Then one more key on an idle app.
        for ch in TYPED[:-2]:
            await pilot.press("space" if ch == " " else ch)
        await keystroke(TYPED[-2], PROMPT + TYPED[:-1], "burst")
        await until(pilot, idle, timeout=timeout)
        await keystroke(TYPED[-1], PROMPT + TYPED, "idle")
        view = pane.view()
        fine = next((r.feature for r in view.rows() if r.role == "fine" and r.url), None)
        if fine is not None:  # its card: the Neuronpedia link (where one exists), the whole (6-digit at 262K) id
            pane.select_feature("fine", fine)
            card = pane.query_one("#spectrum-card")
            await until(pilot, lambda: "neuronpedia.org" in str(card.content), timeout=60)
            out["fine_card_link"] = next(w for w in str(card.content).split() if "neuronpedia.org" in w)
        out["label_error"] = pane.label_error
        out["table_rows"] = len(view.rows())
        out["fine_width"] = view.saes["fine"].width if "fine" in view.saes else None
        out["first_fine_row"] = next(((r.feature, r.label) for r in view.rows() if r.role == "fine"), None)
    return out


# ---------------------------------------------------------------- steps

def run_step(name: str, cmd: list[str], env: dict, log: Path) -> dict:
    """`cmd` in a subprocess: wall seconds and that process's own peak RSS (wait4's rusage)."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"step": name, "wall_s": wall, "rss_gb": usage.ru_maxrss * 1024 / 1e9, "rc": proc.returncode,
            "log": log}


def tail(path: Path, n: int = 6) -> str:
    return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-n:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="toy widths: a quick check of every step")
    ap.add_argument("--keep", action="store_true", help="keep the built folders under --root for the next run")
    ap.add_argument("--skip-build", action="store_true", help="reuse the folders under --root")
    ap.add_argument("--only", default="", help="comma-separated steps (build, saes, probe, spectrum, contrast, "
                                                "attribute, steer, pilot)")
    ap.add_argument("--root", type=Path, help="where the HF cache is built [a temp dir; with --keep "
                                              "$TMPDIR/spectrascope-smoke-{tiny,real}]")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds a Pilot wait may take")
    ap.add_argument("--gemma-scope-2", action="store_true",
                    help="Gemma 3 270M (the embedded weights as google/gemma-3-270m) + Gemma Scope 2 at layer 9")
    ap.add_argument("--gemma-3-4b", action="store_true",
                    help="Gemma 3 4B's multimodal checkpoint (random, real shapes) as google/gemma-3-4b-pt + Gemma Scope 2 "
                         "at layer 17; steps build, saes, probe, spectrum unless --only")
    ap.add_argument("--fine", choices=("262k", "65k"), default="262k",
                    help="--gemma-3-4b's fine SAE width (262k: the preset's own; 65k: 1.3 GB instead of 5.4 GB)")
    ap.add_argument("--pilot-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pilot_child is not None:  # we are the Pilot step's subprocess
        import asyncio

        print("PILOT " + json.dumps(asyncio.run(pilot_pass(args.pilot_child, args.timeout))), flush=True)
        return 0

    if args.gemma_scope_2 and args.gemma_3_4b:
        ap.error("--gemma-scope-2 and --gemma-3-4b are two arms: give one")
    kind = ("tiny" if args.tiny else "real") + ("-gs2" if args.gemma_scope_2 else "") + ("-4b" if args.gemma_3_4b else "")
    keep = args.keep or args.skip_build
    root = args.root or (Path(tempfile.gettempdir()) / f"spectrascope-smoke-{kind}" if keep
                         else Path(tempfile.mkdtemp(prefix=f"spectrascope-smoke-{kind}-")))
    root.mkdir(parents=True, exist_ok=True)
    hf_home, work = root / "hf", Path(tempfile.mkdtemp(prefix="spectrascope-smoke-run-"))
    print(f"HF cache: {hf_home}" + (" (kept)" if keep else " (deleted afterwards)"), flush=True)
    (work / "concept.txt").write_text("\n".join(CONCEPT) + "\n")
    (work / "neutral.txt").write_text("\n".join(NEUTRAL) + "\n")
    if (args.gemma_scope_2 or args.gemma_3_4b) and not args.skip_build:  # converted once into the user's cache, linked from the HF cache
        from spectrascope.core.engine.embedded import ensure_embedded_model

        os.environ["SMOKE_EMBEDDED"] = str(ensure_embedded_model())
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SPECTRASCOPE_CACHE": str(work / "cache"),  # a fresh contrast cache: the run is timed, not read back
           "SPECTRASCOPE_CONFIG": str(work / "no-config.toml"), "OMP_WAIT_POLICY": "PASSIVE"}
    if args.gemma_scope_2:  # the preset's own default SAEs: nothing but --model names them
        model, saes = ["--model", "gemma-3-270m-pt", "--device", "cpu", "--dtype", "bfloat16"], []
    elif args.gemma_3_4b:  # the preset's default SAEs; a 65k fine one is named (the preset's is 262k)
        model = ["--model", "gemma-3-4b-pt", "--device", "cpu", "--dtype", "bfloat16"]
        saes = ([] if args.fine == "262k" else
                [a for role, path in g4b_ids(args.fine).items()
                 for a in ("--sae", f"{role}=gemma-scope-2-4b-pt-res/{path.split('/')[1]}")])
    else:
        model = ["--model", "gemma-2-2b", "--device", "cpu", "--dtype", "bfloat16"]
        saes = [a for role, sae_id in SAE_IDS.items() for a in ("--sae", f"{role}=gemma-scope-2b-pt-res/{sae_id}")]
    cli = [sys.executable, "-m", "spectrascope.tui.cli"]
    only = set(filter(None, args.only.split(","))) or ({"build", "saes", "probe", "spectrum"} if args.gemma_3_4b else set())
    steps: list[tuple[str, list[str]]] = []
    if not args.skip_build:
        steps.append(("build", [sys.executable, __file__, "--build-child", str(hf_home)] + (["--tiny"] if args.tiny else [])
                      + (["--gemma-scope-2"] if args.gemma_scope_2 else [])
                      + ([f"--gemma-3-4b={args.fine}"] if args.gemma_3_4b else [])))
    steps += [
        ("saes", cli + ["saes"]),
        ("probe", cli + ["probe", PROMPT, "--top", "5"] + model),
        ("spectrum", cli + ["spectrum", PROMPT, "--role", "both", "--top", "5", "--json"] + model + saes),
        ("contrast", cli + ["contrast", "--concept", str(work / "concept.txt"), "--neutral", str(work / "neutral.txt"),
                            "--anchors", "2"] + model + saes),
        ("attribute", cli + ["attribute", PROMPT, "--top", "5", "--verify", "5"] + model + saes),
        ("steer", None),  # its features come from the spectrum step's output
        ("pilot", [sys.executable, __file__, "--timeout", str(args.timeout), "--pilot-child"] + model + saes),
    ]
    rows, extra = [], {}
    try:
        for name, cmd in steps:
            if only and name not in only:
                continue
            if name == "steer":
                ids = extra.get("top", {"coarse": 0, "fine": 0})  # random Gemma Scope SAEs have no labels to
            # take concept words from: the shipped France words stand in
                cmd = cli + ["steer", PROMPT, "--feature", f"coarse:{ids['coarse']}:4", "--feature",
                             f"fine:{ids['fine']}:4", "--seeds", "2", "--tokens", "4",
                             "--words", str(REPO / "assets/prompts/concept_words/france.txt")] + model + saes
            print(f"[smoke] {name} ...", flush=True)
            row = run_step(name, cmd, env, work / f"{name}.log")
            rows.append(row)
            text = row["log"].read_text(errors="replace")
            if name == "spectrum" and row["rc"] == 0:
                report = json.loads(text[text.index("{"):])
                extra["top"] = {r: s["top"][0]["feature"] if s["top"] else 0 for r, s in report["saes"].items()}
                row["note"] = "; ".join(f"{r} {s['width']:,} wide, top #{s['top'][0]['feature'] if s['top'] else '-'}"
                                        for r, s in report["saes"].items())
            if name == "pilot" and row["rc"] == 0:
                extra["pilot"] = json.loads(next(l for l in text.splitlines() if l.startswith("PILOT "))[6:])
            status = "ok" if row["rc"] == 0 else f"FAILED (exit {row['rc']})"
            print(f"[smoke] {name}: {status}, {row['wall_s']:.1f} s, peak RSS {row['rss_gb']:.2f} GB", flush=True)
            if row["rc"] != 0:
                print(tail(row["log"], 15), flush=True)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    what = ("Gemma 3 270M, Gemma Scope 2" if args.gemma_scope_2
            else f"Gemma 3 4B multimodal checkpoint{' (toy dims)' if args.tiny else ''}, Gemma Scope 2 layer 17"
            if args.gemma_3_4b else f"Gemma 2 2B config{' (toy dims)' if args.tiny else ''}, Gemma Scope")
    widths = ((SAE_WIDTHS["16k"], SAE_WIDTHS[args.fine]) if args.gemma_3_4b else
              (WIDTHS[args.tiny]["coarse"], WIDTHS[args.tiny]["fine"]))
    widths = tuple(w // 64 for w in widths) if args.tiny and args.gemma_3_4b else widths
    print(f"\nsmoke run ({kind} sizes: {what} {widths[0]:,} + {widths[1]:,}, cpu bf16)")
    print(f"{'step':10} {'wall s':>8} {'peak RSS GB':>12}  result")
    for r in rows:
        print(f"{r['step']:10} {r['wall_s']:8.1f} {r['rss_gb']:12.2f}  "
              f"{'ok' if r['rc'] == 0 else 'FAILED, see ' + str(r['log'])}{' · ' + r['note'] if r.get('note') else ''}")
    if "pilot" in extra:
        p = extra["pilot"]
        print(f"pilot: load + first result {p['load_and_first_result_s']:.1f} s; each pane until idle (s): "
              + ", ".join(f"{k} {v}" for k, v in p["panes"].items()))
        print(f"Spectrum pane (fine SAE {p['fine_width']:,} wide, {p['table_rows']} rows"
              f"{', label error: ' + p['label_error'] if p['label_error'] else ''}; first fine row {p['first_fine_row']}):")
        print(f"  fine feature card: {p.get('fine_card_link')}")
        for name, what in (("idle", "one keystroke on an idle app"), ("burst", f"last key of {TYPED!r} typed fast")):
            print(f"  {what:34} -> table {p[name + '_table_s']:6.2f} s, -> labelled table {p[name + '_labelled_s']:6.2f} s")
    print(f"logs: {work}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build-child"]:  # the build step's subprocess
        hf_home, flags = Path(sys.argv[2]), sys.argv[3:]
        four_b = next((f.split("=")[1] for f in flags if f.startswith("--gemma-3-4b=")), None)
        if four_b:
            build_gemma_3_4b(hf_home, "--tiny" in flags, four_b)
        else:
            (build_gemma_scope_2 if "--gemma-scope-2" in flags else build)(hf_home, "--tiny" in flags)
        raise SystemExit(0)
    raise SystemExit(main())
