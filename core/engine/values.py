"""The engine's value types, without torch: what a prompt run is asked (`Request`) and returns
(`Result`), its tokens, the errors it raises, hook names. The UI imports these before the model loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import torch

    from spectrascope.core.engine.codes import Spectrum


class Cancelled(Exception):
    """The caller set the cancel event; the partial work was thrown away."""


class PromptError(ValueError):
    """The prompt cannot be run as given; the message says why."""


EMPTY_PROMPT = "The prompt is empty: type something to run the model on."


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


@dataclass(frozen=True)
class Token:
    id: int
    text: str  # the decoded piece, exactly as the model sees it (spaces included)


@dataclass(frozen=True)
class Request:
    prompt: str
    layers: tuple[int, ...] | None = None  # residual stream wanted at these layers; None = default, () = none
    logits: bool = True  # False stops after the deepest requested layer
    add_bos: bool = True
    codes: bool = True  # encode with the attached SAEs (coarse, fine) in the same pass
    run_id: int = 0
    slot: str = "prompt"  # the cached prompt state this run reuses and replaces (the system-prompt A/B has its own)
    # Texts to extend in the same forward (packed), each kept in its own slot for the next run that asks
    # (their `prompt`, `add_bos` and `slot` are read; logits only): the A/B's variants on a keystroke.
    companions: tuple["Request", ...] = ()


@dataclass(frozen=True)
class Result:
    run_id: int
    prompt: str
    tokens: tuple[Token, ...]
    resid: Mapping[str, torch.Tensor]  # hook name -> (T, d) float32 on CPU
    logits: torch.Tensor | None  # (V,) float32 on CPU, next token after the last position
    truncated: int = 0  # tokens dropped from the front to fit the context window
    seconds: float = 0.0
    spectra: Mapping[str, Spectrum] = field(default_factory=dict)  # role -> the SAE codes of every token
    reused: int = 0  # leading tokens taken from the previous prompt's cache (not recomputed), the last one not counted
    bos: int = 0  # 1 when tokens[0] is the BOS the session added (left out of "all tokens" views)

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]


# A fixed text of everyday topics: the residual statistics of an SAE that ships none, and the steering
# unit (max activation) of a feature, are measured on it.
CALIBRATION_TEXT = (
    "The history of the city goes back many centuries. Merchants came from every region to trade "
    "wine, cheese and cloth in its markets, and the river carried boats to the sea. Today the old "
    "town has museums, churches and cafes, and visitors walk along the streets in the evening. "
    "Scientists at the university study physics, chemistry and biology; their students write "
    "code in Python and read papers about language models. The weather in spring is mild, and in "
    "winter it often rains. Paris, London, Berlin and Rome are capitals of European countries."
)
