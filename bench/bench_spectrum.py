"""Spectrum benchmarks (issue 5): keystroke -> both spectra on screen, vs a bare HF forward.

    .venv/bin/python bench/bench_spectrum.py            # CPU, embedded model + embedded SAEs
    .venv/bin/python bench/bench_spectrum.py --gpu      # CUDA only: Gemma 2 2B + 16K/262K JumpReLU,
                                                        # random weights at their real sizes

Ours = Session.run (one forward: tokens, resid, last logits, coarse + fine SAE
codes, L0, fidelity) + the Spectrum pane's redraw. Baseline = a bare HF forward
with logits_to_keep=1 in the same dtype on the same model, interleaved in the
same run. Target: ratio <= 1.3 on CPU; under 25 ms per update on an H100.
If the embedded SAEs are not built yet, random SAEs of the same widths stand in
(timing depends on widths, not on trained values).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (tui/cli.py)

import argparse
import asyncio
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved_medians  # noqa: E402

PROMPT_12 = "The Eiffel Tower is located in the city of Paris, France"


def random_jumprelu(d_in: int, d_sae: int, hook: str, device: str, dtype: torch.dtype):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(hook_name=hook, model_name="bench", prepend_bos=True, hook_head_index=None)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", metadata=meta))
    with torch.no_grad():
        for p in (sae.W_enc, sae.W_dec):
            p.normal_(0, d_in**-0.5)
        sae.threshold.fill_(0.1)
    return sae.to(device=device, dtype=dtype).eval()


def time_pair(ours, base, repeats: int, sync=lambda: None) -> tuple[float, float]:
    med = interleaved_medians({"ours": ours, "base": base}, repeats, sync)
    return med["ours"], med["base"]


def cpu_bench(repeats: int, dtype: str) -> None:
    from spectrascope.core.engine.session import Request, Session
    from spectrascope.tui.app import SpectrascopeApp
    from spectrascope.tui.pilot import until

    session = Session.load("gemma-3-270m", device="cpu", dtype=dtype)
    stand_in = ""
    if set(session.saes) != {"coarse", "fine"}:
        widths = {"coarse": 1024, "fine": 8192}
        for role, width in widths.items():
            session.attach_sae(role, random_jumprelu(640, width, "blocks.9.hook_resid_post", "cpu", torch.float32))
        stand_in = " (random SAEs of the embedded widths: the trained ones are not built yet)"
    ids = torch.tensor([session.tokenize(PROMPT_12)[0]])
    hf = session.model.hf_model
    app = SpectrascopeApp(lambda progress: session, prompt="x")
    timings: dict[str, float] = {}

    async def drive():
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: app.result is not None, timeout=10)
            pane = app.query_one("#spectrum")
            app.query_one("TabbedContent").active = "tab-spectrum"
            await pilot.pause(0.2)

            def ours():
                result = session.run(Request(PROMPT_12))
                pane.show_result(result)
                app.screen._refresh_layout()
                app.screen._compositor.render_update()

            def base():
                with torch.inference_mode():
                    hf(ids, logits_to_keep=1)

            timings["ours"], timings["base"] = time_pair(ours, base, repeats)

    asyncio.run(drive())
    sizes = ", ".join(f"{r} {s.cfg.d_sae:,}" for r, s in session.saes.items())
    print(f"keystroke -> both spectra on screen, {ids.shape[1]} tokens, cpu {dtype}, SAEs {sizes}{stand_in}:")
    print(f"  ours (forward + logits + 2 SAEs + pane redraw) {timings['ours'] * 1e3:8.1f} ms")
    print(f"  bare HF forward, logits_to_keep=1             {timings['base'] * 1e3:8.1f} ms")
    print(f"  ratio {timings['ours'] / timings['base']:.2f}x (target <= 1.3x)")


def gpu_bench(repeats: int) -> None:
    if not torch.cuda.is_available():
        print("--gpu: no CUDA device here; skipped.")
        return
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from spectrascope.core.engine.codes import encode

    cfg = Gemma2Config(  # google/gemma-2-2b's shape
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, final_logit_softcapping=30.0,
        attn_logit_softcapping=50.0, sliding_window=4096, query_pre_attn_scalar=256,
    )
    with torch.device("cuda"):
        model = Gemma2ForCausalLM(cfg).to(torch.bfloat16).eval()
    saes = {r: random_jumprelu(2304, w, "blocks.12.hook_resid_post", "cuda", torch.bfloat16)
            for r, w in (("coarse", 16384), ("fine", 262144))}
    ids = torch.randint(0, 256000, (1, 12), device="cuda")
    captured = {}
    model.model.layers[12].register_forward_hook(lambda m, i, o: captured.__setitem__("x", o[0] if isinstance(o, tuple) else o))

    def ours():
        with torch.inference_mode():
            model(ids, logits_to_keep=1)
            for role, sae in saes.items():
                encode(sae, captured["x"][0], role)

    def base():
        with torch.inference_mode():
            model(ids, logits_to_keep=1)

    o, b = time_pair(ours, base, repeats, torch.cuda.synchronize)
    print(f"GPU ({torch.cuda.get_device_name()}), Gemma 2 2B shape, bf16, 12 tokens, 16K + 262K JumpReLU:")
    print(f"  ours {o * 1e3:.1f} ms per update (target < 25 ms) · bare forward {b * 1e3:.1f} ms · ratio {o / b:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    gpu_bench(args.repeats) if args.gpu else cpu_bench(args.repeats, args.dtype)


if __name__ == "__main__":
    main()
