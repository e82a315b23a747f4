"""Prompt sets -> per-prompt SAE activations -> per-feature statistics -> selectivity.

Both prompt sets go through the model in padded batches that stop at the deepest
SAE hook (no later blocks, no logits), and every SAE encodes its hook's residual.
Each prompt is summarised per feature by the **max** (what the tables use) and the
mean of its activation over the prompt's tokens, BOS and pad positions excluded.

Selectivity of feature f is read off its per-prompt activations (max over the prompt's
tokens by default) on the two sets:

    AUROC(f)       = P(a_c > a_n) + P(a_c = a_n) / 2   a_c, a_n: the activation on a random
                                                       concept / neutral prompt (Mann-Whitney U
                                                       / (n_c n_n)); unequal set sizes are fine
    selectivity(f) = max(0, 2 AUROC - 1)               0: no better than chance; 1: every
                                                       concept prompt outranks every neutral one

It counts the neutral firing rate against the feature and cannot saturate on coverage
alone: a feature that fires on a quarter of the concept prompts and never on neutral ones
scores 0.25, not 1. Both firing rates (r_c, r_n: share of prompts with activation > 0) and
mean activations are reported beside it. Anchors are ranked by selectivity, ties broken by
r_c - r_n.

Besides the per-prompt summaries, which features fire (activation > 0) on every summarised token is
kept as one sparse 0/1 (tokens x F) matrix per SAE (`TokenFiring`), and the coarse SAE's activations
there (float16 in the cache; `VALUE_ROLES`): the hierarchy test (core/stats/hierarchy.py) reads which fine features fire inside which
coarse ones from it, and the anchor's concept check (core/stats/concept_words.py) its activation mass on
each kind of token, with no second forward.

Results are cached on disk (one .npz per model x SAEs x prompt contents), stored compactly
(sparse CSR or dense, float16 values; see `encode_compact`) and written atomically (temp
file + os.replace). Nothing here imports textual, rich or plotext.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from spectrascope.core.assets import PROMPTS_DIR, atomic_write

Progress = Callable[[str, float | None], None]
CACHE_FORMAT = 2  # 2: compact (CSR or dense, float16 values); older files are misses. Token firing came
# later within format 2, and its activation values later still: a file without them is a miss too,
# rewritten with them (see load_cached).
ENCODE_CHUNK_ELEMENTS = 1 << 26  # tokens x features encoded at once (256 MB of float32)
VALUE_ROLES = ("coarse",)  # the SAEs whose token activations are kept besides their firing: the anchors'


def _quiet(_msg: str, _frac: float | None = None) -> None:
    pass


class PromptSetError(ValueError):
    """A prompt file or folder is missing, empty or malformed; the message says where."""


# ---------------------------------------------------------------- prompt sets

def default_sets() -> tuple[Path, Path]:
    """The shipped (concept, neutral) sets: 200 France prompts and 200 neutral ones."""
    return PROMPTS_DIR / "france.txt", PROMPTS_DIR / "neutral.txt"


def _parse_file(path: Path) -> list[str]:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptSetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise PromptSetError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    lines = raw.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if path.suffix.lower() not in (".jsonl", ".json") and not first.startswith("{"):
        return [line.strip() for line in lines if line.strip()]
    prompts = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{path}:{n}: not valid JSON ({exc.msg}); expected one object a line.") from None
        if not isinstance(obj, dict):
            raise PromptSetError(f"{path}:{n}: expected a JSON object with a \"text\" or \"prompt\" field.")
        text = obj.get("text", obj.get("prompt"))
        if not isinstance(text, str):
            raise PromptSetError(f"{path}:{n}: the object has no string \"text\" or \"prompt\" field.")
        if text.strip():
            prompts.append(text.strip())
    return prompts


def load_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a file (one a line, or JSONL with "text"/"prompt") or a folder of such files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PromptSetError(f"Prompt set {p} does not exist.")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".txt", ".jsonl", ".json"))
        if not files:
            raise PromptSetError(f"Folder {p} holds no .txt or .jsonl prompt files.")
        prompts = [text for f in files for text in _parse_file(f)]
    else:
        prompts = _parse_file(p)
    if not prompts:
        raise PromptSetError(f"Prompt set {p} is empty: put one prompt a line (or JSONL with a \"text\" field).")
    return prompts


def prompts_hash(concept: Sequence[str], neutral: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name, prompts in (("concept", concept), ("neutral", neutral)):
        h.update(name.encode())
        for text in prompts:
            h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


SELECTIVITY_DEFINITION = (
    "2 x AUROC - 1 (floored at 0) of the per-prompt activation, concept vs neutral prompts: 0 = no better "
    "than chance, 1 = every concept prompt outranks every neutral one; firing rate = share of prompts "
    "with activation > 0")
RATE_DEFINITION = ("fires c/n = share of the concept / neutral prompts whose per-prompt activation is > 0, "
                   "in whole percent rounded half up")


def percent(rate: float) -> str:
    """A firing rate as every surface prints it (pane, CLI, Markdown): whole percent, half up.

    One formatter on one float64 rate (count / n): printing a float32 rate with :.2f in one place and
    a float64 one rounded to 4 places in another turned 97/200 into 0.49 and 0.48."""
    return f"{math.floor(float(rate) * 100 + 0.5 + 1e-9)}%"


# ---------------------------------------------------------------- settings and results

@dataclass(frozen=True)
class ContrastSettings:
    aggregate: str = "max"  # per-prompt summary the statistics use: "max" or "mean"
    batch_size: int = 16

    def __post_init__(self):
        if self.aggregate not in ("max", "mean"):
            raise ValueError(f"aggregate must be 'max' or 'mean', not {self.aggregate!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ContrastSettings":
        # Sessions saved before selectivity became AUROC-based carry a `min_concept_rate`.
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature statistics of one SAE over the two sets. All arrays (F,) float32, the rates float64."""

    mean_concept: np.ndarray
    mean_neutral: np.ndarray
    rate_concept: np.ndarray  # float64: the exact count / n (see `percent`)
    rate_neutral: np.ndarray
    auroc: np.ndarray
    selectivity: np.ndarray  # max(0, 2 AUROC - 1)
    rate_all: np.ndarray | None = None  # float64: share of all prompts (both sets) with activation > 0

    def cells(self, i: int) -> dict[str, str]:
        """Feature i's statistics as text, the one rendering the pane, the CLI and the report share."""
        return {"mean_concept": f"{self.mean_concept[i]:.3f}", "mean_neutral": f"{self.mean_neutral[i]:.3f}",
                "rates": f"{percent(self.rate_concept[i])}/{percent(self.rate_neutral[i])}",
                "selectivity": f"{self.selectivity[i]:.3f}"}

    @property
    def always_on(self) -> np.ndarray:
        """(F,) bool: fires on >= ALWAYS_ON_PROMPTS of all prompts. Selective by magnitude alone, such a
        latent (often a position or format one) is no concept feature: left out of rankings by default."""
        from spectrascope.core.engine.labels import ALWAYS_ON_PROMPTS

        rate = self.rate_all if self.rate_all is not None else np.zeros(len(self.selectivity))
        return rate >= ALWAYS_ON_PROMPTS

    def ranked(self, n: int | None = None, always_on: str = "in") -> list[int]:
        """Feature ids by selectivity (desc), ties by r_c - r_n (desc), then id; `always_on`: "in" keeps
        the always-on ones, "out" leaves them out (what the pairing ranks and shows), "only" lists them alone."""
        if always_on not in ("out", "in", "only"):
            raise ValueError(f"always_on must be out, in or only, not {always_on!r}")
        order = np.lexsort((np.arange(len(self.selectivity)), -(self.rate_concept - self.rate_neutral),
                            -self.selectivity))
        if always_on != "in":
            order = order[self.always_on[order] == (always_on == "only")]
        return [int(i) for i in order[: n if n is not None else len(order)]]


