"""TopK SAE training from the activation cache, with an AuxK loss against dead latents.

Our own loop because sae-lens' runner re-runs the model per batch (~650 tok/s on
CPU); here a step is two dense matmuls (encoder forward/backward) plus a sparse
decode through `embedding_bag` (cost B*k*d instead of B*n*d).

Inputs are divided by a constant `scale` (so E||x/scale||^2 = d_in) for a
well-conditioned optimisation; the scale is folded back into the saved weights
(b_enc and b_dec times scale, activations in raw units, decoder rows kept unit
norm), so the shipped SAE's `encode` takes the raw residual with no
normalisation setting.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spectrascope.core.assets import SAES_DIR
from spectrascope.core.train.activations import HOOK_NAME, SEQ_LEN, ActivationCache, acts_dir
from spectrascope.core.train.corpus import data_dir


@dataclass(frozen=True)
class TrainConfig:
    name: str
    d_in: int = 640
    d_sae: int = 2048
    k: int = 32
    k_aux: int = 256          # latents the AuxK loss may use to explain the residual error
    aux_coef: float = 1 / 32  # OpenAI (Gao et al. 2024) default
    dead_window: int = 300_000  # a latent unfired for this many tokens counts as dead
    lr: float = 5e-4
    batch: int = 4096
    total_tokens: int = 20_000_000
    warmup_frac: float = 0.02
    decay_frac: float = 0.3     # linear decay to 0 over the last 30% of steps
    seed: int = 0
    resample_every: int = 0     # steps between dead-latent resamplings (0: off, AuxK alone); see resample_dead
    hook_name: str = HOOK_NAME
    model_name: str = "gemma-3-270m"


# Widths chosen from measured CPU throughput here (2 shared AVX2 cores; bench in the issue-15 note):
# a 4,096 x k64 step runs at ~9.5k tok/s and a 32,768 x k64 step at ~1.6k tok/s on both cores, so
# 4,096 / 32,768 (8x) fit in ~30 + ~75 minutes over the ~6M-token cache; 65,536 would not see one epoch.
# k=64 for both: the 4,096 x k32 trial stopped at dCE +0.39 nats (bar 0.20) with its dead share at 8%.
PRESETS = {
    "coarse": dict(name="gemma-3-270m-res9-coarse", d_sae=4096, k=64, lr=8e-4, batch=4096,
                   dead_window=250_000),
    "fine": dict(name="gemma-3-270m-res9-fine", d_sae=32768, k=64, lr=4e-4, batch=2048,
                 dead_window=250_000, k_aux=512),
}


class _GatherPre(torch.autograd.Function):
    """Selected pre-activations pre[b, idx[b, j]] with a sparse backward.

    The dense pre-activation matrix (B, n) is computed once without autograd; the
    gradient only flows through the B*m selected entries, so the encoder backward
    costs B*m*d (a sparse matmul) instead of the dense B*n*d.
    """

    @staticmethod
    def forward(ctx, pre, x, W_enc, c, idx):  # pre (B, n) detached, x (B, d), W_enc (d, n), c (n,), idx (B, m)
        ctx.save_for_backward(x, idx)
        ctx.n = W_enc.shape[1]
        return pre.gather(1, idx)  # (B, m)

    @staticmethod
    def backward(ctx, g):  # g (B, m)
        x, idx = ctx.saved_tensors
        B, m = idx.shape
        rows = idx.reshape(-1)
        cols = torch.arange(B).repeat_interleave(m)
        G = torch.sparse_coo_tensor(torch.stack([rows, cols]), g.reshape(-1), (ctx.n, B), check_invariants=False)  # (n, B)
        grad_W = torch.sparse.mm(G, x).T  # (d, n)
        grad_c = torch.zeros(ctx.n, dtype=g.dtype).index_add_(0, rows, g.reshape(-1))
        return None, None, grad_W, grad_c, None


class TopKSAE(torch.nn.Module):
    """Training-side TopK SAE on normalised inputs; same maths as sae-lens TopKSAE."""

    def __init__(self, d_in: int, d_sae: int, k: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d_sae, d_in, generator=g)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)                 # (n, d), unit rows
        self.W_enc = torch.nn.Parameter(w.T.clone())       # (d, n), tied init
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.k = k

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc  # (B, n)

    def encode_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (pre, values, indices): topk over pre-activations, then ReLU (as sae-lens).

        `pre` is detached; `values` carry gradient to W_enc, b_enc, b_dec via _GatherPre.
        """
        c = self.b_enc - self.b_dec @ self.W_enc  # (n,): pre = x @ W_enc + c
        with torch.no_grad():
            pre = x @ self.W_enc + c  # (B, n)
            idx = torch.topk(pre, self.k, dim=-1, sorted=False).indices  # (B, k)
        vals = self.gather(pre, x, c, idx)
        return pre, vals.relu(), idx

    def gather(self, pre, x, c, idx):
        return _GatherPre.apply(pre, x, self.W_enc, c, idx)

    def decode_sparse(self, vals: torch.Tensor, idx: torch.Tensor, bias: bool = True) -> torch.Tensor:
        out = F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum")  # (B, d)
        return out + self.b_dec if bias else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, vals, idx = self.encode_sparse(x)
        return self.decode_sparse(vals, idx)

    def dense_acts(self, x: torch.Tensor) -> torch.Tensor:
        _, vals, idx = self.encode_sparse(x)
        return torch.zeros(x.shape[0], self.W_dec.shape[0], dtype=x.dtype).scatter_(-1, idx, vals.detach())

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))


