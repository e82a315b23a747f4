"""The only owner of the model: one lock-guarded forward primitive, and the prompt run built on it.

Every model call in spectrascope goes through `Session.forward`: the prompt
pane, step-through and seeded generation, steering, contrast batches, feature
units, the trainer's activation cache and its ΔCE splice. What to capture and
what to change travel as plain data (`core.plan`), and the hooks that carry
them out are added to the bridge's hook points for one call and removed after
it, under one lock. transformer-lens keeps one shared hook context level on the
bridge, so two threads' hook blocks must never interleave (the exit of one
strips the other's hooks): the lock is what makes that impossible, not thread
guards.

`Session.run(Request)` is what the prompt calls from a worker thread. It keeps
the previous prompt's KV cache, residuals, SAE codes and next-token logits, and
on a keystroke runs only the tokens after the longest common prefix (causal
attention: the prefix cannot change); the same prompt again runs nothing. One
such state is kept per `Request.slot`, so the system-prompt A/B's two variants
do not evict the prompt's. The result equals a full forward within float tolerance.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from spectrascope.core.engine.edits import apply_edits
from spectrascope.core.engine.embedded import Progress, _quiet
from spectrascope.core.engine.models import DEFAULT_MODEL, LoadedModel, ModelSpec, load_model, module_device
from spectrascope.core.engine.plan import (
    AblateFeatures, AddFeature, ClampFeature, Edit, ForwardOut, GradientOut, LogitObjective, Splice)
from spectrascope.core.engine.residual_stats import ResidualStats
from spectrascope.core.engine.values import (  # noqa: F401 - the value types, re-exported for callers
    CALIBRATION_TEXT, EMPTY_PROMPT, Cancelled, PromptError, Request, Result, Token, resid_hook)

if TYPE_CHECKING:
    from spectrascope.core.engine.codes import Spectrum
    from spectrascope.core.engine.labels import FeatureLabels
    from spectrascope.core.engine.saes import SAESpec

# An added token that is a control name, not text: `<start_of_image>`, `[multimodal]`; the HTML tags
# Gemma adds as tokens (`<strong>`, `</td>`) are text and have no underscore.
_CONTROL_PIECE = re.compile(r"<\w+_\w+>|\[\w+\]")


class _StopForward(Exception):
    """Raised inside a hook once the `stop_after` hook has run."""


@dataclass
class _PromptState:
    """The last prompt a slot ran with logits: what its next keystroke can reuse."""

    ids: list[int]
    hooks: tuple[str, ...]
    cache: Any  # the KV cache after every prompt token
    resid: dict[str, torch.Tensor]  # hook -> (T, d) on the model's device
    spectra: dict[str, Spectrum]  # role -> the SAE codes of every token (CPU)
    logits: torch.Tensor  # (V,) float32 on CPU: the next token after the last position

    def covers(self, hooks: Sequence[str], roles: Sequence[str]) -> bool:
        return set(hooks) <= set(self.hooks) and set(roles) <= set(self.spectra)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Session:
    """A loaded model, its SAEs, and the one way anything runs the model."""

    def __init__(self, model: LoadedModel, max_prompt_tokens: int | None = None):
        self.model = model
        # A CPU forward over tens of thousands of tokens would freeze a demo; cap it.
        cap = model.max_tokens
        self.max_prompt_tokens = min(cap, max_prompt_tokens or 2048)
        self.saes: dict[str, Any] = {}  # role ("coarse", "fine") -> sae-lens SAE
        self.sae_specs: dict[str, SAESpec | None] = {}  # role -> the spec it came from (None if attached directly)
        self.resid_stats: dict[str, ResidualStats] = {}  # role -> the centre per-token fidelity is measured from
        self.sae_errors: dict[str, str] = {}  # role -> why it could not be loaded
        self.labels: dict[str, FeatureLabels] = {}  # role -> its features' labels
        self._lock = threading.RLock()
        self._hook_points: dict[str, Any] | None = None
        self._prompts: dict[str, _PromptState] = {}  # Request.slot -> its last prompt run with logits
        self._pieces: dict[int, str] = {}
        self._special_ids: frozenset[int] | None = None  # is_special, built on first use
        # transformers 5 names the KV cache argument `cache` (`past_key_values` is deprecated).
        params = inspect.signature(model.hf_model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # ---- SAEs ---------------------------------------------------------------------------
    def attach_sae(self, role: str, sae: Any, spec: SAESpec | None = None) -> None:
        """Use `sae` for `role`, after checking it reads this model's residual at a real layer."""
        from spectrascope.core.engine.labels import FeatureLabels, labels_folder
        from spectrascope.core.engine.saes import SAEIncompatible, check_compatible
        from spectrascope.core.engine.codes import hook_layer

        hook = sae.cfg.metadata.hook_name
        if sae.cfg.d_in != self.model.d_model:
            raise SAEIncompatible(
                f"The {role} SAE expects d_in={sae.cfg.d_in} but {self.model.spec.name}'s residual width is "
                f"{self.model.d_model}: it was trained on another model (SAE model: "
                f"{getattr(sae.cfg.metadata, 'model_name', None) or 'unknown'}).")
        check_compatible(sae, self.model.d_model, hook)
        if hook is None or not 0 <= hook_layer(hook) < self.model.n_layers:
            raise SAEIncompatible(
                f"SAE hook {hook!r} is not a layer of {self.model.spec.name} (0..{self.model.n_layers - 1})."
            )
        device = self.hook_device(hook)
        if sae.W_enc.device != device:  # a dispatched model: the SAE sits with its layer
            sae = sae.to(device)
        stats = self._calibration_stats(hook, sae, ResidualStats.load(labels_folder(spec)))
        with self._lock:
            self.saes[role] = sae
            self.sae_specs[role] = spec
            self.sae_errors.pop(role, None)
            self.resid_stats[role] = stats
            self.labels[role] = FeatureLabels.for_sae(sae, self, labels_folder(spec), spec)
            self._prompts.clear()  # cached codes belong to the previous SAEs

    def _calibration_stats(self, hook: str, sae: Any, shipped: ResidualStats | None) -> ResidualStats:
        """Residual statistics at `hook`: the shipped ones, and what they lack (all of it for an SAE that
        ships none; the rest spread and poor-fit percentile, core/engine/fidelity.py) from a fixed text."""
        from spectrascope.core.engine.fidelity import calibrate

        if shipped is not None and shipped.poor_below is not None and shipped.rest_centered_sq_norm is not None:
            return shipped
        ids, _ = self.tokenize(CALIBRATION_TEXT)
        resid = self.forward(ids, capture=[hook], stop_after=hook, keep_logits=0).resid[hook][0, 1:]  # BOS left out
        where = f"calibration text ({resid.shape[0]} tokens)"
        return calibrate(sae, resid.float().cpu(), shipped or ResidualStats.estimate(resid.float().cpu(), where),
                         "the calibration text")

    def detach_sae(self, role: str) -> None:
        with self._lock:
            for table in (self.saes, self.sae_specs, self.labels, self.resid_stats):
                table.pop(role, None)
            self._prompts.clear()

    def load_saes(self, specs: Sequence[tuple[str, str | SAESpec]] | None = None, progress: Progress = _quiet,
                  dtype: str | None = None) -> None:
        """Load (role, SAE preset or spec) pairs; failures are kept per role, not raised.

        SAEs come in the model's dtype unless `dtype` says otherwise ("auto" = the model's): a
        bf16 Gemma Scope 262K is half the memory of an fp32 one, and its codes are computed
        on residuals of that precision anyway."""
        from spectrascope.core.engine.saes import get_preset, load_sae

        dtype = self.model.dtype if dtype in (None, "auto") else dtype
        # A dispatched model's SAE is read on the CPU: `attach_sae` moves it to its hook's device,
        # which is not known before a sae-lens release is read.
        device = "cpu" if self.model.device_map else self.model.device
        for role, spec in (self.model.spec.saes if specs is None else specs):
            progress(f"loading the {role} SAE ({spec if isinstance(spec, str) else spec.label}, {dtype})", None)
            try:
                spec = get_preset(spec) if isinstance(spec, str) else spec
                self.attach_sae(role, load_sae(spec, device=device, dtype=dtype), spec)
            except Exception as exc:  # noqa: BLE001 - the model is still usable without it
                label = spec if isinstance(spec, str) else spec.label
                self.sae_errors[role] = f"{label}: {type(exc).__name__}: {exc}"

    def sae(self, role: str) -> Any:
        """The SAE attached for `role`; KeyError with the reason when there is none."""
        if role not in self.saes:
            why = self.sae_errors.get(role, "not loaded")
            raise KeyError(f"No {role} SAE in this session ({why}).")
        return self.saes[role]

    def sae_hook(self, role: str) -> str:
        return self.sae(role).cfg.metadata.hook_name

    def sae_layers(self) -> tuple[int, ...]:
        from spectrascope.core.engine.codes import hook_layer

        return tuple(hook_layer(sae.cfg.metadata.hook_name) for sae in self.saes.values())

    def decoder_directions(self, role: str, ids: Sequence[int] | None = None) -> torch.Tensor:
        """Rows of the role's W_dec (all, or `ids`), detached, on the SAE's device. # (n, d)"""
        w = self.sae(role).W_dec.detach()
        return w if ids is None else w[list(ids)]

    # ---- model facts ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_spec: str | ModelSpec = DEFAULT_MODEL,
        device: str | None = None,
        dtype: str | None = None,
        progress: Progress = _quiet,
        saes: Sequence[tuple[str, str | SAESpec]] | None = None,
        sae_dtype: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        max_memory: dict[int | str, str] | None = None,
    ) -> "Session":
        """Load a model and its SAEs (`saes`: (role, preset) pairs; None = the model's defaults),
        the SAEs in `sae_dtype` (None: the model's dtype); `device_map`/`max_memory` spread the
        model over the box's devices (see `load_model`)."""
        session = cls(load_model(name_or_spec, device=device, dtype=dtype, progress=progress,
                                 device_map=device_map, max_memory=max_memory))
        session.load_saes(saes, progress, sae_dtype)
        return session

    def describe(self) -> str:
        m = self.model
        saes = " · ".join(f"{role} {sae.cfg.d_sae:,}" for role, sae in self.saes.items())
        return f"{m.spec.name} · {m.device} {m.dtype} · layer {self.default_layer}" + (f" · {saes}" if saes else "")

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def device(self) -> str:
        """Where token ids go (the input embeddings'); a dispatched model's layers may sit elsewhere."""
        return self.model.device

    def hook_device(self, hook: str) -> torch.device:
        """The device of the residual at `hook` (blocks.N.…): block N's, where its SAE belongs."""
        from spectrascope.core.engine.codes import hook_layer

        return self.model.block_device(hook_layer(hook))

    @property
    def default_layer(self) -> int:
        return self.model.default_layer

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    def unembedding(self) -> torch.Tensor:
        """The (V, d) unembedding matrix, detached, in the model's dtype (never copied here)."""
        return self.model.hf_model.get_output_embeddings().weight.detach()

    def sliding_layers(self) -> tuple[int, ...]:
        """Layers whose attention sees only a recent window (Gemma 2 and 3 alternate them)."""
        kinds = getattr(self.model.hf_model.config, "layer_types", None) or ()
        return tuple(i for i, kind in enumerate(kinds) if kind == "sliding_attention")

    def lens_logits(self, resid: torch.Tensor, vocab: slice | torch.Tensor | None = None) -> torch.Tensor:
        """The logit lens of residuals (..., d): the model's final norm, unembedding and (Gemma 2)
        final softcap, as if the stream ended there. Float32, on the CPU. # (..., V)

        vocab: only these tokens' logits (a slice or ids, in that order): a chunk of the vocabulary
        reads a chunk of the unembedding. # (..., len(vocab))"""
        hf = self.model.hf_model
        with self._lock, torch.inference_mode():
            # A dispatched model may keep the final norm (last layer's device) and the unembedding (tied to
            # the embeddings) on different devices.
            norm, head, device = hf.model.norm, hf.get_output_embeddings(), self.model.head_device
            x = resid.to(device=module_device(norm), dtype=getattr(torch, self.model.dtype))
            normed = norm(x).to(device)
            if vocab is None:
                logits = head(normed).float()
            else:
                vocab = vocab.to(device) if isinstance(vocab, torch.Tensor) else vocab
                bias = head.bias[vocab] if getattr(head, "bias", None) is not None else None
                logits = torch.nn.functional.linear(normed, head.weight[vocab], bias).float()
            return self._softcap(logits).cpu()

    def new_cache(self) -> Any:
        """An empty KV cache for `forward(..., cache=...)`, which `crop_cache` can cut back exactly."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.hf_model.config)
        # Sliding-window layers drop keys older than their window; recording them lets a keystroke
        # in the middle of a long prompt, or a step back, roll the cache back exactly.
        for layer in getattr(cache, "layers", ()):
            if hasattr(layer, "activate_past_recording"):
                layer.activate_past_recording()
        return cache

    @staticmethod
    def crop_cache(cache: Any, length: int) -> bool:
        """Cut `cache` back to its first `length` positions, in place; False where that is not exact."""
        layers = [layer for layer in getattr(cache, "layers", None) or () if getattr(layer, "is_initialized", False)]
        if not layers or not all(hasattr(layer, "keys") for layer in layers):
            return False
        for layer in layers:
            forgot = getattr(layer, "is_sliding", False) and not getattr(layer, "record_past", False)
            if forgot and layer.get_seq_length() >= layer.sliding_window:
                return False
        for layer in layers:
            layer.keys, layer.values = layer.keys[..., :length, :], layer.values[..., :length, :]
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = length
        return True

    def piece(self, token_id: int) -> str:
        token_id = int(token_id)
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.tokenizer.decode([token_id])
        return text

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def is_special(self, token_id: int) -> bool:
        """A control token, not text: the tokenizer's special ids plus its added `<...>`/`[...]` tokens
        (Gemma 3 leaves `<start_of_image>` unflagged), so a sampled one can be shown as a marker."""
        if self._special_ids is None:
            tok = self.tokenizer
            added = getattr(tok, "added_tokens_decoder", {}) or {}
            self._special_ids = frozenset(getattr(tok, "all_special_ids", ())) | {
                i for i, t in added.items() if t.special or _CONTROL_PIECE.fullmatch(str(t.content))}
        return int(token_id) in self._special_ids

    def tokenize(self, prompt: str, add_bos: bool = True) -> tuple[list[int], int]:
        """Token ids for `prompt`, cut to the context window; returns (ids, n_dropped)."""
        if not isinstance(prompt, str):
            raise PromptError(f"The prompt must be text, not {type(prompt).__name__}.")
        if prompt == "":
            raise PromptError(EMPTY_PROMPT)
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

    # ---- the forward primitive -------------------------------------------------------------
    def forward(
        self,
        ids: Sequence[int] | torch.Tensor,
        *,
        capture: Sequence[str] = (),
        edits: Sequence[Edit] = (),
        stop_after: str | None = None,
        cache: Any = None,
        attention_mask: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
        position_ids: torch.Tensor | None = None,
        keep_logits: int = 1,
        cancel: threading.Event | None = None,
        scores: Sequence[int] = (),
    ) -> ForwardOut:
        """Run `ids` ((T,) list or (B, T) tensor) through the model, serialised with every other call.

        capture: hook names whose (B, T, d) output to return (after this call's edits there).
        edits: `core.plan` edits, applied at their SAE's hook on positions >= from_position
            (absolute: a cached call's first token is at position cache length).
        stop_after: a hook name; the forward ends right after it (no logits, no cache).
        cache: a KV cache (`new_cache()`), extended in place; None runs without one.
        attention_mask / position_ids: (B, T) padding mask, or one additive mask per layer type with each
            token's position (`core.engine.kv_batch`: several prompts' tokens packed in one sequence).
        keep_logits: logits of the last n positions (0: none, the unembedding is skipped).
        cancel: checked before each block; raises `Cancelled`.
        scores: token ids whose logits after the last position come back in float32 (`ForwardOut.scores`,
            (B, k)): a bf16 model's own logits are rounded to 1/8 near 20, too coarse for the small
            changes an ablation makes.
        """
        if cancel is not None and cancel.is_set():
            raise Cancelled
        input_ids = torch.as_tensor(ids, dtype=torch.long)
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        input_ids = input_ids.to(self.model.device)  # (B, T)
        if isinstance(attention_mask, Mapping):
            attention_mask = {kind: mask.to(self.model.device) for kind, mask in attention_mask.items()}
        elif attention_mask is not None:
            attention_mask = attention_mask.to(self.model.device)
        with self._lock:
            offset = cache.get_seq_length() if cache is not None else 0
            captured: dict[str, torch.Tensor] = {}
            applied = [0]
            hooks = self._edit_hooks(edits, offset, applied)
            for name in dict.fromkeys([*capture, *([_FINAL] if scores else [])]):
                hooks.append((name, _capture_into(captured, name)))
            if stop_after is not None:
                hooks.append((stop_after, _stop))
            if cancel is not None:
                hooks += [(f"blocks.{i}.hook_in", _cancel_check(cancel)) for i in range(self.model.n_layers)]
            hf = self.model.hf_model
            logits, new_cache = None, None
            # Grad mode is thread-local: the calling worker thread enters inference mode here.
            with torch.inference_mode(), self._hooks(hooks):
                try:
                    kw = {"attention_mask": attention_mask, "use_cache": cache is not None}
                    if position_ids is not None:
                        kw["position_ids"] = position_ids.to(self.model.device)
                    if cache is not None:
                        kw[self._cache_kw] = cache
                    out = hf.get_decoder()(input_ids=input_ids, **kw)
                    if keep_logits > 0:  # else no 262K-row unembedding at all
                        logits = self._head(out.last_hidden_state[:, -keep_logits:])  # (B, n, V)
                    new_cache = out.past_key_values if cache is not None else None
                except _StopForward:
                    pass
            if cancel is not None and cancel.is_set():
                raise Cancelled
            token_scores = None
            if scores and _FINAL in captured:
                with torch.inference_mode():
                    token_scores = self._token_logits(captured[_FINAL][:, -1], scores)
                if _FINAL not in capture:
                    del captured[_FINAL]
            return ForwardOut(captured, logits, new_cache, applied[0], token_scores)

    def _token_logits(self, normed: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        """Float32 logits of `tokens` from final-norm outputs (B, d): the head's rows and the final
        softcap, in float32 whatever the model's dtype. # (B, k)"""
        head = self.model.hf_model.get_output_embeddings()
        ids = torch.as_tensor(list(tokens), dtype=torch.long, device=head.weight.device)
        out = normed.to(head.weight.device).float() @ head.weight[ids].float().T
        if getattr(head, "bias", None) is not None:
            out = out + head.bias[ids].float()
        return self._softcap(out)

    def gradient(
        self,
        ids: Sequence[int],
        objective: LogitObjective,
        wrt: Sequence[str],
        *,
        cancel: threading.Event | None = None,
    ) -> GradientOut:
        """The gradient of `objective` with respect to the residual at each hook of `wrt`, in one
        forward and one backward over the prompt up to the objective's position.

        Each `wrt` residual becomes a leaf of the graph where its hook runs, so nothing before the
        first one is recorded and the backward starts from the logits and stops there. The model's
        weights never need a gradient (they are frozen at load); the SAEs are not in the graph at all:
        a feature's linear effect is its code times its decoder row dotted with this gradient, read
        only for the active latents (core/analysis/attribution.py)."""
        ids = list(ids)
        if not 0 <= objective.position < len(ids):
            raise PromptError(f"Position {objective.position} is outside the prompt (0..{len(ids) - 1}).")
        vocab = self.model.hf_model.config.vocab_size
        for token in (objective.token, objective.vs):
            if token is not None and not 0 <= token < vocab:
                raise PromptError(f"Token id {token} is outside the vocabulary (0..{vocab - 1}).")
        if cancel is not None and cancel.is_set():
            raise Cancelled
        input_ids = torch.as_tensor([ids[: objective.position + 1]], dtype=torch.long).to(self.model.device)
        with self._lock:
            leaves: dict[str, torch.Tensor] = {}
            final: dict[str, torch.Tensor] = {}
            hooks = [(name, _leaf_into(leaves, name)) for name in dict.fromkeys(wrt)]
            hooks.append((_FINAL, _keep_into(final)))
            if cancel is not None:
                hooks += [(f"blocks.{i}.hook_in", _cancel_check(cancel)) for i in range(self.model.n_layers)]
            hf = self.model.hf_model
            with torch.enable_grad(), self._hooks(hooks):
                hf.get_decoder()(input_ids=input_ids, use_cache=False)
                normed = final[_FINAL][:, -1]  # (1, d), in the graph
                tokens = [objective.token] + ([objective.vs] if objective.vs is not None else [])
                picked = self._token_logits(normed, tokens)[0]  # float32: see `forward`'s `scores`
                value = picked[0] - (picked[1] if objective.vs is not None else 0)
                names = list(leaves)
                grads = torch.autograd.grad(value, [leaves[n] for n in names], allow_unused=True)
            return GradientOut(
                value=float(value.detach()),
                resid={n: leaves[n].detach()[0].float().cpu() for n in names},
                grad={n: (torch.zeros_like(leaves[n]) if g is None else g)[0].float().cpu()
                      for n, g in zip(names, grads)},
                logits=self.lens_head(normed.detach())[0],
            )

    def lens_head(self, normed: torch.Tensor) -> torch.Tensor:
        """Every token's logit from final-norm outputs (B, d), as the model computes it. # (B, V) float32, CPU"""
        with self._lock, torch.inference_mode():
            return self._head(normed).cpu()

    def _head(self, normed: torch.Tensor) -> torch.Tensor:
        """The unembedding and (Gemma 2) final softcap of final-norm outputs (..., d), as the causal LM head
        computes them, in float32. The rows are made one contiguous 2-D matrix first: a strided 3-D slice
        (B > 1, the last positions) sends torch's linear to a batched matmul that copies the whole
        262K-row weight once per row (measured: 12 s for 20 rows of Gemma 3 270M on CPU, 0.2 s this way). # (..., V)"""
        head = self.model.hf_model.get_output_embeddings()
        flat = normed.reshape(-1, normed.shape[-1]).to(head.weight.device, head.weight.dtype).contiguous()
        return self._softcap(head(flat).float().reshape(*normed.shape[:-1], -1))

    def _softcap(self, logits: torch.Tensor) -> torch.Tensor:
        """Gemma 2's final logit softcap (cap · tanh(logits / cap)); other models' logits unchanged."""
        cap = self.model.final_logit_softcap
        return torch.tanh(logits / cap) * cap if cap else logits

    @contextmanager
    def _hooks(self, hooks: Sequence[tuple[str, Any]]):
        """Add `hooks` for one forward and always remove them. The bridge's own `hooks()` walks
        every module to rebuild its hook map on each call (measured: 52 ms a call on Gemma 3
        270M, a third of a decode step), so the map is resolved once; the lock makes our
        context level exclusive."""
        if self._hook_points is None:
            from transformer_lens.model_bridge.bridge import build_alias_to_canonical_map

            points = dict(self.model.bridge.hook_dict)
            aliases = build_alias_to_canonical_map(points)
            self._hook_points = {**points, **{a: points[c] for a, c in aliases.items() if c in points}}
        added = []
        try:
            for name, fn in hooks:
                point = self._hook_points.get(name)
                if point is None:
                    raise ValueError(f"{name!r} is not a hook point of {self.model.spec.name}.")
                point.add_hook(fn, dir="fwd", level=_HOOK_LEVEL)
                added.append(point)
            yield
        finally:
            for point in added:
                point.remove_hooks(dir="fwd", level=_HOOK_LEVEL)

    def _edit_hooks(self, edits: Sequence[Edit], offset: int, applied: list[int]) -> list[tuple[str, Any]]:
        by_hook: dict[str, list[Edit]] = {}
        for edit in edits:
            if not isinstance(edit, (AddFeature, ClampFeature, Splice, AblateFeatures)):
                raise TypeError(f"Not an edit: {edit!r}")
            by_hook.setdefault(self.sae_hook(edit.role), []).append(edit)
        return [(hook, self._edit_fn(group, offset, applied)) for hook, group in by_hook.items()]

    def _edit_fn(self, edits: list[Edit], offset: int, applied: list[int]):
        saes = self.saes

        def edit(x: torch.Tensor, hook: Any) -> torch.Tensor:
            x, changed = apply_edits(x, edits, saes, offset)
            applied[0] += changed
            return x

        return edit

    # ---- the prompt ---------------------------------------------------------------------------
    def run(self, request: Request, cancel: threading.Event | None = None) -> Result:
        """One prompt through the model, reusing the previous prompt's unchanged prefix.

        Raises `Cancelled` if `cancel` is set before it finishes.
        """
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
        hooks = tuple(resid_hook(layer) for layer in sorted(set(layers)))
        roles = tuple(self.saes) if request.codes else ()
        if request.logits:
            rows = [(ids, hooks, roles, request.slot)]
            for companion in request.companions:  # run in the same forward, kept in their own slots
                companion_ids = self.tokenize(companion.prompt, companion.add_bos)[0]
                if companion_ids != ids:
                    rows.append((companion_ids, (), (), companion.slot))
            resid, logits, spectra, reused = self._run_incremental(rows, cancel)[0]
        else:
            out = self.forward(ids, capture=hooks, stop_after=hooks[-1], keep_logits=0, cancel=cancel)
            resid, logits, reused = {h: x[0] for h, x in out.resid.items()}, None, 0
            spectra = self._encode(roles, resid)
        return Result(
            run_id=request.run_id,
            prompt=request.prompt,
            tokens=tuple(Token(i, self.piece(i)) for i in ids),
            resid={name: x.float().cpu() for name, x in resid.items()},
            logits=logits,
            truncated=dropped,
            seconds=time.perf_counter() - t0,
            spectra=spectra,
            reused=reused,
            bos=int(request.add_bos and self.tokenizer.bos_token_id is not None and len(ids) > 1),
        )

    def _encode(self, roles: Sequence[str], resid: Mapping[str, torch.Tensor]) -> dict[str, Spectrum]:
        from spectrascope.core.engine.codes import encode_all

        return encode_all({role: self.saes[role] for role in roles}, resid, self.resid_stats)

    def _cached(self, ids: list[int], hooks: tuple[str, ...], roles: Sequence[str], slot: str) -> _PromptState | None:
        """A state whose prompt is exactly `ids` and that holds what is asked: the slot's own, else any
        other slot's (a base model's A/B "without" text is the prompt itself)."""
        states = [self._prompts.get(slot), *(state for name, state in self._prompts.items() if name != slot)]
        return next((s for s in states if s is not None and s.ids == ids and s.covers(hooks, roles)), None)

    def _reusable_prefix(self, ids: list[int], hooks: tuple[str, ...], roles: Sequence[str], slot: str) -> int:
        """How many leading tokens of `ids` the slot's cached prompt state can stand for (0: none)."""
        state = self._prompts.get(slot)
        if state is None or not state.covers(hooks, roles):
            return 0
        # The last token is run again: its logits are the answer, and a shorter prompt's were not kept.
        return min(common_prefix(state.ids, ids), len(ids) - 1)

    def _run_incremental(
        self, rows: Sequence[tuple[list[int], tuple[str, ...], Sequence[str], str]], cancel: threading.Event | None,
    ) -> list[tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Spectrum], int]]:
        """Each row (ids, hooks, roles, slot) from its slot's cached prefix: (resid, logits, spectra,
        reused) per row. Rows with something to run share one forward (`_extend`)."""
        from spectrascope.core.engine.codes import join_spectra

        with self._lock:
            answers: list[Any] = [None] * len(rows)
            todo = []  # (row index, reusable prefix, the slot's previous state)
            for i, (ids, hooks, roles, slot) in enumerate(rows):
                hit = self._cached(ids, hooks, roles, slot)
                if hit is not None:  # nothing to run; `reused` counts as for a rerun of the last token
                    answers[i] = ({h: hit.resid[h] for h in hooks}, hit.logits, {r: hit.spectra[r] for r in roles},
                                  len(ids) - 1)
                    continue
                # A cancel or error mid-way leaves no half state: the slot's state is taken out first.
                todo.append((i, self._reusable_prefix(ids, hooks, roles, slot), self._prompts.pop(slot, None)))
            if cancel is not None and cancel.is_set():
                raise Cancelled
            runs = self._extend([(rows[i][0], p, state) for i, p, state in todo],
                                tuple(dict.fromkeys(h for i, *_ in todo for h in rows[i][1])), cancel)
            for (i, _, state), (p, new_resid, logits, cache) in zip(todo, runs):
                ids, hooks, roles, slot = rows[i]
                resid = {h: torch.cat([state.resid[h][:p], new_resid[h]]) if p else new_resid[h] for h in hooks}
                fresh = self._encode(roles, {h: x[p:] for h, x in resid.items()})
                spectra = {r: join_spectra(state.spectra[r], p, fresh[r]) if p else fresh[r] for r in roles}
                self._prompts[slot] = _PromptState(ids, hooks, cache, resid, spectra, logits)
                answers[i] = (resid, logits, spectra, p)
            return answers

    def _row_cache(self, state: _PromptState | None, p: int) -> tuple[Any, int]:
        """A one-row cache holding the slot's first `p` tokens, and p (0 with an empty cache where
        the old one cannot be cut back exactly)."""
        from spectrascope.core.engine.kv_batch import GroupRow

        if state is None or p == 0:
            return self.new_cache(), 0
        if isinstance(state.cache, GroupRow):  # it ran in a batch: copy its row out
            return state.cache.group.row_cache(state.cache.index, p, self.new_cache), p
        return (state.cache, p) if self.crop_cache(state.cache, p) else (self.new_cache(), 0)

    def _extend(self, rows: Sequence[tuple[list[int], int, _PromptState | None]], hooks: tuple[str, ...],
                cancel: threading.Event | None) -> list[tuple[int, dict[str, torch.Tensor], torch.Tensor, Any]]:
        """Run each row (ids, reusable prefix, its slot's previous state) from its cached prefix. Several
        rows share one forward over a `RowGroup` (core/engine/kv_batch.py: their tokens packed in one
        sequence), kept between calls so a keystroke copies no cache; one row runs on its own cache. Per
        row: the prefix reused, the new positions' residuals {hook: (t, d)}, the next-token logits (V,) on
        the CPU, the new cache."""
        from spectrascope.core.engine.kv_batch import COMPACT_SHARE, GroupRow, RowGroup

        group = self._shared_group([state for _, _, state in rows])
        if group is not None and group.hole_share() <= COMPACT_SHARE:
            prefixes = [p for _, p, _ in rows]
            group.crop(prefixes)
        elif len(rows) > 1:  # a new group: each row's cache copied in once
            caches = [self._row_cache(state, p) for _, p, state in rows]
            prefixes = [p for _, p in caches]
            group = RowGroup.merge(caches)
            if group is None:  # a cache that cannot be packed: one forward per row
                return [self._extend_one(ids, cache, p, hooks, cancel) for (ids, _, _), (cache, p) in zip(rows, caches)]
        else:
            return [self._extend_one(ids, *self._row_cache(state, p), hooks, cancel) for ids, p, state in rows]
        config = self.model.hf_model.config
        news = [ids[p:] for (ids, _, _), p in zip(rows, prefixes)]
        input_ids, positions, masks, spans = group.inputs(
            news, getattr(config, "layer_types", None) or ["full_attention"],
            getattr(config, "sliding_window", None), self.model.hf_model.dtype)
        out = self.forward(input_ids, capture=(*hooks, _FINAL), cache=group.cache, attention_mask=masks,
                           position_ids=positions, keep_logits=0, cancel=cancel)
        group.appended()
        with torch.inference_mode():  # each row's next token: the head on its last position only
            logits = self._head(out.resid[_FINAL][0, [span.stop - 1 for span in spans]]).cpu()
        return [(p, {h: out.resid[h][0, span] for h in hooks}, logits[i], GroupRow(group, i))
                for i, (span, p) in enumerate(zip(spans, prefixes))]

    def _extend_one(self, ids: list[int], cache: Any, p: int, hooks: tuple[str, ...],
                    cancel: threading.Event | None) -> tuple[int, dict[str, torch.Tensor], torch.Tensor, Any]:
        out = self.forward(ids[p:], capture=hooks, cache=cache, keep_logits=1, cancel=cancel)
        return p, {h: out.resid[h][0] for h in hooks}, out.logits[0, -1].cpu(), out.cache

    @staticmethod
    def _shared_group(states: Sequence[_PromptState | None]) -> Any:
        """The `RowGroup` these slots' states are, in order, the rows of (None if they are not)."""
        from spectrascope.core.engine.kv_batch import GroupRow

        caches = [getattr(state, "cache", None) for state in states]
        if len(caches) < 2 or not all(isinstance(c, GroupRow) for c in caches):
            return None
        group = caches[0].group
        same = all(c.group is group and c.index == i for i, c in enumerate(caches))
        return group if same and group.size == len(caches) else None

    def forget_prompt(self) -> None:
        """Drop every slot's cached prompt state (the next run is a full forward)."""
        with self._lock:
            self._prompts.clear()


