"""A linear tuned lens, measured against the logit lens (issue 16: "consider a tuned lens").

The logit lens reads layer l's residual through the final norm and unembedding as if it were the
last layer's. A tuned lens (Belrose et al. 2023) first maps it with a learned per-layer affine
translator. Here the translator is fitted in closed form: ridge least squares predicting the last
layer's residual from layer l's on cached text (non-BOS positions), x_L ~ x_l A_l + b_l; the
lens logits are then `Session.lens_logits(x_l A_l + b_l)`. The paper trains its translators on
KL to the output instead; least squares is the cheap, exact-to-reproduce variant. `compare`
scores both lenses per layer on held-out positions: KL(output || lens) in nats and top-1
agreement with the output.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from spectrascope.core.analysis.lens import layer_residuals

FORMAT = 1
RIDGE = 1e-4


def residual_stream(session: Any, rows: Sequence[Sequence[int]], cancel: threading.Event | None = None,
                    progress: Callable[[str, float | None], None] | None = None) -> torch.Tensor:
    """Every layer's residual (the lens' rows: embedding, then after each block) at every non-BOS
    position of `rows` (token id sequences that start with BOS). # (L+1, N, d) float32"""
    parts = []
    for i, ids in enumerate(rows):
        parts.append(layer_residuals(session, ids, cancel)[:, 1:])
        if progress is not None and (i % 50 == 0 or i == len(rows) - 1):
            progress(f"tuned lens: {i + 1}/{len(rows)} calibration prompts", (i + 1) / len(rows))
    return torch.cat(parts, dim=1)


def fit_translators(stream: torch.Tensor, ridge: float = RIDGE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (A, b) minimising |x_l A + b - x_L|^2 + ridge * tr(C_l)/d * |A|^2 (C_l: layer l's
    covariance, so the penalty is scale-free). The last layer gets the identity. # A (d, d), b (d,)"""
    target = stream[-1].double()
    y_mean = target.mean(0)
    out = []
    for layer in range(stream.shape[0] - 1):
        x = stream[layer].double()
        x_mean = x.mean(0)
        xc, yc = x - x_mean, target - y_mean
        gram = xc.T @ xc
        lam = ridge * torch.trace(gram) / gram.shape[0]
        A = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
        out.append((A.float(), (y_mean - x_mean @ A).float()))
    d = stream.shape[-1]
    out.append((torch.eye(d), torch.zeros(d)))
    return out


@dataclass(frozen=True)
class TunedLens:
    """Fitted translators, one per lens row (embedding, then each block; the output's is the identity)."""

    maps: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    fitted_on: str  # what the translators were fitted on, for the view and the report
    positions: int
    ridge: float

    def apply(self, stream: torch.Tensor) -> torch.Tensor:
        """Translate a residual stream (L+1, ..., d) row by row. # same shape"""
        if stream.shape[0] != len(self.maps):
            raise ValueError(f"The tuned lens has {len(self.maps)} rows, the stream {stream.shape[0]}.")
        return torch.stack([x @ A + b for x, (A, b) in zip(stream.float(), self.maps)])


def calibration_prompts() -> list[str]:
    """The shipped prompt sets (concept and neutral sets: a few thousand short English texts)."""
    from spectrascope.core.assets import PROMPTS_DIR
    from spectrascope.core.analysis.contrast import load_prompts

    return load_prompts(PROMPTS_DIR)


def cache_file(session: Any, prompts: Sequence[str], ridge: float) -> Path:
    from spectrascope.core.analysis.contrast import session_identity
    from spectrascope.core.engine.embedded import cache_root

    blob = json.dumps({"format": FORMAT, "model": session_identity(session, ()), "ridge": ridge,
                       "prompts": hashlib.sha256("\n".join(prompts).encode()).hexdigest()}, sort_keys=True)
    return cache_root() / "tuned_lens" / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.pt"


def tuned_lens(session: Any, prompts: Sequence[str] | None = None, ridge: float = RIDGE,
               cancel: threading.Event | None = None,
               progress: Callable[[str, float | None], None] | None = None) -> TunedLens:
    """Translators for this model fitted on `prompts` (default: the shipped prompt sets), from the
    cache when this model and these prompts were fitted before (one forward per prompt otherwise)."""
    prompts = list(prompts) if prompts is not None else calibration_prompts()
    path = cache_file(session, prompts, ridge)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return TunedLens(tuple(zip(saved["A"], saved["b"])), saved["fitted_on"], int(saved["positions"]), ridge)
    rows = [session.tokenize(p)[0] for p in prompts]
    stream = residual_stream(session, rows, cancel, progress)
    maps = fit_translators(stream, ridge)
    fitted_on = f"{len(prompts):,} prompts ({stream.shape[1]:,} positions)"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"A": [A for A, _ in maps], "b": [b for _, b in maps], "fitted_on": fitted_on,
                "positions": stream.shape[1]}, tmp)
    tmp.replace(path)
    return TunedLens(tuple(maps), fitted_on, stream.shape[1], ridge)


@dataclass(frozen=True)
class LensScore:
    layer: str  # "emb" or the block index, as core.lens
    kl_logit: float  # mean KL(output || logit lens), nats
    kl_tuned: float  # mean KL(output || tuned lens)
    top1_logit: float  # share of positions whose lens top-1 is the output's top-1
    top1_tuned: float


def _kl_top1(session: Any, lens_x: torch.Tensor, out_logp: torch.Tensor, out_top: torch.Tensor) -> tuple[float, float]:
    logp = torch.log_softmax(session.lens_logits(lens_x), -1)
    kl = (out_logp.exp() * (out_logp - logp)).sum(-1)
    return float(kl.mean()), float((logp.argmax(-1) == out_top).float().mean())


def compare(session: Any, stream: torch.Tensor, translators: list[tuple[torch.Tensor, torch.Tensor]],
            chunk: int = 128) -> list[LensScore]:
    """Both lenses on held-out positions `stream` (L+1, N, d), in chunks of positions (each chunk's
    logits are N x 262K floats)."""
    n_layers, n, _ = stream.shape
    sums = torch.zeros(n_layers, 4, dtype=torch.float64)
    for start in range(0, n, chunk):
        part = stream[:, start:start + chunk]
        out_logp = torch.log_softmax(session.lens_logits(part[-1]), -1)
        out_top = out_logp.argmax(-1)
        w = part.shape[1]
        for layer, (A, b) in enumerate(translators):
            kl_l, t_l = _kl_top1(session, part[layer], out_logp, out_top)
            kl_t, t_t = _kl_top1(session, part[layer] @ A + b, out_logp, out_top)
            sums[layer] += torch.tensor([kl_l, kl_t, t_l, t_t], dtype=torch.float64) * w
    means = (sums / n).tolist()
    return [LensScore("emb" if i == 0 else str(i - 1), *m) for i, m in enumerate(means)]


def to_dict(scores: Sequence[LensScore]) -> list[dict]:
    return [asdict(s) for s in scores]