DENSE_AUX_MAX = 1500  # measured: below this many dead latents the dense AuxK path is faster (see the bench note)


def aux_reconstruction(model: TopKSAE, x: torch.Tensor, pre: torch.Tensor, dead_ids: torch.Tensor,
                       ka: int) -> torch.Tensor:
    """The AuxK reconstruction of the residual error from the top `ka` dead latents. # (B, d)

    Few dead latents: dense matmuls over just those columns (B*d*n_dead) beat the sparse gather,
    whose cost is B*ka whatever n_dead is; many: the sparse gather."""
    if len(dead_ids) <= DENSE_AUX_MAX:
        pre_dead = (x - model.b_dec) @ model.W_enc[:, dead_ids] + model.b_enc[dead_ids]  # (B, m)
        with torch.no_grad():
            keep = torch.zeros_like(pre_dead).scatter_(1, torch.topk(pre_dead, ka, dim=-1).indices, 1.0)
        return (pre_dead * keep).relu() @ model.W_dec[dead_ids]
    with torch.no_grad():
        ai = dead_ids[torch.topk(pre[:, dead_ids], ka, dim=-1, sorted=False).indices]  # (B, ka)
    c = model.b_enc - model.b_dec @ model.W_enc
    return model.decode_sparse(model.gather(pre, x, c, ai).relu(), ai, bias=False)


RESAMPLE_ENCODER_SCALE = 0.2  # Bricken et al. 2023's factor