@dataclass
class TokenFiring:
    """Which features fire (activation > 0) on each summarised token (BOS and pads excluded), both sets.

    Rows are tokens in prompt order (concept prompts first), then position; `firing[role]` is a
    scipy.sparse CSR (tokens x F) bool, True where the feature fires (an SAE code is sparse: 64 of
    4,096 at k = 64); `values[role]` the same entries' activations (CSR float32, float16-rounded where
    the run is cached) for the roles of VALUE_ROLES, or None where a run was built without them."""

    prompt: np.ndarray  # (T,) int32: the prompt each token belongs to (index into the concept + neutral list)
    position: np.ndarray  # (T,) int32: its position in that prompt (BOS is 0)
    token_id: np.ndarray  # (T,) int32
    firing: dict[str, Any]  # role -> scipy.sparse.csr_matrix (T, F) bool
    values: dict[str, Any] | None = None  # role -> scipy.sparse.csr_matrix (T, F) float32, the activations

    @property
    def n_tokens(self) -> int:
        return int(self.prompt.shape[0])

    def shifted(self, offset: int) -> "TokenFiring":
        """The same tokens with their prompt indices moved by `offset` (the neutral set after the concept one)."""
        return TokenFiring(self.prompt + offset, self.position, self.token_id, self.firing, self.values)

    @staticmethod
    def concat(parts: Sequence["TokenFiring"]) -> "TokenFiring":
        import scipy.sparse as sp

        roles = parts[0].firing
        values = ({r: sp.vstack([p.values[r] for p in parts], format="csr") for r in parts[0].values}
                  if all(p.values is not None for p in parts) else None)
        return TokenFiring(np.concatenate([p.prompt for p in parts]), np.concatenate([p.position for p in parts]),
                           np.concatenate([p.token_id for p in parts]),
                           {r: sp.vstack([p.firing[r] for p in parts], format="csr") for r in roles}, values)

    def rounded(self) -> "TokenFiring":
        """These tokens with their activations as the cache gives them back (float16-rounded)."""
        if self.values is None:
            return self
        values = {}
        for role, v in self.values.items():
            v = v.copy()
            v.data = v.data.astype(np.float16).astype(np.float32)
            values[role] = v
        return TokenFiring(self.prompt, self.position, self.token_id, self.firing, values)


