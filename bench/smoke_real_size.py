"""Real-size smoke run (issue 13): Gemma 2 2B + Gemma Scope 16K and 262K, random weights, on this machine.

    .venv/bin/python bench/smoke_real_size.py --tiny          # every step at toy sizes (a minute)
    nice -n 10 .venv/bin/python bench/smoke_real_size.py      # real sizes: ~5 GB model + 5 GB of SAEs
        [--keep] [--skip-build] [--only probe,spectrum,...] [--root DIR]
    .venv/bin/python bench/smoke_real_size.py --gemma-scope-2 # Gemma 3 270M + Gemma Scope 2 (issue 33)

--gemma-scope-2: the embedded model's weights placed as google/gemma-3-270m, and
google/gemma-scope-2-270m-pt's resid_post/layer_9_width_16k_l0_medium and width_262k
params.safetensors (random JumpReLU at real shapes, fp32), chosen by `--model gemma-3-270m-pt` and
its default SAEs: the Gemma 3 preset path a GPU box takes, offline (HF_HUB_OFFLINE=1).

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
    from safetensors.torch import save_file
    from transformers import Gemma2Config, Gemma2ForCausalLM

    cfg = Gemma2Config(**config)
    cfg.torch_dtype = torch.bfloat16
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Gemma2ForCausalLM(cfg).state_dict().items()}
    if cfg.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
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
    cfg.save_pretrained(folder)


def build_gemma_scope_2(hf_home: Path, tiny: bool) -> None:
    """google/gemma-3-270m as links to the embedded model's converted files, and random Gemma Scope 2 SAEs."""
    import torch
    from safetensors.torch import save_file

    from spectrascope.core.engine.embedded import ensure_embedded_model

    model = hub_snapshot(hf_home, "google/gemma-3-270m")
    # The parent names the user's converted copy: this process runs with a fresh SPECTRASCOPE_CACHE.
    embedded = Path(os.environ["SMOKE_EMBEDDED"]) if os.environ.get("SMOKE_EMBEDDED") else ensure_embedded_model()
    for f in embedded.iterdir():
        if f.suffix in (".json", ".safetensors") and f.name != "spectrascope-complete.json" and not (model / f.name).exists():
            (model / f.name).symlink_to(f)
    scope = hub_snapshot(hf_home, GS2_REPO)
    for role, path in GS2_IDS.items():
        folder, width = scope / path, WIDTHS[tiny][role]
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "params.safetensors").is_file():
            continue
        gen = torch.Generator().manual_seed(len(role))
        w_dec = torch.nn.functional.normalize(torch.randn(width, 640, generator=gen), dim=1)
        save_file({"w_enc": (w_dec.T * 0.05).contiguous(), "w_dec": w_dec, "b_enc": torch.zeros(width),
                   "b_dec": torch.zeros(640), "threshold": torch.full((width,), 1.0)}, str(folder / "params.safetensors"))


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
    ap.add_argument("--pilot-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pilot_child is not None:  # we are the Pilot step's subprocess
        import asyncio

        print("PILOT " + json.dumps(asyncio.run(pilot_pass(args.pilot_child, args.timeout))), flush=True)
        return 0

    kind = ("tiny" if args.tiny else "real") + ("-gs2" if args.gemma_scope_2 else "")
    keep = args.keep or args.skip_build
    root = args.root or (Path(tempfile.gettempdir()) / f"spectrascope-smoke-{kind}" if keep
                         else Path(tempfile.mkdtemp(prefix=f"spectrascope-smoke-{kind}-")))
    root.mkdir(parents=True, exist_ok=True)
    hf_home, work = root / "hf", Path(tempfile.mkdtemp(prefix="spectrascope-smoke-run-"))
    print(f"HF cache: {hf_home}" + (" (kept)" if keep else " (deleted afterwards)"), flush=True)
    (work / "concept.txt").write_text("\n".join(CONCEPT) + "\n")
    (work / "neutral.txt").write_text("\n".join(NEUTRAL) + "\n")
    if args.gemma_scope_2 and not args.skip_build:  # converted once into the user's cache, linked from the HF cache
        from spectrascope.core.engine.embedded import ensure_embedded_model

        os.environ["SMOKE_EMBEDDED"] = str(ensure_embedded_model())
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SPECTRASCOPE_CACHE": str(work / "cache"),  # a fresh contrast cache: the run is timed, not read back
           "SPECTRASCOPE_CONFIG": str(work / "no-config.toml"), "OMP_WAIT_POLICY": "PASSIVE"}
    if args.gemma_scope_2:  # the preset's own default SAEs: nothing but --model names them
        model, saes = ["--model", "gemma-3-270m-pt", "--device", "cpu", "--dtype", "bfloat16"], []
    else:
        model = ["--model", "gemma-2-2b", "--device", "cpu", "--dtype", "bfloat16"]
        saes = [a for role, sae_id in SAE_IDS.items() for a in ("--sae", f"{role}=gemma-scope-2b-pt-res/{sae_id}")]
    cli = [sys.executable, "-m", "spectrascope.tui.cli"]
    only = set(filter(None, args.only.split(",")))
    steps: list[tuple[str, list[str]]] = []
    if not args.skip_build:
        steps.append(("build", [sys.executable, __file__, "--build-child", str(hf_home)] + (["--tiny"] if args.tiny else [])
                      + (["--gemma-scope-2"] if args.gemma_scope_2 else [])))
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
            else f"Gemma 2 2B config{' (toy dims)' if args.tiny else ''}, Gemma Scope")
    print(f"\nsmoke run ({kind} sizes: {what} {WIDTHS[args.tiny]['coarse']:,} + {WIDTHS[args.tiny]['fine']:,}, cpu bf16)")
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
        (build_gemma_scope_2 if "--gemma-scope-2" in sys.argv[3:] else build)(Path(sys.argv[2]), "--tiny" in sys.argv[3:])
        raise SystemExit(0)
    raise SystemExit(main())
