"""Drift: how a system prompt's effect fades as neutral conversation piles up before the question.

For N = 0, 1, 2, 4, ... turns of filler (assets/prompts/filler_turns.txt) between a fixed system
prompt and a fixed final question, measured at the question's last token:

  * KL(with system || without system) of the next-token distribution (T = 1, no knobs);
  * the share of attention from that token to the system prompt's tokens (BOS, the attention
    sink, left out), per layer and averaged over layers and heads;
  * the probability and rank of a target token the system prompt promotes (by default the one
    whose log-probability it raises most at N = 0, among the with-system top 50);
  * the last-token activation of the features the system prompt switches on or up most at N = 0
    (core/anchoring.py), with the system prompt;
and the same with the system prompt restated just before the question (the usual mitigation).
Prompts are plain text (a base model's view); `halving_turns` is the first N where KL falls
to half its N = 0 value.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from spectrascope.core.assets import PROMPTS_DIR
from spectrascope.core.records import Record

FILLER = PROMPTS_DIR / "filler_turns.txt"


def load_turns(path: str | Path = FILLER) -> list[str]:
    """Turns of a conversation file: blocks of consecutive lines, each starting at a "User:" line."""
    turns: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.startswith("User:") or not turns:
            turns.append(line)
        else:
            turns[-1] += "\n" + line
    if not turns:
        raise ValueError(f"No conversation turns in {path}.")
    return turns


@dataclass(frozen=True)
class DriftPoint(Record):
    turns: int
    tokens: int  # prompt length with the system prompt
    kl: float  # KL(with || without), nats
    attention_share: float  # mean over layers and heads
    attention_by_layer: tuple[float, ...]
    target_prob: float
    target_rank: int
    feature_acts: tuple[float, ...]  # the tracked features, at the last token, with the system prompt


@dataclass(frozen=True)
class DriftReport(Record):  # from_dict: the disk cache and a session file read it back, a bad field named
    system: str
    question: str
    target: tuple[int, str]
    features: tuple[tuple[str, int], ...]
    sliding_layers: tuple[int, ...]  # layers whose attention only sees a recent window
    points: tuple[DriftPoint, ...]
    restated: tuple[DriftPoint, ...]  # the system prompt repeated just before the question
    halving_turns: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def turn_counts(max_turns: int) -> list[int]:
    out, n = [0], 1
    while n <= max_turns:
        out.append(n)
        n *= 2
    return out


def _compose(system: str, filler: Sequence[str], question: str, restate: bool) -> str:
    parts = ([system] if system else []) + list(filler) + ([system] if restate and system else []) + [question]
    return "\n\n".join(parts)


def _measure(session: Any, system: str, question: str, filler: Sequence[str], restate: bool, target: int,
             features: Sequence[tuple[str, int]], n_layers: int) -> tuple[DriftPoint, torch.Tensor, torch.Tensor]:
    ids_with = session.tokenize(_compose(system, filler, question, restate))[0]
    ids_without = session.tokenize(_compose("", filler, question, False))[0]
    n_sys = len(session.tokenize(system)[0])  # BOS + the system tokens at the start
    patterns = [f"blocks.{i}.attn.hook_pattern" for i in range(n_layers)]
    hooks = sorted({session.sae_hook(role) for role, _ in features}) if features else []
    out = session.forward(ids_with, capture=patterns + hooks, keep_logits=1)
    logp_with = torch.log_softmax(out.logits[0, -1].float().cpu(), -1)
    logp_without = torch.log_softmax(session.forward(ids_without, keep_logits=1).logits[0, -1].float().cpu(), -1)
    kl = float((logp_with.exp() * (logp_with - logp_without)).sum())
    by_layer = []
    for name in patterns:
        att = out.resid[name][0, :, -1].float().cpu()  # (heads, T): from the last token
        by_layer.append(float(att[:, 1:n_sys].sum(-1).mean()))  # BOS (position 0) left out
    acts = []
    for role, f in features:
        sae = session.sae(role)
        x = out.resid[session.sae_hook(role)][0, -1:].to(sae.W_enc.dtype)
        with torch.inference_mode():
            acts.append(float(sae.encode(x)[0, f]))
    rank = int((logp_with > logp_with[target]).sum()) + 1
    point = DriftPoint(len(filler), len(ids_with), kl, sum(by_layer) / len(by_layer), tuple(by_layer),
                       float(logp_with[target].exp()), rank, tuple(acts))
    return point, logp_with, logp_with - logp_without


def drift_experiment(
    session: Any, system: str, question: str, filler: Sequence[str] | None = None, max_turns: int = 16,
    target: int | None = None, n_features: int = 3, cancel: threading.Event | None = None,
    progress: Callable[[str, float | None], None] | None = None,
) -> DriftReport:
    from spectrascope.core.engine.session import Cancelled, PromptError

    if not system.strip() or not question.strip():
        raise PromptError("Both the system prompt and the question are needed.")
    filler = list(filler if filler is not None else load_turns())
    counts = [n for n in turn_counts(max_turns) if n <= len(filler)]
    n_layers = session.model.n_layers
    features: list[tuple[str, int]] = []
    if session.saes:  # the anchoring view's strongest on/up features at N = 0
        from spectrascope.core.analysis.anchoring import anchor_report

        rep = anchor_report(session, question, system, top=20)
        rows = [r for rows in rep.features.values() for r in rows if r.kind in ("on", "up")]
        features = [(r.role, r.feature) for r in sorted(rows, key=lambda r: -r.delta)[:n_features]]
    if target is None:  # what the system prompt raises most at N = 0, among tokens it makes likely
        _, logp, shift = _measure(session, system, question, [], False, 0, features, n_layers)
        top = logp.topk(50).indices
        target = int(top[shift[top].argmax()])
    points, restated = [], []
    for i, n in enumerate(counts):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        if progress is not None:
            progress(f"{n} turns", i / len(counts))
        points.append(_measure(session, system, question, filler[:n], False, target, features, n_layers)[0])
        restated.append(_measure(session, system, question, filler[:n], True, target, features, n_layers)[0])
    half = next((p.turns for p in points[1:] if p.kl <= points[0].kl / 2), None)
    return DriftReport(system, question, (target, session.piece(target)), tuple(features), session.sliding_layers(),
                       tuple(points), tuple(restated), half)


# ---------------------------------------------------------------- cache (like the contrast's)

CACHE_FORMAT = 1


def cache_path(session: Any, system: str, question: str, filler: Sequence[str], max_turns: int,
               target: int | None, n_features: int) -> Path:
    """One JSON file per model x SAE weights x system x question x filler x settings."""
    import hashlib
    import json

    from spectrascope.core.analysis.contrast import session_identity
    from spectrascope.core.engine.embedded import cache_root

    blob = json.dumps({"format": CACHE_FORMAT, "identity": session_identity(session, list(session.saes)),
                       "system": system, "question": question, "filler": list(filler), "max_turns": max_turns,
                       "target": target, "n_features": n_features}, sort_keys=True)
    return cache_root() / "drift" / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def cached_drift(session: Any, system: str, question: str, filler: Sequence[str] | None = None, max_turns: int = 16,
                 target: int | None = None, n_features: int = 3, cancel: threading.Event | None = None,
                 progress: Callable[[str, float | None], None] | None = None) -> tuple[DriftReport, bool]:
    """`drift_experiment`, read from the cache when this exact run was done before; (report, was_cached)."""
    import json

    from spectrascope.core.assets import atomic_write

    filler = list(filler if filler is not None else load_turns())
    path = cache_path(session, system, question, filler, max_turns, target, n_features)
    try:
        return DriftReport.from_dict(json.loads(path.read_text(encoding="utf-8"))), True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a miss, or a damaged file: run again and rewrite it
    rep = drift_experiment(session, system, question, filler, max_turns, target, n_features, cancel, progress)
    try:
        atomic_write(path, json.dumps(rep.to_dict(), ensure_ascii=False))
    except OSError:
        pass  # a read-only cache folder must not lose the result
    return rep, False
