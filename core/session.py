"""One forward pass per request: tokens, the residual stream at the hooks, last-position logits.

`Session.run` is what every pane calls from a worker thread. It returns a
frozen `Result` of CPU tensors, never touches the UI, and can be cancelled
between blocks through a `threading.Event`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .models import DEFAULT_MODEL, LoadedModel, ModelSpec, load_model
from .embedded import Progress, _quiet


class Cancelled(Exception):
    """The caller set the cancel event; the partial work was thrown away."""


class PromptError(ValueError):
    """The prompt cannot be run as given; the message says why."""


class _StopForward(Exception):
    """Raised inside a hook once every requested activation is captured."""


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


@dataclass(frozen=True)
class Token:
    id: int
    text: str  # the decoded piece, exactly as the model sees it (spaces included)


@dataclass(frozen=True)
class Request:
    prompt: str
    layers: tuple[int, ...] | None = None  # residual stream wanted at these layers; None = default
    logits: bool = True  # False stops after the deepest requested layer
    add_bos: bool = True
    codes: bool = True  # encode with the attached SAEs (coarse, fine) in the same pass
    run_id: int = 0


@dataclass(frozen=True)
class Result:
    run_id: int
    prompt: str
    tokens: tuple[Token, ...]
    resid: Mapping[str, torch.Tensor]  # hook name -> (T, d) float32 on CPU
    logits: torch.Tensor | None  # (V,) float32 on CPU, next token after the last position
    truncated: int = 0  # tokens dropped from the front to fit the context window
    seconds: float = 0.0
    spectra: Mapping[str, Any] = field(default_factory=dict)  # role -> core.spectrum.Spectrum

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]


class Session:
    """A loaded model and the one way the app runs it."""

    def __init__(self, model: LoadedModel, max_prompt_tokens: int | None = None):
        self.model = model
        # A CPU forward over tens of thousands of tokens would freeze a demo; cap it.
        cap = model.max_tokens
        self.max_prompt_tokens = min(cap, max_prompt_tokens or 2048)
        self.saes: dict[str, Any] = {}  # role ("coarse", "fine") -> sae-lens SAE
        self.sae_errors: dict[str, str] = {}  # role -> why it could not be loaded
        self.labels: dict[str, Any] = {}  # role -> core.labels.FeatureLabels

    def attach_sae(self, role: str, sae: Any, spec: Any = None) -> None:
        """Use `sae` for `role`, after checking it reads this model's residual at a real layer."""
        from .labels import FeatureLabels, labels_folder
        from .saes import check_compatible
        from .spectrum import hook_layer

        hook = sae.cfg.metadata.hook_name
        check_compatible(sae, self.model.d_model, hook)
        if hook is None or not 0 <= hook_layer(hook) < self.model.n_layers:
            from .saes import SAEIncompatible

            raise SAEIncompatible(
                f"SAE hook {hook!r} is not a layer of {self.model.spec.name} (0..{self.model.n_layers - 1})."
            )
        self.saes[role] = sae
        self.sae_errors.pop(role, None)
        self.labels[role] = FeatureLabels.for_sae(sae, self, labels_folder(spec), spec)

    def load_saes(self, specs: Any = None, progress: Progress = _quiet) -> None:
        """Load (role, SAE preset or spec) pairs; failures are kept per role, not raised."""
        from .saes import get_preset, load_sae

        for role, spec in (self.model.spec.saes if specs is None else specs):
            progress(f"loading the {role} SAE ({spec if isinstance(spec, str) else spec.label})", None)
            try:
                spec = get_preset(spec) if isinstance(spec, str) else spec
                self.attach_sae(role, load_sae(spec, device=self.model.device), spec)
            except Exception as exc:  # noqa: BLE001 - the model is still usable without it
                self.sae_errors[role] = f"{type(exc).__name__}: {exc}"

    def sae_layers(self) -> tuple[int, ...]:
        from .spectrum import hook_layer

        return tuple(hook_layer(sae.cfg.metadata.hook_name) for sae in self.saes.values())

    @classmethod
    def load(
        cls,
        name_or_spec: str | ModelSpec = DEFAULT_MODEL,
        device: str | None = None,
        dtype: str | None = None,
        progress: Progress = _quiet,
        saes: Any = None,
    ) -> "Session":
        """Load a model and its SAEs (`saes`: (role, preset) pairs; None = the model's defaults)."""
        session = cls(load_model(name_or_spec, device=device, dtype=dtype, progress=progress))
        session.load_saes(saes, progress)
        return session

    def describe(self) -> str:
        m = self.model
        saes = " · ".join(f"{role} {sae.cfg.d_sae:,}" for role, sae in self.saes.items())
        return f"{m.spec.name} · {m.device} {m.dtype} · layer {self.default_layer}" + (f" · {saes}" if saes else "")

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def default_layer(self) -> int:
        return self.model.default_layer

    def piece(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)])

    def tokenize(self, prompt: str, add_bos: bool = True) -> tuple[list[int], int]:
        """Token ids for `prompt`, cut to the context window; returns (ids, n_dropped)."""
        if not isinstance(prompt, str):
            raise PromptError(f"The prompt must be text, not {type(prompt).__name__}.")
        if prompt == "":
            raise PromptError("The prompt is empty: type something to run the model on.")
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if add_bos and bos is not None:
            ids = [bos] + list(ids)
        dropped = max(0, len(ids) - self.max_prompt_tokens)
        if dropped:
            # Keep the end: it is what the next-token distribution depends on.
            head = ids[:1] if add_bos and bos is not None else []
            ids = head + ids[len(head) + dropped :]
        return list(ids), dropped

    def run(self, request: Request, cancel: threading.Event | None = None) -> Result:
        """One forward pass. Raises `Cancelled` if `cancel` is set before it finishes."""
        t0 = time.perf_counter()
        ids, dropped = self.tokenize(request.prompt, request.add_bos)
        layers = request.layers if request.layers is not None else (self.default_layer,)
        if request.codes:
            layers = tuple(sorted(set(layers) | set(self.sae_layers())))
        for layer in layers:
            if not 0 <= layer < self.model.n_layers:
                raise PromptError(
                    f"Layer {layer} does not exist: {self.model.spec.name} has layers "
                    f"0..{self.model.n_layers - 1}."
                )
        resid, logits = self._forward(ids, layers, request.logits, cancel)
        spectra = {}
        if request.codes and self.saes:
            from .spectrum import encode_all

            spectra = encode_all(self.saes, resid)  # on the model's device, before the CPU copy
        resid = {name: x.float().cpu() for name, x in resid.items()}
        tokens = tuple(Token(i, self.piece(i)) for i in ids)
        return Result(
            run_id=request.run_id,
            prompt=request.prompt,
            tokens=tokens,
            resid=resid,
            logits=logits,
            truncated=dropped,
            seconds=time.perf_counter() - t0,
            spectra=spectra,
        )

    def _forward(
        self,
        ids: list[int],
        layers: tuple[int, ...],
        want_logits: bool,
        cancel: threading.Event | None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        bridge = self.model.bridge
        wanted = {resid_hook(layer) for layer in layers}
        deepest = resid_hook(max(layers))
        captured: dict[str, torch.Tensor] = {}
        # Bridge hooks live on shared modules: a forward in another thread (a pairing
        # run, a generation) fires them too. Only this thread's forward may use them.
        owner = threading.get_ident()

        def capture_as(name: str):
            # Hook points report under their canonical name (blocks.L.hook_out), so
            # each capture closes over the name the caller asked for.
            def capture(x: torch.Tensor, hook: Any) -> torch.Tensor:
                if threading.get_ident() != owner:
                    return x
                captured[name] = x[0].detach()  # (T, d), on the model's device
                if not want_logits and name == deepest:
                    raise _StopForward
                return x

            return capture

        def check_cancel(x: torch.Tensor, hook: Any) -> torch.Tensor:
            if threading.get_ident() != owner:
                return x
            if cancel is not None and cancel.is_set():
                raise Cancelled
            return x

        hooks = [(name, capture_as(name)) for name in wanted]
        if cancel is not None:
            hooks += [(f"blocks.{i}.hook_in", check_cancel) for i in range(self.model.n_layers)]
        input_ids = torch.tensor([ids], device=self.model.device)  # (1, T)
        logits = None
        # Grad mode is thread-local: the worker thread must enter inference mode itself.
        with torch.inference_mode(), bridge.hooks(fwd_hooks=hooks):
            try:
                # logits_to_keep=1: the 262K-row unembedding is the costliest matmul on CPU.
                out = bridge(input_ids, return_type="logits", logits_to_keep=1)
                logits = out[0, -1].float().cpu() if want_logits else None  # (V,)
            except _StopForward:
                pass
        if cancel is not None and cancel.is_set():
            raise Cancelled
        return captured, logits
