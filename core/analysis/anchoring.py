"""A system prompt as activation-space anchoring: which SAE features it switches on, off, up and
down on the user's tokens, and how far it moves the residual stream at the SAE layer.

The same user text runs without and with the system prompt (`generation.with_system_prompt`:
plain text for base models, the chat template for chat models). The user's tokens are the
longest common suffix of the two token sequences (the user text and, for chat models, the
template's closing tokens), so the comparison is position by position on identical tokens.
Per feature: its activation summed over those tokens and at the last token, before and after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class FeatureShift:
    role: str
    feature: int
    before: float  # summed over the shared user tokens, without the system prompt
    after: float  # the same, with it
    before_last: float  # at the last token
    after_last: float
    kind: str  # "on" (silent before), "off" (silent after), "up" or "down"
    label: str = ""

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class AnchorReport:
    user: str
    system: str
    shared_tokens: tuple[str, ...]  # the user's tokens compared (the common suffix)
    resid_shift_last: float  # |x_with - x_without| at the last token, SAE layer
    resid_norm_last: float  # |x_without| there, for scale
    cosine_last: float
    resid_shift_mean: float  # mean over the shared tokens of |x_with - x_without|
    features: dict[str, tuple[FeatureShift, ...]]  # role -> the largest |delta| first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def common_suffix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def anchor_report(session: Any, user: str, system: str, top: int = 10) -> AnchorReport:
    from spectrascope.core.engine.generation import with_system_prompt
    from spectrascope.core.engine.session import PromptError, Request

    if not system.strip():
        raise PromptError("The system prompt is empty: type one to compare against.")
    if not session.saes:
        raise ValueError("No SAE is attached: the anchoring view reads features at the SAE layer.")
    without = session.run(Request(with_system_prompt(session, "", user), logits=False))
    with_sys = session.run(Request(with_system_prompt(session, system, user), logits=False))
    ids_a, ids_b = list(without.ids), list(with_sys.ids)
    n = min(common_suffix(ids_a, ids_b), len(ids_a) - without.bos)  # never BOS
    if n == 0:
        raise PromptError("The prompt with the system text shares no final tokens with the prompt alone.")
    hook = session.sae_hook(next(iter(session.saes)))
    x_a = without.resid[hook][-n:].float()  # (n, d)
    x_b = with_sys.resid[hook][-n:].float()
    features = {}
    for role in session.saes:
        a = without.spectra[role].codes[-n:]  # (n, F)
        b = with_sys.spectra[role].codes[-n:]
        before, after = a.sum(0), b.sum(0)
        delta = (after - before).abs()
        ids = torch.topk(delta, min(top, int((delta > 0).sum()))).indices.tolist()
        labels = session.labels.get(role)
        rows = []
        for f in ids:
            kind = "on" if before[f] == 0 else "off" if after[f] == 0 else "up" if after[f] > before[f] else "down"
            label = labels.known(f) if labels is not None else None
            rows.append(FeatureShift(role, f, float(before[f]), float(after[f]), float(a[-1, f]), float(b[-1, f]), kind,
                                     label.short(4) if label is not None else ""))
        features[role] = tuple(rows)
    shift = (x_b - x_a).norm(dim=-1)  # (n,)
    cos = torch.nn.functional.cosine_similarity(x_a[-1], x_b[-1], dim=0)
    return AnchorReport(user, system, tuple(t.text for t in with_sys.tokens[-n:]), float(shift[-1]),
                        float(x_a[-1].norm()), float(cos), float(shift.mean()), features)