@dataclass
class ContrastResult:
    """Per-prompt activations of every feature of every SAE, and their statistics."""

    roles: tuple[str, ...]
    acts: dict[str, dict[str, np.ndarray]]  # role -> {"max": (N, F), "mean": (N, F)} float32
    is_concept: np.ndarray  # (N,) bool: concept prompts first, then neutral
    settings: ContrastSettings
    key: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # model, SAEs, set sizes, tokens, seconds
    cached: bool = False
    stats: dict[str, FeatureStats] = field(default_factory=dict)
    cache_bytes: int | None = None  # size of the cache file written or read (None: not cached)
    tokens: "TokenFiring | None" = None  # every summarised token's firing features (None: not collected)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # label-free derived data

    def __post_init__(self):
        if not self.stats:
            self.stats = {role: feature_stats(self.per_prompt(role), self.is_concept)
                          for role in self.roles}

    def per_prompt(self, role: str) -> np.ndarray:
        """(N, F) per-prompt activations under the settings' aggregate."""
        return self.acts[role][self.settings.aggregate]

    def cache_text(self) -> str:
        """The cache file's size as the Pairing pane and `contrast` print it ("" when none was written)."""
        if self.cache_bytes is None:
            return ""
        return f"cache file {size_text(self.cache_bytes)}"

    @property
    def n_concept(self) -> int:
        return int(self.is_concept.sum())

    @property
    def n_neutral(self) -> int:
        return int((~self.is_concept).sum())


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks down each column of (N, F) `x`, ties given their average rank (as
    scipy.stats.rankdata(method="average", axis=0))."""
    n = x.shape[0]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    idx = np.broadcast_to(np.arange(n)[:, None], x.shape)
    starts_group = np.ones(x.shape, bool)
    starts_group[1:] = xs[1:] != xs[:-1]
    ends_group = np.ones(x.shape, bool)
    ends_group[:-1] = starts_group[1:]
    first = np.maximum.accumulate(np.where(starts_group, idx, 0), axis=0)  # where each tie group starts
    last = np.minimum.accumulate(np.where(ends_group, idx, n - 1)[::-1], axis=0)[::-1]  # and ends
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=0)
    return ranks


def auroc(acts: np.ndarray, is_concept: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Per feature, P(concept > neutral) + P(tie) / 2 from (N, F) activations. # (F,)

    The Mann-Whitney U of the concept prompts over n_c n_n; computed in feature chunks so a
    262K-wide SAE never ranks more than (N, chunk) at once."""
    n_c, n_n = int(is_concept.sum()), int((~is_concept).sum())
    out = np.empty(acts.shape[1])
    for f0 in range(0, acts.shape[1], chunk):
        ranks = average_ranks(acts[:, f0:f0 + chunk])
        u = ranks[is_concept].sum(0) - n_c * (n_c + 1) / 2
        out[f0:f0 + chunk] = u / (n_c * n_n)
    return out


def feature_stats(acts: np.ndarray, is_concept: np.ndarray) -> FeatureStats:
    """Statistics of (N, F) per-prompt activations split by the (N,) concept mask (see module doc)."""
    acts = np.asarray(acts, dtype=np.float64)
    is_concept = np.asarray(is_concept, bool)
    c, n = acts[is_concept], acts[~is_concept]
    if len(c) == 0 or len(n) == 0:
        raise ValueError("Both prompt sets need at least one prompt.")
    auc = auroc(acts, is_concept)
    sel = np.maximum(0.0, 2 * auc - 1)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return FeatureStats(f32(c.mean(0)), f32(n.mean(0)), (c > 0).mean(0), (n > 0).mean(0), f32(auc), f32(sel),
                        (acts > 0).mean(0))