@torch.no_grad()
def resample_dead(model: TopKSAE, opt: torch.optim.Optimizer, x: torch.Tensor, err: torch.Tensor,
                  dead_ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Restart dead latents on badly reconstructed inputs (Bricken et al. 2023's resampling); returns the ids.

    Why, beside AuxK: AuxK ReLUs the dead latents' pre-activations, so a latent whose pre-activation
    is negative on every input gets no gradient from it. Measured on the shipped coarse SAE: 559 of
    4,096 latents never fire on 32K held-out tokens, and 47% of those are negative on all of them.
    Each restarted latent takes one input of the batch, drawn with probability ~ its squared error
    squared: its decoder row becomes that error's direction, its encoder column the same direction
    at RESAMPLE_ENCODER_SCALE x the alive columns' mean norm, its bias 0, and its Adam moments are
    cleared. Measured at scale 1: the restarted latents won the TopK slots of most tokens and the
    coarse SAE's batch MSE tripled (2.78 -> 8.7) after each restart."""
    loss = err.pow(2).sum(-1)  # (B,)
    n = min(len(dead_ids), len(x))
    ids = dead_ids[torch.randperm(len(dead_ids), generator=generator)[:n]]
    rows = torch.multinomial((loss / loss.max().clamp_min(1e-12)).pow(2), n, replacement=False, generator=generator)
    direction = err[rows] / err[rows].norm(dim=-1, keepdim=True).clamp_min(1e-8)  # (n, d)
    alive = torch.ones(model.W_enc.shape[1], dtype=torch.bool)
    alive[dead_ids] = False
    scale = RESAMPLE_ENCODER_SCALE * (model.W_enc[:, alive].norm(dim=0).mean() if alive.any() else 1.0)
    model.W_dec[ids] = direction
    model.W_enc[:, ids] = direction.T * scale
    model.b_enc[ids] = 0.0
    for param, index in ((model.W_dec, (ids,)), (model.W_enc, (slice(None), ids)), (model.b_enc, (ids,))):
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in opt.state.get(param, {}):
                opt.state[param][moment][index] = 0.0
    return ids


def geometric_median(x: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Weiszfeld iterations; b_dec init (robust to the heavy-tailed residual norms)."""
    y = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(1e-6)
        y = (w[:, None] * x).sum(0) / w.sum()
    return y


def lr_frac(frac: float, cfg: TrainConfig) -> float:
    """LR at training progress `frac` in [0, 1]: linear warmup, constant, linear decay to 0."""
    if frac < cfg.warmup_frac:
        return cfg.lr * max(frac / cfg.warmup_frac, 1e-3)
    if frac > 1 - cfg.decay_frac:
        return cfg.lr * max(0.0, (1 - frac) / cfg.decay_frac)
    return cfg.lr


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    return lr_frac((step + 1) / total if step < int(total * cfg.warmup_frac) else step / total, cfg)


def to_sae_lens(model: TopKSAE, scale: float, cfg: TrainConfig, extra_meta: dict | None = None):
    """Fold the input scale into the weights and return a sae-lens TopKSAE for raw residuals."""
    from sae_lens import TopKSAE as SLTopK
    from sae_lens import TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(model_name=cfg.model_name, hook_name=cfg.hook_name, hook_head_index=None,
                       prepend_bos=True, context_size=SEQ_LEN, dataset_path="spectrascope corpus (see CARD.md)",
                       model_class_name="Gemma3ForCausalLM", **(extra_meta or {}))
    sl_cfg = TopKSAEConfig(d_in=cfg.d_in, d_sae=cfg.d_sae, k=cfg.k, dtype="float32", device="cpu",
                           apply_b_dec_to_input=True, normalize_activations="none",
                           rescale_acts_by_decoder_norm=False, metadata=meta)
    sae = SLTopK(sl_cfg)
    with torch.no_grad():
        sae.W_enc.copy_(model.W_enc)             # (x - s*b_dec) @ W_enc + s*b_enc = s * pre(x/s)
        sae.b_enc.copy_(model.b_enc * scale)
        sae.W_dec.copy_(model.W_dec)             # unit rows; acts carry the scale
        sae.b_dec.copy_(model.b_dec * scale)
    return sae


def out_dir(cfg: TrainConfig) -> Path:
    return data_dir() / "runs" / cfg.name


def train(cfg: TrainConfig, acts: np.ndarray, minutes: float | None = None,
          ckpt_every_s: float = 120.0, progress: bool = True, run_dir: Path | None = None,
          mix: dict[str, int] | None = None, init: dict | None = None) -> dict:
    """Train (or resume) one SAE on fp16 activations `acts` (N, d); returns the final state summary.

    `mix` (tokens per cache part, {"train": ...}) is only recorded: in the
    checkpoint and, through export, in train_curve.json and CARD.md.

    If `minutes` is given, the step budget is set once from measured step time so the LR
    schedule completes within the budget; it is stored in the checkpoint for resumes.

    `init` (see `warm_start`) continues an exported SAE instead of a fresh one: same input scale,
    fresh optimiser and LR schedule; its earlier steps and time are kept in the state as "init".
    """
    run_dir = run_dir or out_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    data = torch.from_numpy(np.asarray(acts))  # fp16, (N, d)
    N = len(data)
    torch.manual_seed(cfg.seed)

    model = TopKSAE(cfg.d_in, cfg.d_sae, cfg.k, cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    state = {"step": 0, "curve": [], "elapsed_s": 0.0}
    last_fired = torch.zeros(cfg.d_sae, dtype=torch.long)  # tokens seen at each latent's last firing

    if ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state, last_fired, scale, total_steps = ck["state"], ck["last_fired"], ck["scale"], ck["total_steps"]
    elif init is not None:
        model.load_state_dict(init["state_dict"])
        scale = init["scale"]
        state["init"] = {k: init[k] for k in ("from", "tokens_seen", "steps", "elapsed_s", "train_tokens_unique")}
        total_steps = None
    else:
        g = torch.Generator().manual_seed(cfg.seed)
        sample = data[torch.randint(0, N, (min(N, 100_000),), generator=g)].float()
        scale = float(sample.pow(2).sum(1).mean().sqrt() / math.sqrt(cfg.d_in))
        with torch.no_grad():
            model.b_dec.copy_(geometric_median(sample[:20_000] / scale))
        total_steps = None

    perms: dict[int, torch.Tensor] = {}

    def perm_of(epoch: int) -> torch.Tensor:
        # A fresh seeded permutation per epoch makes the data order a pure function of step (resume-safe).
        if epoch not in perms:
            perms.clear()
            perms[epoch] = torch.randperm(N, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        return perms[epoch]

    def batch_at(step: int) -> torch.Tensor:
        epoch, off = divmod(step * cfg.batch, N)
        idx = perm_of(epoch)[off:off + cfg.batch]
        if len(idx) < cfg.batch:  # wrap into the next epoch
            idx = torch.cat([idx, perm_of(epoch + 1)[: cfg.batch - len(idx)]])
        return data[idx].float() / scale  # (B, d)

    resample_gen = torch.Generator().manual_seed(cfg.seed + 1)

    def step_fn(step: int, lr: float, resample: bool = False) -> dict:
        x = batch_at(step)                                      # (B, d)
        for group in opt.param_groups:
            group["lr"] = lr
        pre, vals, idx = model.encode_sparse(x)                 # (B, n), (B, k), (B, k)
        x_hat = model.decode_sparse(vals, idx)                  # (B, d)
        err = x - x_hat
        mse = err.pow(2).sum(-1).mean()
        # AuxK: let dead latents explain the residual error so they get gradient again.
        seen = (step + 1) * cfg.batch
        dead = (seen - last_fired) > cfg.dead_window if seen > cfg.dead_window else torch.zeros_like(last_fired, dtype=torch.bool)
        n_dead = int(dead.sum())
        aux = torch.zeros(())
        if n_dead > 0:
            ka = min(cfg.k_aux, n_dead)
            dead_ids = dead.nonzero().squeeze(1)
            e_hat = aux_reconstruction(model, x, pre, dead_ids, ka)
            aux = (err.detach() - e_hat).pow(2).sum(-1).mean() * min(1.0, n_dead / cfg.k_aux)
        loss = mse + cfg.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # Drop the decoder-gradient component parallel to each row (rows stay unit norm).
        with torch.no_grad():
            Wd, gd = model.W_dec, model.W_dec.grad
            gd -= (gd * Wd).sum(1, keepdim=True) * Wd
        opt.step()
        model.normalise_decoder()
        with torch.no_grad():
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool)
            fired[idx[vals.detach() > 0]] = True
            last_fired[fired] = seen
            if resample and n_dead > 0:
                last_fired[resample_dead(model, opt, x, err.detach(), dead_ids, resample_gen)] = seen  # a new window
            fvu = float(err.pow(2).sum() / (x - x.mean(0)).pow(2).sum())
            l0 = float((vals.detach() > 0).sum(-1).float().mean())
        return {"mse": float(mse.detach()), "aux": float(aux.detach()), "fve": 1 - fvu, "l0": l0, "dead": n_dead / cfg.d_sae}

    def save_ckpt():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "scale": scale,
                    "total_steps": total_steps, "last_fired": last_fired, "cfg": asdict(cfg), "n_unique": N, "mix": mix}, tmp)
        os.replace(tmp, ckpt_path)

    if total_steps is None:
        if minutes is not None:
            # Measure a few steps at the base LR on a throwaway copy to size the budget.
            import copy
            m0, o0 = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
            t0 = time.time()
            for s in range(6):
                step_fn(s, 0.0)
            per_step = (time.time() - t0) / 6
            model.load_state_dict(m0)
            opt.load_state_dict(o0)
            last_fired.zero_()
            total_steps = max(50, int(minutes * 60 / per_step * 1.5))  # the time budget normally binds
            state["budget_s"] = minutes * 60
        else:
            total_steps = max(1, cfg.total_tokens // cfg.batch)
        save_ckpt()

    from tqdm import tqdm
    bar = tqdm(total=total_steps, initial=state["step"], desc=cfg.name, unit="step", disable=not progress,
               mininterval=15)  # with a time budget the run may end before `total` (see frac below)
    last_ckpt = time.time()
    ema = None
    t_start = time.time() - state["elapsed_s"]
    budget_s = state.get("budget_s")
    while True:
        s = state["step"]
        # Progress is the larger of step and wall-clock fractions, so a run that gets less
        # CPU than measured still completes its LR decay by the deadline.
        frac = s / total_steps
        if budget_s:
            frac = max(frac, (time.time() - t_start) / budget_s)
        if frac >= 1.0:
            break
        lr = lr_at(s, total_steps, cfg) if not budget_s else lr_frac(frac, cfg)
        # Resampling stops where the LR decay starts: the restarted latents need steps at full LR.
        r = step_fn(s, lr, resample=bool(cfg.resample_every) and (s + 1) % cfg.resample_every == 0
                    and frac < 1 - cfg.decay_frac)
        state["step"] = s + 1
        ema = r if ema is None else {k: 0.95 * ema[k] + 0.05 * r[k] for k in r}
        if (s + 1) % 25 == 0 or s + 1 == total_steps:
            state["curve"].append({"step": s + 1, "tokens": (s + 1) * cfg.batch, **{k: round(v, 5) for k, v in ema.items()}})
            bar.set_postfix(fve=f"{ema['fve']:.3f}", l0=f"{ema['l0']:.1f}", dead=f"{ema['dead']:.3f}")
        bar.update(1)
        state["elapsed_s"] = time.time() - t_start
        state["last_lr"] = lr
        if time.time() - last_ckpt > ckpt_every_s:
            save_ckpt()
            last_ckpt = time.time()
    bar.close()
    if ema is not None and (not state["curve"] or state["curve"][-1]["step"] != state["step"]):
        state["curve"].append({"step": state["step"], "tokens": state["step"] * cfg.batch,
                               **{k: round(v, 5) for k, v in ema.items()}})
    state["elapsed_s"] = time.time() - t_start
    save_ckpt()
    return {"model": model, "scale": scale, "state": state, "total_steps": state["step"], "run_dir": str(run_dir),
            "n_train_tokens_unique": N, "mix": mix, "last_fired": last_fired}


def export(result: dict, cfg: TrainConfig, folder: Path) -> Path:
    """Write sae-lens files (cfg.json + sae_weights.safetensors) for the raw-residual SAE."""
    seen = result["state"]["step"] * cfg.batch
    window = min(cfg.dead_window, seen)
    dead_train = float(((seen - result["last_fired"]) >= window).float().mean()) if seen else None
    sae = to_sae_lens(result["model"], result["scale"], cfg,
                      extra_meta={"spectrascope_input_scale": result["scale"]})
    folder.mkdir(parents=True, exist_ok=True)
    sae.save_model(folder)
    store_half(folder)
    (folder / "train_curve.json").write_text(json.dumps(
        {"train_config": asdict(cfg), "input_scale": result["scale"], "total_steps": result["total_steps"],
         "train_tokens_unique": result["n_train_tokens_unique"], "train_mix": result.get("mix"), "elapsed_s": round(result["state"]["elapsed_s"], 1),
         "dead_frac_train_window": dead_train, "dead_window_tokens": window,
         "warm_start": result["state"].get("init"),
         # The run folder under runs/ that holds the fp32 checkpoint, for the half-precision check.
         "run": Path(result["run_dir"]).name if result.get("run_dir") else None,
         "curve": result["state"]["curve"]}, indent=0))
    return folder


def store_half(folder: Path) -> None:
    """Rewrite the weight matrices in fp16 to halve the repository's size (sae-lens casts them back to
    cfg.dtype on load); biases stay fp32. evaluate_preset measures what this costs on held-out EV."""
    from safetensors.torch import load_file, save_file

    path = folder / "sae_weights.safetensors"
    weights = load_file(path)
    save_file({k: v.half() if v.ndim == 2 else v for k, v in weights.items()}, path)


def load_checkpoint(cfg: TrainConfig, run_dir: Path | None = None, checkpoint: Path | None = None) -> dict:
    """The latest checkpoint (or the `checkpoint` file given) as a train() result, to export a run
    that was stopped early or a snapshot of one."""
    run_dir = run_dir or out_dir(cfg)
    ck = torch.load(checkpoint or run_dir / "ckpt.pt", weights_only=False)
    model = TopKSAE(cfg.d_in, cfg.d_sae, cfg.k, cfg.seed)
    model.load_state_dict(ck["model"])
    return {"model": model, "scale": ck["scale"], "state": ck["state"], "total_steps": ck["state"]["step"], "run_dir": str(run_dir),
            "n_train_tokens_unique": ck["n_unique"], "mix": ck.get("mix"), "last_fired": ck["last_fired"]}


def warm_start(folder: Path, cfg: TrainConfig) -> dict:
    """An exported SAE folder (sae-lens files + train_curve.json) back in training units, to continue it.

    Inverse of to_sae_lens: biases divided by the stored input scale; fp16-stored decoder rows are
    renormalised to unit norm."""
    from safetensors.torch import load_file

    w = {k: v.float() for k, v in load_file(folder / "sae_weights.safetensors").items()}
    meta = json.loads((folder / "cfg.json").read_text())
    if (meta["d_in"], meta["d_sae"], meta["k"]) != (cfg.d_in, cfg.d_sae, cfg.k):
        raise ValueError(f"{folder} is {meta['d_sae']} x k{meta['k']}, not the {cfg.d_sae} x k{cfg.k} of {cfg.name}")
    scale = float(meta["metadata"]["spectrascope_input_scale"])
    info = json.loads((folder / "train_curve.json").read_text())
    prior = info.get("warm_start") or {}
    steps = info["total_steps"] + (prior.get("steps") or 0)
    W_dec = w["W_dec"] / w["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-8)
    return {"state_dict": {"W_dec": W_dec, "W_enc": w["W_enc"], "b_enc": w["b_enc"] / scale, "b_dec": w["b_dec"] / scale},
            "scale": scale, "from": str(folder), "steps": steps,
            "tokens_seen": info["total_steps"] * info["train_config"]["batch"] + (prior.get("tokens_seen") or 0),
            "elapsed_s": (info.get("elapsed_s") or 0) + (prior.get("elapsed_s") or 0),
            "train_tokens_unique": max(info.get("train_tokens_unique") or 0, prior.get("train_tokens_unique") or 0)}


def export_checkpoint(which: str, folder: Path | None = None) -> Path:
    cfg = TrainConfig(**PRESETS[which])
    return export(load_checkpoint(cfg), cfg, folder or SAES_DIR / cfg.name)


def training_activations(max_tokens: int | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """The general cache, at the corpus' natural mix (no concept windows: issue 15), and its size by part."""
    acts = ActivationCache(acts_dir("train")).load_all(max_tokens)
    if not len(acts):
        raise RuntimeError("No cached activations: run `python -m spectrascope.core.train cache` first.")
    return acts, {"train": len(acts)}


def train_trial(d_sae: int, k: int, minutes: float, max_tokens: int | None = None) -> dict:
    """A point on the width/tokens curve: train a `d_sae`-wide TopK SAE on the cache into
    runs/trial-<d_sae>-k<k> (never into assets/) and score it on the held-out cache."""
    from spectrascope.core.train.metrics import recon_metrics

    cfg = TrainConfig(name=f"trial-{d_sae}-k{k}", d_sae=d_sae, k=k, lr=8e-4 if d_sae <= 4096 else 4e-4,
                      batch=4096, dead_window=250_000)
    acts, mix = training_activations(max_tokens)
    res = train(cfg, acts, minutes=minutes, mix=mix)
    metrics = recon_metrics(to_sae_lens(res["model"], res["scale"], cfg),
                            ActivationCache(acts_dir("heldout")).load_all())
    metrics.pop("fires")
    out = {"train_config": asdict(cfg), "train_tokens_unique": len(acts), "mix": mix, "minutes": minutes,
           "tokens_seen": res["total_steps"] * cfg.batch, **metrics}
    (out_dir(cfg) / "heldout_metrics.json").write_text(json.dumps(out, indent=1))
    return out


def train_preset(which: str, minutes: float | None = None, max_tokens: int | None = None,
                 continue_from: Path | None = None, out: Path | None = None,
                 overrides: dict | None = None) -> Path:
    """Train one preset (or continue the SAE in `continue_from`) and export it to `out` (default assets/).

    A continuation runs in runs/<name>-continued (-lr<LR> when the LR is not the preset's) so it never
    resumes another run's checkpoint. Measured: continuing the shipped fine SAE with a fresh Adam at
    the preset's full LR raised its training-window dead share from 5% to 28% in 400 steps (EMA FVE
    0.937 -> 0.931), so continue at a lower LR.

    overrides: TrainConfig fields to change from the preset (None values are ignored), e.g. lr,
    k_aux, aux_coef; each names the continuation's run folder (-lr0.0001, -k_aux1024, ...)."""
    changed = {k: v for k, v in (overrides or {}).items() if v is not None}
    cfg = TrainConfig(**{**PRESETS[which], **changed})
    acts, mix = training_activations(max_tokens)
    print(f"[train] {cfg.name}: {len(acts):,} cached tokens {mix}", flush=True)
    init = warm_start(continue_from, cfg) if continue_from else None
    suffix = "-continued" + "".join(f"-{k}{v:g}" for k, v in changed.items())
    run_dir = out_dir(cfg).with_name(cfg.name + suffix) if init else None
    res = train(cfg, acts, minutes=minutes, mix=mix, init=init, run_dir=run_dir)
    return export(res, cfg, out or SAES_DIR / cfg.name)
