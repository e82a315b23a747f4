"""What the UI uses from a session, as a typed interface: `core.engine.session.Session` implements it.

The app and the panes hold a `SessionAPI`, never a `Session`: they call the
members below themselves, and hand the session to core functions (generation,
steering, pairing) that call the rest. The UI test fake (tests/tui/fake_session.py)
implements the same interface, so every pane runs its real core calls on it
without a model. No torch at import: the UI loads this before the model.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from spectrascope.core.engine.embedded import Progress
    from spectrascope.core.engine.labels import FeatureLabels
    from spectrascope.core.engine.residual_stats import ResidualStats
    from spectrascope.core.engine.models import ModelSpec
    from spectrascope.core.engine.plan import Edit, ForwardOut, GradientOut, LogitObjective
    from spectrascope.core.engine.saes import SAESpec
    from spectrascope.core.engine.values import Request, Result


class ModelFacts(Protocol):
    """Facts about the loaded model (never its weights or hooks)."""

    spec: ModelSpec  # name (saved in session files), chat (the system-prompt A/B goes through the template)
    device: str
    dtype: str
    n_layers: int
    d_model: int


class TokenizerFacts(Protocol):
    """What core reads of the tokenizer: contrast pads with pad (else BOS); the system-prompt A/B of
    a chat model goes through its template and strips the BOS the session adds anyway."""

    bos_token_id: int | None
    pad_token_id: int | None
    bos_token: str | None
    chat_template: str | None

    def apply_chat_template(self, conversation: Sequence[Mapping[str, str]], **kwargs: Any) -> str: ...


@runtime_checkable
class SessionAPI(Protocol):
    """A loaded model and its SAEs, as the UI sees them."""

    # ---- the prompt (app, Logits, Spectrum) ---------------------------------------------------
    def describe(self) -> str: ...

    @property
    def default_layer(self) -> int: ...  # the layer a prompt run captures when none is asked

    def sliding_layers(self) -> tuple[int, ...]: ...  # layers whose attention sees only a recent window

    def run(self, request: Request, cancel: threading.Event | None = None) -> Result: ...

    # ---- tokens ---------------------------------------------------------------------------------
    max_prompt_tokens: int  # generation stops at this length

    @property
    def eos_id(self) -> int | None: ...

    def tokenize(self, prompt: str, add_bos: bool = True) -> tuple[list[int], int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def piece(self, token_id: int) -> str: ...

    def is_special(self, token_id: int) -> bool: ...  # a control token (shown as a marker, not text)

    # ---- SAEs (Spectrum, Pairing, Steering) -------------------------------------------------------
    saes: Mapping[str, Any]  # role -> sae-lens SAE
    sae_specs: Mapping[str, SAESpec | None]  # role -> what it was loaded from (None: attached directly)
    labels: Mapping[str, FeatureLabels]  # role -> feature labels
    resid_stats: Mapping[str, ResidualStats]  # role -> the centre its per-token fidelity is measured from
    sae_errors: Mapping[str, str]  # role -> why it is not loaded

    def load_saes(self, specs: Sequence[tuple[str, str | SAESpec]], progress: Progress = ...,
                  dtype: str | None = None) -> None: ...  # failures land in sae_errors, per role

    def sae(self, role: str) -> Any: ...

    def sae_hook(self, role: str) -> str: ...

    def decoder_directions(self, role: str, ids: Sequence[int] | None = None) -> torch.Tensor: ...

    def unembedding(self) -> torch.Tensor: ...

    def lens_logits(self, resid: torch.Tensor, vocab: slice | torch.Tensor | None = None) -> torch.Tensor: ...

    # ---- running the model (stepping, seeded runs, steering, contrast) -----------------------------
    @property
    def device(self) -> str: ...

    def forward(
        self,
        ids: Sequence[int] | torch.Tensor,
        *,
        capture: Sequence[str] = (),
        edits: Sequence[Edit] = (),
        stop_after: str | None = None,
        cache: Any = None,
        attention_mask: torch.Tensor | None = None,
        keep_logits: int = 1,
        cancel: threading.Event | None = None,
        scores: Sequence[int] = (),
    ) -> ForwardOut: ...

    def gradient(self, ids: Sequence[int], objective: LogitObjective, wrt: Sequence[str], *,
                 cancel: threading.Event | None = None) -> GradientOut: ...  # d logit / d residual (attribution)

    def new_cache(self) -> Any: ...

    def crop_cache(self, cache: Any, length: int) -> bool: ...

    # ---- read where the session has no accessor for it yet --------------------------------------------
    # model: its name (core/views/logits.py, probe.py, anchor.py; core/analysis/navigator.py; tui/app.py;
    #        tui/commands/spectrum.py), n_layers (core/analysis/drift.py, lens.py), cache identity
    #        (core/analysis/contrast.py), is it a chat model (core/engine/generation.py), its final softcap
    #        (core/engine/labels.py, read with getattr).
    # tokenizer: pad id (core/analysis/contrast.py), chat template (core/engine/generation.py),
    #        BOS id (core/analysis/token_view.py).
    model: ModelFacts
    tokenizer: TokenizerFacts