# ---------------------------------------------------------------- running the model

def collect_activations(
    session: Any,
    prompts: Sequence[str],
    batch_size: int = 16,
    cancel: threading.Event | None = None,
    progress: Progress = _quiet,
    roles: Sequence[str] | None = None,
    done_offset: int = 0,
    total: int | None = None,
    with_tokens: bool = False,
) -> tuple[dict[str, dict[str, np.ndarray]], int] | tuple[dict[str, dict[str, np.ndarray]], int, TokenFiring]:
    """Per-prompt max and mean activation of every feature of each SAE: role -> {"max","mean"} (N, F).

    Prompts are sorted by length and right-padded into batches (the causal mask makes
    real positions independent of pads, and positions stay 0..T-1 as unbatched); the
    forward stops at the deepest SAE hook. BOS and pads are excluded from the summary.
    Returns the activations and the number of tokens summarised, and with `with_tokens` the
    `TokenFiring` of those tokens (prompt indices local to `prompts`).
    """
    import scipy.sparse as sp

    import torch

    from spectrascope.core.engine.session import Cancelled, resid_hook
    from spectrascope.core.engine.codes import hook_layer

    roles = tuple(roles if roles is not None else session.saes)
    if not roles:
        raise ValueError("No SAE is attached: the contrast run needs the coarse and fine SAEs.")
    saes = {role: session.saes[role] for role in roles}
    hooks = {role: sae.cfg.metadata.hook_name for role, sae in saes.items()}
    layers = sorted({hook_layer(h) for h in hooks.values()})
    wanted = {resid_hook(layer) for layer in layers}
    if not set(hooks.values()) <= wanted:
        raise ValueError(f"SAE hooks {sorted(set(hooks.values()))} are not residual-stream hooks.")
    deepest = resid_hook(layers[-1])
    tok = session.tokenizer
    bos = tok.bos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (bos if bos is not None else 0)
    total = total if total is not None else len(prompts)

    encoded = [session.tokenize(p)[0] for p in prompts]
    skip = 1 if bos is not None else 0  # BOS is position 0 when added
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out = {role: {"max": np.zeros((len(prompts), sae.cfg.d_sae), np.float32),
                  "mean": np.zeros((len(prompts), sae.cfg.d_sae), np.float32)} for role, sae in saes.items()}
    n_tokens = 0
    fired: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {role: [] for role in saes}  # rows, cols, vals
    tok_prompt, tok_pos, tok_ids = [], [], []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            idx = order[start:start + batch_size]
            lens = [len(encoded[i]) for i in idx]
            T = max(lens)
            ids = torch.full((len(idx), T), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : lens[row]] = torch.tensor(encoded[i])
                mask[row, : lens[row]] = 1
            captured = session.forward(ids, capture=sorted(wanted), stop_after=deepest, attention_mask=mask,
                                       keep_logits=0, cancel=cancel).resid
            keep = mask.clone()
            keep[:, :skip] = 0
            # A prompt that is only BOS keeps its BOS so it still has a summary.
            for row, n in enumerate(lens):
                if n <= skip:
                    keep[row, :n] = 1
            keep_b = keep.bool()
            counts = keep.sum(1)  # (B,)
            first_token = n_tokens  # this batch's first row in the token firing
            n_tokens += int(counts.sum())
            seg = torch.repeat_interleave(torch.arange(len(idx)), counts)  # (n_valid,) row of each token
            if with_tokens:  # the tokens in the order resid[keep_b] gives them (row-major)
                rows_b, pos_b = keep_b.nonzero(as_tuple=True)
                tok_prompt.append(np.asarray(idx)[rows_b.numpy()])
                tok_pos.append(pos_b.numpy())
                tok_ids.append(ids[rows_b, pos_b].numpy())
            for role, sae in saes.items():
                resid = captured[hooks[role]]  # (B, T, d)
                x = resid[keep_b.to(resid.device)].to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
                F = sae.cfg.d_sae
                mx = torch.full((len(idx), F), -torch.inf)
                sm = torch.zeros((len(idx), F))
                # Encode in token chunks so a 262K-wide SAE never holds a (tokens x F) block
                # larger than ~256 MB; each chunk updates the running max and sum of its prompts.
                step = max(1, ENCODE_CHUNK_ELEMENTS // F)
                for t0 in range(0, x.shape[0], step):
                    codes = sae.encode(x[t0:t0 + step]).float().cpu()  # (c, F)
                    if with_tokens:
                        r, f = (codes > 0).nonzero(as_tuple=True)
                        vals = codes[r, f].numpy() if role in VALUE_ROLES else np.zeros(0, np.float32)
                        fired[role].append((r.numpy() + first_token + t0, f.numpy(), vals))
                    rows, lens_in = torch.unique_consecutive(seg[t0:t0 + step], return_counts=True)
                    for r, piece in zip(rows.tolist(), torch.split(codes, lens_in.tolist())):
                        mx[r] = torch.maximum(mx[r], piece.max(0).values)
                        sm[r] += piece.sum(0)
                ids_np = np.asarray(idx)
                out[role]["max"][ids_np] = mx.numpy()
                out[role]["mean"][ids_np] = (sm / counts[:, None].float()).numpy()
            done = done_offset + min(start + batch_size, len(order))
            progress(f"{done}/{total} prompts", done / max(1, total))
    if cancel is not None and cancel.is_set():
        raise Cancelled
    if not with_tokens:
        return out, n_tokens
    prompt = np.concatenate(tok_prompt).astype(np.int32) if tok_prompt else np.zeros(0, np.int32)
    position = np.concatenate(tok_pos).astype(np.int32) if tok_pos else np.zeros(0, np.int32)
    token_id = np.concatenate(tok_ids).astype(np.int32) if tok_ids else np.zeros(0, np.int32)
    tokens_order = np.lexsort((position, prompt))  # prompt order, not the batches' length order
    firing, values = {}, {}
    for role, sae in saes.items():
        rows, cols, vals = ((np.concatenate(p) for p in zip(*fired[role])) if fired[role]
                            else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)))
        m = sp.csr_matrix((np.ones(rows.size, bool), (rows, cols)), shape=(n_tokens, sae.cfg.d_sae))
        firing[role] = m[tokens_order]
        if role in VALUE_ROLES:
            v = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_tokens, sae.cfg.d_sae))
            values[role] = v[tokens_order]
    return out, n_tokens, TokenFiring(prompt[tokens_order], position[tokens_order], token_id[tokens_order], firing,
                                      values)