_FINAL = "ln_final.hook_out"  # the final norm's output: what the unembedding reads
_HOOK_LEVEL = 1_000_003  # the context level of the session's hooks on the bridge's hook points


def _capture_into(captured: dict[str, torch.Tensor], name: str):
    # Hook points report under their canonical name (blocks.L.hook_out): close over the asked one.
    def capture(x: torch.Tensor, hook: Any) -> torch.Tensor:
        captured[name] = x.detach()
        return x

    return capture


def _keep_into(kept: dict[str, torch.Tensor]):
    # Kept in the graph (not detached): the objective is computed from it.
    def keep(x: torch.Tensor, hook: Any) -> torch.Tensor:
        kept[_FINAL] = x
        return x

    return keep


def _leaf_into(leaves: dict[str, torch.Tensor], name: str):
    # The residual from here on is a fresh leaf: the backward stops at it.
    def leaf(x: torch.Tensor, hook: Any) -> torch.Tensor:
        leaves[name] = x.detach().requires_grad_(True)
        return leaves[name]

    return leaf


def _stop(x: torch.Tensor, hook: Any) -> torch.Tensor:
    raise _StopForward


def _cancel_check(cancel: threading.Event):
    def check(x: torch.Tensor, hook: Any) -> torch.Tensor:
        if cancel.is_set():
            raise Cancelled
        return x

    return check
