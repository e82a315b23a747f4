"""A `SessionAPI` on a tiny deterministic "model": no weights, no tokenizer files, milliseconds a call.

The model: token embeddings E (V, d). The residual after layer 0 at position t is
the mean of E over tokens 0..t (causal, so a prefix never depends on what follows
and a KV cache is just the ids so far); layer 1 adds a fixed nonlinearity; the
logits are the layer-1 residual times E^T. Edits (`core.plan`) act at their SAE's
hook through `Session.forward`'s own `apply_edits`, so steering changes what is
generated. The real core functions (generation, steering, contrast, pairing) run
on it unchanged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Sequence

import torch

from spectrascope.core.engine.labels import FeatureLabels
from spectrascope.core.engine.models import ModelSpec
from spectrascope.core.engine.edits import apply_edits
from spectrascope.core.engine.plan import Edit, ForwardOut, GradientOut, LogitObjective
from spectrascope.core.engine.session import Cancelled, PromptError, Request, Result, Token, resid_hook
from spectrascope.core.engine.residual_stats import ResidualStats
from spectrascope.core.engine.codes import encode_all

VOCAB = ["<bos>", " Paris", " the", " a", " France", "[bold]", "\x1b[31m", " Lyon", "\n", "é"] + [
    f" w{i}" for i in range(54)
]
N_LAYERS = 2


@dataclass
class FakeCache:
    """Stands in for a KV cache: the ids fed so far (the fake model recomputes from them)."""

    ids: list[int] = field(default_factory=list)

    def get_seq_length(self) -> int:
        return len(self.ids)


class FakeSession:
    default_layer = 1
    d_model = 8
    device = "cpu"
    max_prompt_tokens = 256
    eos_id = VOCAB.index("\n")

    def __init__(self, delay: float = 0.0, fail_on: str | None = None, saes: dict | None = None):
        self.delay = delay  # seconds each `run` takes (cancellable), to test typing over a slow model
        self.fail_on = fail_on  # `run` raises on prompts containing this
        self.calls = 0  # `run` calls
        self.forwards = 0  # `forward` calls, `run`'s included
        self.saes = dict(saes or {})  # role -> sae-lens SAE reading blocks.1 (d_in 8)
        self.sae_errors: dict[str, str] = {}
        self.sae_specs: dict[str, Any] = {}
        # The facts core still reads directly (SessionAPI.model, .tokenizer); a base model: no chat template.
        self.model = SimpleNamespace(spec=ModelSpec("fake", "fake"), device="cpu", dtype="float32",
                                     n_layers=N_LAYERS, d_model=self.d_model)
        self.tokenizer = SimpleNamespace(bos_token_id=0, pad_token_id=0, bos_token=VOCAB[0], chat_template=None,
                                         apply_chat_template=lambda messages, **kw: messages[-1]["content"])
        gen = torch.Generator().manual_seed(0)
        self._embed = torch.randn(len(VOCAB), self.d_model, generator=gen)  # (V, d)
        self._mix = torch.randn(self.d_model, self.d_model, generator=gen) / self.d_model**0.5  # (d, d)
        # Promoted-token labels through the unembedding, as a real session computes them.
        self.labels = {role: FeatureLabels.for_sae(sae, self) for role, sae in self.saes.items()}
        # The centre of per-token fidelity, estimated on a fixed text as for an SAE that ships none.
        calibration = self.forward([0, *range(1, 60)], capture=[resid_hook(1)], keep_logits=0).resid[resid_hook(1)]
        self.forwards = 0
        self.resid_stats = {role: ResidualStats.estimate(calibration[0, 1:], "calibration text") for role in self.saes}

    def describe(self) -> str:
        return "fake · cpu float32 · layer 1"

    # ---- tokens ---------------------------------------------------------------------------------
    def tokenize(self, prompt: str, add_bos: bool = True) -> tuple[list[int], int]:
        """One token per space-separated word (a hash into VOCAB), cut from the front to fit."""
        if not isinstance(prompt, str) or prompt == "":
            raise PromptError("The prompt is empty: type something to run the model on.")
        ids = [1 + sum(map(ord, w)) % (len(VOCAB) - 1) for w in prompt.split(" ")]
        head = [0] if add_bos else []
        dropped = max(0, len(head) + len(ids) - self.max_prompt_tokens)
        return head + ids[dropped:], dropped

    def piece(self, token_id: int) -> str:
        return VOCAB[int(token_id)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[int(i)] for i in ids)

    special_ids = frozenset({0})  # <bos>; a test marks any other id special to see it shown as a marker

    def is_special(self, token_id: int) -> bool:
        return int(token_id) in self.special_ids

    # ---- SAEs -----------------------------------------------------------------------------------
    def sae(self, role: str) -> Any:
        if role not in self.saes:
            raise KeyError(f"No {role} SAE in this session ({self.sae_errors.get(role, 'not loaded')}).")
        return self.saes[role]

    def sae_hook(self, role: str) -> str:
        return self.sae(role).cfg.metadata.hook_name

    def decoder_directions(self, role: str, ids: Sequence[int] | None = None) -> torch.Tensor:
        w = self.sae(role).W_dec.detach()
        return w if ids is None else w[list(ids)]

    def unembedding(self) -> torch.Tensor:
        return self._embed

    def load_saes(self, specs, progress=None, dtype=None) -> None:
        """As Session.load_saes: each (role, spec) loaded and attached, or its error kept per role."""
        from spectrascope.core.engine.saes import check_compatible, load_sae

        for role, spec in specs:
            try:
                sae = load_sae(spec)
                check_compatible(sae, self.d_model)
            except Exception as exc:  # noqa: BLE001 - kept, as the real session does
                self.sae_errors[role] = f"{spec.label}: {type(exc).__name__}: {exc}"
                continue
            self.saes[role], self.sae_specs[role] = sae, spec
            self.labels[role] = FeatureLabels.for_sae(sae, self)
            self.resid_stats[role] = next(iter(self.resid_stats.values()))  # the same hook, the same centre

    @staticmethod
    def sliding_layers() -> tuple[int, ...]:
        return ()  # full attention everywhere (drift lists the sliding ones)

    def lens_logits(self, resid: torch.Tensor, vocab: slice | torch.Tensor | None = None) -> torch.Tensor:
        """The fake's output head (no norm), applied to any layer's residual (`vocab`: those tokens). # (..., V)"""
        embed = self._embed if vocab is None else self._embed[vocab]
        return (resid.float() @ embed.T) * 3

    # ---- the model ------------------------------------------------------------------------------
    def new_cache(self) -> FakeCache:
        return FakeCache()

    @staticmethod
    def crop_cache(cache: FakeCache, length: int) -> bool:
        del cache.ids[length:]
        return True

    def forward(self, ids: Sequence[int] | torch.Tensor, *, capture: Sequence[str] = (), edits: Sequence[Edit] = (),
                stop_after: str | None = None, cache: FakeCache | None = None,
                attention_mask: torch.Tensor | None = None, keep_logits: int = 1,
                cancel: threading.Event | None = None, scores: Sequence[int] = ()) -> ForwardOut:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        self.forwards += 1
        batch = torch.as_tensor(ids, dtype=torch.long)
        batch = batch[None] if batch.dim() == 1 else batch  # (B, t)
        past = torch.tensor(cache.ids if cache is not None else [], dtype=torch.long).expand(len(batch), -1)
        full = torch.cat([past, batch], dim=1)  # (B, T)
        offset = past.shape[1]
        resid, applied = {}, 0
        with torch.inference_mode():
            x = self._embed[full].cumsum(1) / torch.arange(1, full.shape[1] + 1)[:, None]  # (B, T, d) causal mean
            x = x[:, offset:]
            if "blocks.0.hook_resid_pre" in capture:
                resid["blocks.0.hook_resid_pre"] = x
            for layer in range(N_LAYERS):  # the causal mean is uniform causal attention: (B, heads 1, t, T)
                if f"blocks.{layer}.attn.hook_pattern" in capture:
                    n = full.shape[1]
                    att = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
                    resid[f"blocks.{layer}.attn.hook_pattern"] = att[offset:].expand(len(batch), 1, -1, -1)
            for layer in range(N_LAYERS):
                if layer:
                    x = x + torch.tanh(x @ self._mix)
                name = resid_hook(layer)
                here = [e for e in edits if self.sae_hook(e.role) == name]
                if here:
                    x, changed = apply_edits(x, here, self.saes, offset)
                    applied += changed
                if name in capture:
                    resid[name] = x
                if name == stop_after:
                    return ForwardOut(resid, None, None, applied)
            logits = (x[:, x.shape[1] - keep_logits:] @ self._embed.T) * 3 if keep_logits else None  # (B, n, V)
            picked = (x[:, -1] @ self._embed[list(scores)].T) * 3 if scores else None  # (B, k)
        if cache is not None:
            cache.ids.extend(batch[0].tolist())
        return ForwardOut(resid, logits, cache, applied, picked)

    def gradient(self, ids: Sequence[int], objective: LogitObjective, wrt: Sequence[str], *,
                 cancel: threading.Event | None = None) -> GradientOut:
        """As Session.gradient: the objective's gradient at each `wrt` residual, by autograd on the fake."""
        ids = list(ids)[: objective.position + 1]
        leaves = {}
        with torch.enable_grad():
            x = self._embed[torch.tensor([ids])].cumsum(1) / torch.arange(1, len(ids) + 1)[:, None]
            for layer in range(N_LAYERS):
                if layer:
                    x = x + torch.tanh(x @ self._mix)
                if resid_hook(layer) in wrt:
                    x = leaves[resid_hook(layer)] = x.detach().requires_grad_(True)
            logits = (x[0, -1] @ self._embed.T) * 3
            value = logits[objective.token] - (logits[objective.vs] if objective.vs is not None else 0)
            grads = torch.autograd.grad(value, list(leaves.values()))
        return GradientOut(float(value.detach()), {n: v.detach()[0] for n, v in leaves.items()},
                           {n: g[0] for n, g in zip(leaves, grads)}, logits.detach())

    def run(self, request: Request, cancel: threading.Event | None = None) -> Result:
        self.calls += 1
        ids, dropped = self.tokenize(request.prompt, request.add_bos)
        if self.fail_on and self.fail_on in request.prompt:
            raise RuntimeError(f"boom on {self.fail_on}")
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            time.sleep(0.005)
        layers = set(request.layers or (self.default_layer,)) | ({self.default_layer} if request.codes else set())
        hooks = [resid_hook(layer) for layer in sorted(layers)]
        out = self.forward(ids, capture=hooks, keep_logits=int(request.logits), cancel=cancel)
        resid = {h: x[0] for h, x in out.resid.items()}  # (T, d)
        return Result(
            run_id=request.run_id,
            prompt=request.prompt,
            tokens=tuple(Token(i, VOCAB[i]) for i in ids),
            resid=resid,
            logits=out.logits[0, -1] if out.logits is not None else None,  # (V,)
            truncated=dropped,
            seconds=self.delay,
            spectra=encode_all(self.saes, resid, self.resid_stats) if request.codes and self.saes else {},
            bos=int(request.add_bos and len(ids) > 1),
        )


def fake_with_saes(**kwargs: Any) -> FakeSession:
    """The fake with a coarse (TopK, 64 wide) and a fine (JumpReLU, 512 wide) random SAE at blocks.1."""
    from tests.conftest import make_tiny_sae

    saes = {
        "coarse": make_tiny_sae(8, 64, resid_hook(1), "topk", k=6, seed=3),
        "fine": make_tiny_sae(8, 512, resid_hook(1), "jumprelu", seed=4),
    }
    return FakeSession(saes=saes, **kwargs)


def block_labels(session: Any, gate: threading.Event, threads: list) -> None:
    """Make every label computation of `session` wait for `gate`, recording the thread it ran on."""
    for labels in session.labels.values():
        def blocking(features, compute=labels.compute):
            threads.append(threading.current_thread())
            assert gate.wait(30), "the test never released the labels"
            return compute(features)

        labels.compute = blocking
