"""The promoted-token score at query time, through the unembedding, so SAEs that ship no promoted tokens
(Gemma Scope) are searchable too: each query word's tokens (`query_tokens`: as typed, lowercased and
capitalised, with and without a leading space, single tokens only) are scored against every feature's
decoder direction, standardised per feature (`Promoter`); a z well out in the feature's own logit
distribution counts like a listed promoted token (`z_match`; by_text.py keeps the larger of the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from spectrascope.core.engine.embedded import Progress, _quiet
from spectrascope.core.lemma import stem

# The promoted z, as a share s = z / z_top of a random direction's top z (z_top = sqrt(2 ln V)), counts from
# s = 0.7 (on Gemma 3 270M's SAEs about a feature's 50th token: a handful of features reach it by chance)
# to 1 at s = 0.85 (about its 8th: where a listed promoted token sits), then on up to 1.5.
Z_FROM, Z_FULL, Z_CAP = 0.7, 0.85, 1.5


@dataclass
class Promoter:
    """Each feature's logit for a token t is l_f(t) = W_U[t] . (g * d_f) (d_f its decoder row, g the final norm's
    gain where known). Its size grows with |d_f| and with how loud the direction is through W_U, so raw logits
    would rank large-norm features first for any query. Standardising per feature over the vocabulary,
    z_f(t) = (l_f(t) - mean_v l_f) / std_v l_f, asks instead how far t sits in that feature's own logit
    distribution; any positive scale of d_f cancels. mean_v l_f = mean(W_U) . d_f, and
    var_v l_f = d_f^T Cov(W_U) d_f, from the unembedding's covariance (over a strided sample of up to
    65,536 rows: a 1% error is nothing to a standardiser): computed once per SAE, cached with the index.
    Measured on the embedded SAEs, the logits are near Gaussian: a feature's 8th token has a median z of 4.3
    (coarse) and 3.8 (fine), z_top = 5.0 at V = 262,144; Z_FROM / Z_FULL turn z into a match value."""

    mean_u: np.ndarray  # (d,) float32: mean unembedding row (times g)
    std: np.ndarray  # (F,) float32: std of each feature's logits over the vocabulary (inf where 0)
    z_top: float

    @classmethod
    def build(cls, directions: Any, unembed: Any, gain: Any = None, progress: Progress = _quiet,
              sample: int = 65_536, chunk: int = 8192) -> Promoter:
        import torch

        device = directions.device
        # The decoder's dtype where its matmuls are fast (bf16 is, where the session chose it on a CPU;
        # anything on an accelerator); fp16 on a CPU has no fast matmul.
        fast = directions.dtype if device.type != "cpu" or directions.dtype != torch.float16 else torch.float32
        with torch.inference_mode():
            V, d = unembed.shape
            rows = unembed[:: max(1, V // sample)]
            n = rows.shape[0]
            g = gain.to(device, torch.float32) if gain is not None else None

            def scaled(i: int) -> Any:
                x = rows[i : i + chunk].to(device, torch.float32)
                return x * g if g is not None else x

            mean = sum(scaled(i).sum(0) for i in range(0, n, chunk)) / n
            cov = torch.zeros(d, d, device=device)
            for i in range(0, n, chunk):  # centred first: no cancellation in E[xx^T] - mu mu^T
                x = (scaled(i) - mean).to(fast)
                cov += (x.T @ x).float()
            cov = (cov / n).to(fast)
            var = torch.empty(directions.shape[0], device=device)
            F = directions.shape[0]
            for i in range(0, F, chunk):  # d_f^T C d_f, a chunk of features at a time
                D = directions[i : i + chunk].to(fast)
                var[i : i + chunk] = ((D @ cov).float() * D.float()).sum(-1)
                if (4 * (i + chunk)) // F > (4 * i) // F:  # a line each quarter
                    progress("standardising the promoted-token score", min(1.0, (i + chunk) / F))
            std = var.clamp_min(0).sqrt().cpu()
            std = torch.where(std > 0, std, torch.full_like(std, math.inf))
        return cls(mean.cpu().numpy(), std.numpy(), math.sqrt(2 * math.log(max(V, 2))))

    def z(self, directions: Any, unembed: Any, token_ids: Sequence[int], gain: Any = None) -> np.ndarray:
        """z_f(t) of every feature for each token. # (F, len(token_ids))"""
        import torch

        with torch.inference_mode():
            q = unembed[list(token_ids)].to("cpu", torch.float32)
            q = q * gain.to(q) if gain is not None else q
            q = torch.cat([q, torch.from_numpy(self.mean_u)[None]])  # the mean row rides along: one pass
            if directions.device.type == "cpu" and directions.dtype == torch.float16:
                directions = directions.float()  # CPUs have no fast fp16 matmul
            s = (directions @ q.T.to(directions.device, directions.dtype)).float().cpu().numpy()
        return (s[:, :-1] - s[:, -1:]) / self.std[:, None]


def query_tokens(session: Any, word: str, cap: int = 8) -> list[int]:
    """Single-token spellings of `word` (and of its stem): as typed, lower, Capitalised, each with and
    without a leading space. None single: the first token of " word" if it holds 3+ letters of it."""
    forms = dict.fromkeys(f"{sp}{w}" for w in dict.fromkeys((word, word.lower(), word.capitalize(), stem(word)))
                          if len(w) >= 2 for sp in ("", " "))
    out: list[int] = []
    for form in forms:
        try:
            ids, _ = session.tokenize(form, add_bos=False)
        except ValueError:
            continue
        if len(ids) == 1 and ids[0] not in out:
            out.append(ids[0])
    if not out:
        ids, _ = session.tokenize(" " + word, add_bos=False)
        if ids and len(session.piece(ids[0]).strip()) >= 3:
            out.append(ids[0])
    return out[:cap]


def z_match(z: np.ndarray, z_top: float, idf: float) -> np.ndarray:
    """Each feature's match value for a word from the z of its tokens (F, tokens): its best z as a share of
    z_top, from Z_FROM (0) to Z_FULL (1, like a listed promoted token), capped at Z_CAP, times the word's idf."""
    strength = z.max(axis=1) / z_top
    return (np.clip((strength - Z_FROM) / (Z_FULL - Z_FROM), 0, Z_CAP) * idf).astype(np.float32)