# ---------------------------------------------------------------- cache

def size_text(b: int) -> str:
    return f"{b / 1e9:.2f} GB" if b >= 1e9 else f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.0f} kB"


def _tensor_digest(h: Any, t: Any, sample: int = 1 << 20, chunk: int = 1 << 24) -> None:
    """Shape, dtype, full sums and a strided sample of `t`: cheap even for a 262K-wide SAE
    (no full copy: the sums go `chunk` elements at a time; whole, the float32 copy of a bf16
    262K W_enc and its abs and square were 7 GB, the peak of a real-size contrast run), and any
    retraining or fine-tune changes it."""
    import torch

    flat = t.detach().reshape(-1)
    stride = max(1, flat.numel() // sample)
    h.update(f"{tuple(t.shape)} {t.dtype}".encode())
    sums = np.zeros(3, np.float64)
    for s in range(0, flat.numel(), chunk):
        f = flat[s:s + chunk].float()
        sums += [float(f.sum()), float(f.abs().sum()), float((f * f).sum())]
    h.update(sums.tobytes())
    h.update(flat[::stride].to("cpu", torch.float32).contiguous().numpy().tobytes())


def session_identity(session: Any, roles: Sequence[str]) -> dict[str, Any]:
    """What the activations depend on, besides the prompts: model and SAE weights."""
    m = session.model
    ident: dict[str, Any] = {"model": m.spec.name, "folder": str(getattr(m, "folder", "")),
                             "n_layers": m.n_layers, "d_model": m.d_model, "dtype": str(m.dtype), "saes": {}}
    for role in roles:
        sae = session.saes[role]
        h = hashlib.sha256()
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
            t = getattr(sae, name, None)
            if t is not None and hasattr(t, "shape"):
                h.update(name.encode())
                _tensor_digest(h, t)
        ident["saes"][role] = {"class": type(sae).__name__, "d_sae": int(sae.cfg.d_sae),
                               "hook": sae.cfg.metadata.hook_name, "k": getattr(sae.cfg, "k", None),
                               "weights": h.hexdigest()[:16]}
    return ident


def cache_key(identity: Mapping[str, Any], concept: Sequence[str], neutral: Sequence[str]) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "identity": identity, "prompts": prompts_hash(concept, neutral)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cache_dir() -> Path:
    from spectrascope.core.engine.embedded import cache_root

    return cache_root() / "contrast"


def cache_path(key: str) -> Path:
    return cache_dir() / f"{key}.npz"


# The per-prompt activations are sparse (an SAE code is mostly zeros: ~0.3% nonzero at
# Gemma Scope 262K), so each (N, F) array is stored as CSR (nonzero values, their column,
# row offsets) or dense, whichever is smaller, with float16 values when every nonzero fits
# float16's normal range (relative rounding error <= 2^-11 ~ 4.9e-4; no value becomes 0 or inf).
# A dense float32 file of 400 prompts x 262K was 891 MB.
FP16_MAX, FP16_MIN_NORMAL = 65504.0, 2.0**-14


def _value_dtype(values: np.ndarray) -> type:
    nz = np.abs(values[values != 0])
    if nz.size and (not np.isfinite(nz).all() or nz.max() > FP16_MAX or nz.min() < FP16_MIN_NORMAL):
        return np.float32
    return np.float16


def encode_compact(name: str, a: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(N, F) float32 -> the arrays to store under `name` and their layout (for `decode_compact`)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    vdt = _value_dtype(a)
    rows, cols = np.nonzero(a)
    itemsize = np.dtype(vdt).itemsize
    csr_bytes = rows.size * (itemsize + 4) + (a.shape[0] + 1) * 8
    layout = {"shape": list(a.shape), "dtype": np.dtype(vdt).name}
    if csr_bytes < a.size * itemsize and a.shape[1] < 2**31:
        indptr = np.zeros(a.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
        layout["layout"] = "csr"
        return {f"{name}__data": a[rows, cols].astype(vdt), f"{name}__indices": cols.astype(np.int32),
                f"{name}__indptr": indptr}, layout
    layout["layout"] = "dense"
    return {f"{name}__dense": a.astype(vdt)}, layout


def decode_compact(z: Mapping[str, np.ndarray], name: str, layout: Mapping[str, Any]) -> np.ndarray:
    """The (N, F) float32 array `encode_compact` stored; ValueError if the stored pieces do not fit."""
    n, f = (int(x) for x in layout["shape"])
    if layout["layout"] == "dense":
        out = np.asarray(z[f"{name}__dense"], dtype=np.float32)
        if out.shape != (n, f):
            raise ValueError(f"{name}: shape {out.shape}, expected {(n, f)}")
        return out
    if layout["layout"] != "csr":
        raise ValueError(f"{name}: unknown layout {layout['layout']!r}")
    data, indices, indptr = _csr_parts(z, name, n, f)
    out = np.zeros((n, f), np.float32)
    out[np.repeat(np.arange(n), np.diff(indptr)), indices] = data
    return out


def _csr_parts(z: Mapping[str, np.ndarray], name: str, n: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored CSR pieces of an (n, f) array; ValueError if they do not fit together."""
    data, indices, indptr = z[f"{name}__data"], z[f"{name}__indices"], z[f"{name}__indptr"]
    if (indptr.shape != (n + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != data.size
            or indices.shape != data.shape or (indices.size and (indices.min() < 0 or indices.max() >= f))):
        raise ValueError(f"{name}: inconsistent CSR arrays")
    return data, indices, indptr


def encode_firing(name: str, m: Any, chunk: int = 4096) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A scipy.sparse (T, F) 0/1 matrix -> the arrays to store under `name`: the column of each True
    (CSR without values) or the rows bit-packed, whichever is smaller (a dense random SAE's firing
    is half True; a trained TopK SAE's 64 of 32,768)."""
    m = m.tocsr().astype(bool)
    m.eliminate_zeros()
    m.sort_indices()
    layout = {"shape": list(m.shape)}
    if m.nnz * 4 + (m.shape[0] + 1) * 8 <= m.shape[0] * ((m.shape[1] + 7) // 8):
        layout["layout"] = "csr"
        return {f"{name}__indices": m.indices.astype(np.int32), f"{name}__indptr": m.indptr.astype(np.int64)}, layout
    layout["layout"] = "bits"
    packed = np.concatenate([np.packbits(m[s:s + chunk].toarray(), axis=1) for s in range(0, m.shape[0], chunk)]
                            or [np.zeros((0, (m.shape[1] + 7) // 8), np.uint8)])
    return {f"{name}__bits": packed}, layout


def decode_firing(z: Mapping[str, np.ndarray], name: str, layout: Mapping[str, Any], chunk: int = 4096) -> Any:
    """The scipy.sparse CSR bool matrix `encode_firing` stored; ValueError if the pieces do not fit."""
    import scipy.sparse as sp

    n, f = (int(x) for x in layout["shape"])
    if layout["layout"] == "bits":
        bits = np.asarray(z[f"{name}__bits"])
        if bits.shape != (n, (f + 7) // 8):
            raise ValueError(f"{name}: shape {bits.shape}, expected {(n, (f + 7) // 8)}")
        parts = [sp.csr_matrix(np.unpackbits(bits[s:s + chunk], axis=1, count=f).astype(bool))
                 for s in range(0, n, chunk)]
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((n, f), dtype=bool)
    if layout["layout"] != "csr":
        raise ValueError(f"{name}: unknown layout {layout['layout']!r}")
    indices, indptr = np.asarray(z[f"{name}__indices"]), np.asarray(z[f"{name}__indptr"])
    _csr_parts({f"{name}__data": indices, f"{name}__indices": indices, f"{name}__indptr": indptr}, name, n, f)
    return sp.csr_matrix((np.ones(indices.size, bool), indices, indptr), shape=(n, f))


TOKEN_ARRAYS = ("prompt", "position", "token_id")


def encode_tokens(tokens: TokenFiring) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {f"tokens__{k}": getattr(tokens, k).astype(np.int32) for k in TOKEN_ARRAYS}
    layouts = {}
    for role, m in tokens.firing.items():
        stored, layouts[role] = encode_firing(f"tokens__{role}", m)
        arrays.update(stored)
        if tokens.values is not None and role in tokens.values:  # float16, in the firing's CSR order
            arrays[f"tokens__{role}__values"] = _values_in_order(m, tokens.values[role]).astype(np.float16)
            layouts[role] = {**layouts[role], "values": True}
    return arrays, layouts


def _values_in_order(firing: Any, values: Any) -> np.ndarray:
    """The activations of `values` at the entries of `firing` in its canonical CSR order (what
    `encode_firing` stores and `decode_firing` gives back). # (nnz,) float32"""
    m = firing.tocsr().astype(bool)
    m.eliminate_zeros()
    m.sort_indices()
    v = values.tocsr()
    v.sort_indices()
    if np.array_equal(v.indptr, m.indptr) and np.array_equal(v.indices, m.indices):
        return np.asarray(v.data, np.float32)
    rows, cols = m.nonzero()
    return np.asarray(v[rows, cols], np.float32).ravel()


def decode_tokens(z: Mapping[str, np.ndarray], layouts: Mapping[str, Any]) -> TokenFiring:
    import scipy.sparse as sp

    t = {k: np.asarray(z[f"tokens__{k}"], np.int32) for k in TOKEN_ARRAYS}
    firing = {role: decode_firing(z, f"tokens__{role}", layout) for role, layout in layouts.items()}
    if any(a.shape != t["prompt"].shape for a in t.values()) or any(
            m.shape[0] != t["prompt"].shape[0] for m in firing.values()):
        raise ValueError("tokens: arrays of different lengths")
    values = None
    if any(layout.get("values") for layout in layouts.values()):
        values = {}
        for role, m in firing.items():
            if not layouts[role].get("values"):
                continue
            data = np.asarray(z[f"tokens__{role}__values"]).astype(np.float32)
            if data.shape != (m.nnz,):
                raise ValueError(f"tokens__{role}__values: {data.shape[0]} values for {m.nnz} firings")
            values[role] = sp.csr_matrix((data, m.indices, m.indptr), shape=m.shape)
    return TokenFiring(t["prompt"], t["position"], t["token_id"], firing, values)


def compact_roundtrip(acts: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The activations exactly as the cache will give them back (float16-rounded where stored so)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for role, d in acts.items():
        out[role] = {}
        for kind, a in d.items():
            stored, layout = encode_compact("a", a)
            out[role][kind] = decode_compact(stored, "a", layout)
    return out


def save_cached(result: ContrastResult) -> Path:
    """Write `result`'s activations compactly; returns the path (its size in `result.cache_bytes`)."""
    arrays: dict[str, np.ndarray] = {"is_concept": result.is_concept}
    layouts = {}
    for role, d in result.acts.items():
        for kind, a in d.items():
            stored, layouts[f"{role}__{kind}"] = encode_compact(f"{role}__{kind}", a)
            arrays.update(stored)
    token_layouts = None
    if result.tokens is not None:
        stored, token_layouts = encode_tokens(result.tokens)
        arrays.update(stored)
    meta = {"format": CACHE_FORMAT, "key": result.key, "roles": list(result.roles), "info": result.info,
            "arrays": layouts, "tokens": token_layouts}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = cache_path(result.key)
    atomic_write(path, buf.getvalue())
    result.cache_bytes = path.stat().st_size
    return path


def prune_old_format(progress: Progress = _quiet) -> list[Path]:
    """Delete cache files of an older format. Their keys hash the old format number, so no run ever
    looks them up again: left alone, each (up to ~0.9 GB at 262K) would stay on disk forever."""
    removed, freed = [], 0
    for path in sorted(cache_dir().glob("*.npz")):
        try:
            with np.load(path) as z:
                fmt = json.loads(bytes(z["meta"]).decode()).get("format")
            if isinstance(fmt, int) and fmt < CACHE_FORMAT:
                size = path.stat().st_size
                path.unlink()
                removed.append(path)
                freed += size
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            continue  # unreadable or being replaced: not ours to judge here
    if removed:
        progress(f"removed {len(removed)} old-format cache file(s) from {cache_dir()} ({size_text(freed)})", None)
    return removed


def load_cached(key: str, settings: ContrastSettings) -> ContrastResult | None:
    """The cached activations for `key`, or None on a miss, an older format or an unreadable file."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
                return None  # format 1 (dense float32) files are misses, rewritten after the run
            roles = tuple(meta["roles"])
            acts = {role: {kind: decode_compact(z, f"{role}__{kind}", meta["arrays"][f"{role}__{kind}"])
                           for kind in ("max", "mean")} for role in roles}
            is_concept = z["is_concept"].astype(bool)
            if meta.get("tokens") is None:
                return None  # written before token firing was kept: run again, so the hierarchy test has it
            if not all(layout.get("values") for role, layout in meta["tokens"].items() if role in VALUE_ROLES):
                return None  # written before its activations were kept: run again, for the concept check's mass
            tokens = decode_tokens(z, meta["tokens"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # a damaged file is a miss; it is rewritten after the run
    hit = ContrastResult(roles, acts, is_concept, settings, key, meta.get("info", {}), cached=True, tokens=tokens)
    hit.cache_bytes = path.stat().st_size
    return hit


# ---------------------------------------------------------------- the run

def run_contrast(
    session: Any,
    concept: Sequence[str],
    neutral: Sequence[str],
    settings: ContrastSettings = ContrastSettings(),
    cancel: threading.Event | None = None,
    progress: Progress = _quiet,
    use_cache: bool = True,
) -> ContrastResult:
    """Both sets through the model and every attached SAE; cached by model, SAEs and prompts."""
    if not concept or not neutral:
        raise PromptSetError("Both prompt sets need at least one prompt.")
    roles = tuple(session.saes)
    if not roles:
        raise ValueError("No SAE is attached: the contrast run needs the coarse and fine SAEs.")
    identity = session_identity(session, roles)
    key = cache_key(identity, concept, neutral)
    if use_cache:
        prune_old_format(progress)
        hit = load_cached(key, settings)
        if hit is not None:
            progress("loaded from cache", 1.0)
            return hit
    t0 = time.perf_counter()
    total = len(concept) + len(neutral)
    acts_c, tok_c, fire_c = collect_activations(session, concept, settings.batch_size, cancel, progress, roles, 0,
                                                total, with_tokens=True)
    acts_n, tok_n, fire_n = collect_activations(session, neutral, settings.batch_size, cancel, progress, roles,
                                                len(concept), total, with_tokens=True)
    tokens = TokenFiring.concat([fire_c, fire_n.shifted(len(concept))])
    acts = {role: {kind: np.concatenate([acts_c[role][kind], acts_n[role][kind]]) for kind in ("max", "mean")}
            for role in roles}
    is_concept = np.r_[np.ones(len(concept), bool), np.zeros(len(neutral), bool)]
    info = {**identity, "n_concept": len(concept), "n_neutral": len(neutral), "tokens": tok_c + tok_n,
            "seconds": round(time.perf_counter() - t0, 3), "prompts_sha256": prompts_hash(concept, neutral)}
    if use_cache:
        acts = compact_roundtrip(acts)  # the numbers a later cache hit gives, so both runs show the same
        tokens = tokens.rounded()
    result = ContrastResult(roles, acts, is_concept, settings, key, info, tokens=tokens)
    if use_cache:
        try:
            save_cached(result)
        except OSError:
            pass  # a read-only cache folder must not lose the result
    return result
