"""A session with the real Session's interface and a tiny deterministic "model": no weights."""

from __future__ import annotations

import threading
import time

import torch

from spectrascope.core.session import Cancelled, PromptError, Request, Result, Token, resid_hook

VOCAB = ["<bos>", " Paris", " the", " a", " France", "[bold]", "\x1b[31m", " Lyon", "\n", "é"] + [
    f" w{i}" for i in range(54)
]


class FakeSession:
    default_layer = 1
    d_model = 8

    def __init__(self, delay: float = 0.0, fail_on: str | None = None, saes: dict | None = None):
        self.delay = delay
        self.fail_on = fail_on
        self.calls = 0
        self.saes = saes or {}  # role -> sae-lens SAE reading blocks.1 (d_in 8)
        self.sae_errors: dict[str, str] = {}
        from spectrascope.core.labels import FeatureLabels

        self.labels = {role: FeatureLabels.for_sae(sae) for role, sae in self.saes.items()}

    def describe(self) -> str:
        return "fake · cpu float32 · layer 1"

    def sae_hook(self, role: str) -> str:
        return self.saes[role].cfg.metadata.hook_name

    def piece(self, token_id: int) -> str:
        return VOCAB[int(token_id)]

    def run(self, request: Request, cancel: threading.Event | None = None) -> Result:
        self.calls += 1
        if request.prompt == "":
            raise PromptError("The prompt is empty: type something to run the model on.")
        if self.fail_on and self.fail_on in request.prompt:
            raise RuntimeError(f"boom on {self.fail_on}")
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            time.sleep(0.005)
        words = request.prompt.split(" ")
        ids = [0] + [1 + (sum(map(ord, w)) % (len(VOCAB) - 1)) for w in words]
        gen = torch.Generator().manual_seed(sum(ids))
        logits = torch.randn(len(VOCAB), generator=gen) * 3  # (V,)
        resid = torch.randn(len(ids), self.d_model, generator=gen)  # (T, d)
        from spectrascope.core.spectrum import encode_all

        spectra = encode_all(self.saes, {resid_hook(self.default_layer): resid}) if self.saes else {}
        return Result(
            spectra=spectra,
            run_id=request.run_id,
            prompt=request.prompt,
            tokens=tuple(Token(i, VOCAB[i]) for i in ids),
            resid={resid_hook(self.default_layer): resid},
            logits=logits,
            seconds=self.delay,
            bos=1 if len(ids) > 1 else 0,
        )
