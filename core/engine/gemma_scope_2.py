"""Gemma Scope 2 facts both the model presets and the SAE presets need (torch-free).

Google's SAEs for Gemma 3 (sae-lens' registry: `gemma-scope-2-{size}-{pt,it}-res`, four layers per size,
16k to 1m wide, L0 bands small / medium / big). spectrascope's default per size is the second of the four
layers, near the middle as the embedded SAEs' layer 9 of 18: coarse = 16k, fine = 262k, both L0 "medium".
"""

from __future__ import annotations

LAYERS = {"270m": 9, "1b": 13, "4b": 17, "12b": 24, "27b": 31}  # Gemma 3 size -> the default SAE layer


def sae_preset(size: str, variant: str, width: str) -> str:
    """The SAE preset name for a Gemma 3 size, variant (pt / it) and width (16k / 262k)."""
    return f"gemma-scope-2-{size}-{variant}-{width}"
