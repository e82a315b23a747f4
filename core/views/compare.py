"""Two SAEs at the same hook, measured on the same tokens: `spectrascope compare SPEC_A SPEC_B`.

For each SAE: centred explained variance (1 - SSE / Σ|x - mean|², as SAELens evals report it), the same
without the massive dimensions (Gemma's residual has ~3 dimensions holding ~97% of |x|², which make any
reconstruction look good), the CE increase when its reconstruction is spliced into the forward (every
position but BOS; a 95% CI over sequences, paired with the clean model on the same sequences), L0, the
share of latents that never fire (dead) and that fire on more than `DENSE_FREQ` of the tokens (dense).
Between them: how many of A's latents have a decoder direction in B with cosine ≥ `match_cos` (and
B's in A). The tokens are text the SAEs' cards did not use (the shipped prompt sets by default, or a file),
so the figures compare the two SAEs with each other, not with their cards' held-out numbers. Beside them,
each SAE's training budget as its card gives it ("unknown" for one without, such as Gemma Scope): two SAEs
trained on different budgets differ in that as well as in width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spectrascope.core.engine.labels import DENSE_FREQ
from spectrascope.core.records import Record
from spectrascope.core.text import sentence


@dataclass(frozen=True)
class CompareSpec(Record):
    a: str  # an SAE as --sae takes it: a preset, a sae-lens release/sae_id or a folder
    b: str
    text: str = ""  # a file of text lines; "" = the shipped prompt sets (assets/prompts/*.txt)
    sequences: int = 64  # rows of `tokens` tokens the CE increase is averaged over
    tokens: int = 64  # tokens per row, BOS included
    match_cos: float = 0.7  # a latent "has a match" when some decoder direction of the other SAE is this close

    def __post_init__(self):
        if self.sequences < 2 or self.tokens < 2:
            raise ValueError("--sequences and --tokens must be at least 2 (a CI needs two sequences).")
        if not 0 < self.match_cos <= 1:
            raise ValueError("--match-cos must be in (0, 1].")


@dataclass(frozen=True)
class SAEQuality(Record):
    spec: str
    hook: str
    width: int
    l0: float
    explained_variance: float
    explained_variance_without_massive: float
    ce_increase: float  # nats, mean over sequences
    ce_increase_ci95: float  # half-width
    dead: float  # share of latents that never fire on these tokens (a small sample overstates true deadness)
    dense: float  # share of latents firing on more than DENSE_FREQ of them
    matched: int  # latents with a decoder match in the other SAE
    matched_share: float
    train_tokens_seen: int | None = None  # the training budget from the SAE's card (None: unknown)
    train_tokens_unique: int | None = None

    @property
    def budget(self) -> dict[str, Any]:
        return {"tokens_seen": self.train_tokens_seen, "tokens_unique": self.train_tokens_unique}

    @property
    def budget_text(self) -> str:
        from spectrascope.core.analysis.sae_info import budget_text

        return budget_text(self.budget)


@dataclass(frozen=True)
class CompareReport(Record):
    source: str  # where the tokens came from
    n_tokens: int  # tokens the reconstruction metrics are over (BOS left out)
    n_sequences: int
    ce_clean: float
    massive_dims: tuple[int, ...]
    match_cos: float
    a: SAEQuality
    b: SAEQuality

    def to_markdown(self) -> str:
        rows = [("width", "{:,}"), ("l0", "{:.1f}"), ("explained_variance", "{:.4f}"),
                ("explained_variance_without_massive", "{:.4f}"), ("ce_increase", "{:+.4f}"),
                ("ce_increase_ci95", "±{:.4f}"), ("dead", "{:.2%}"), ("dense", "{:.2%}"), ("matched_share", "{:.1%}")]
        # "dead" here is "never fired on these tokens": a few thousand tokens overstate it for a wide SAE
        out = [f"Same {self.n_tokens:,} tokens ({self.source}); CE clean {self.ce_clean:.4f} nats over "
               f"{self.n_sequences} sequences; massive dims {list(self.massive_dims)}; a match is decoder cosine "
               f">= {self.match_cos}.", "", sentence(self.budgets_line), "",
               f"| | A: {self.a.spec} | B: {self.b.spec} |", "|---|---|---|"]
        out += [f"| {name} | {fmt.format(getattr(self.a, name))} | {fmt.format(getattr(self.b, name))} |"
                for name, fmt in rows]
        out += [f"| train_tokens_seen (card) | {self.a.budget_text} | {self.b.budget_text} |"]
        return "\n".join(out) + "\n"

    @property
    def budgets_line(self) -> str:
        """Both SAEs' training budgets side by side, and what a difference means."""
        from spectrascope.core.analysis.sae_info import budgets_line

        return budgets_line({"A": self.a.budget, "B": self.b.budget})


def token_rows(session: Any, text: str, sequences: int, tokens: int) -> tuple[Any, str]:
    """(sequences, tokens) ids: the text's lines tokenized end to end, cut into rows that each start with BOS."""
    import numpy as np

    from spectrascope.core.assets import PROMPTS_DIR

    if text:
        from pathlib import Path

        lines, source = Path(text).expanduser().read_text(encoding="utf-8").splitlines(), text
    else:
        files = sorted(PROMPTS_DIR.glob("*.txt"))
        lines, source = [ln for f in files for ln in f.read_text(encoding="utf-8").splitlines()], "the shipped prompt sets"
    stream: list[int] = []
    for line in (ln.strip() for ln in lines):
        if line:
            stream += session.tokenize(line + "\n", add_bos=False)[0]
    per_row = tokens - 1
    n = min(sequences, len(stream) // per_row)
    if n < 2:
        raise ValueError(f"{source} holds {len(stream)} tokens: too few for two rows of {tokens}.")
    bos = session.tokenizer.bos_token_id
    head = [bos] if bos is not None else stream[:1]  # every row starts as the model's prompts do
    rows = np.asarray([head + stream[i * per_row:(i + 1) * per_row] for i in range(n)], dtype=np.int64)
    return rows, f"{source}, {n} rows of {tokens} tokens"


def decoder_matches(w_a: Any, w_b: Any, cos: float, chunk: int = 512) -> int:
    """How many rows of w_a (n_a, d) have a row of w_b (n_b, d) at cosine >= `cos` (chunked: never n_a x n_b)."""
    import torch

    a = torch.nn.functional.normalize(w_a.float(), dim=1)
    b = torch.nn.functional.normalize(w_b.float(), dim=1)
    return sum(int(((a[i:i + chunk] @ b.T).max(dim=1).values >= cos).sum()) for i in range(0, len(a), chunk))


def _budget_fields(text: str) -> tuple[int | None, int | None]:
    """(tokens seen, unique tokens) of the SAE `text` names, from its card; (None, None) without one."""
    from spectrascope.core.analysis.sae_info import training_budget
    from spectrascope.core.engine.labels import labels_folder
    from spectrascope.core.engine.saes import parse_sae_spec

    found = training_budget(labels_folder(parse_sae_spec(text)))
    return found["tokens_seen"], found["tokens_unique"]


def build(session: Any, spec: CompareSpec, cancel: Any = None, progress: Any = None) -> CompareReport:
    import numpy as np
    import torch

    from spectrascope.core.engine.saes import load_sae, parse_sae_spec
    from spectrascope.core.train.evaluate import ce_per_sequence, paired_ci
    from spectrascope.core.train.metrics import recon_metrics

    say = progress or (lambda text, fraction=None: None)
    saes = {}
    for name, text in (("a", spec.a), ("b", spec.b)):
        say(f"loading SAE {name.upper()}: {text}", None)
        saes[name] = load_sae(parse_sae_spec(text), device=session.device, dtype="float32")
    hooks = {sae.cfg.metadata.hook_name for sae in saes.values()}
    if len(hooks) != 1:
        raise ValueError(f"compare needs two SAEs at the same hook, not {' and '.join(sorted(map(str, hooks)))}.")
    hook = hooks.pop()
    rows, source = token_rows(session, spec.text, spec.sequences, spec.tokens)
    say(f"reading {hook} on {source}", None)
    resid = session.forward(torch.from_numpy(rows), capture=[hook], stop_after=hook, keep_logits=0,
                            cancel=cancel).resid[hook][:, 1:]  # (S, T-1, d): BOS left out, as in training
    acts = resid.reshape(-1, resid.shape[-1]).float().cpu().numpy()
    say("the clean model's CE", None)
    clean = ce_per_sequence(session, rows)
    quality, dirs = {}, {n: s.W_dec.detach() for n, s in saes.items()}
    massive: list[int] = []
    for name, sae in saes.items():
        say(f"SAE {name.upper()}: reconstruction and CE with it spliced in", None)
        r = recon_metrics(sae, acts)
        massive = r["massive_dims"]
        rate = r["fires"].double() / r["n_tokens"]
        increase, half = paired_ci(ce_per_sequence(session, rows, sae) - clean)
        other = dirs["b" if name == "a" else "a"]
        matched = decoder_matches(dirs[name], other, spec.match_cos)
        quality[name] = SAEQuality(
            getattr(spec, name), hook, int(sae.cfg.d_sae), float(r["l0"]), float(r["fve"]),
            float(r["fve_without_massive"]), increase, half, float((rate == 0).double().mean()),
            float((rate > DENSE_FREQ).double().mean()), matched, matched / int(sae.cfg.d_sae),
            *_budget_fields(getattr(spec, name)))
    return CompareReport(source, int(acts.shape[0]), int(len(rows)), float(np.mean(clean)), tuple(massive),
                         spec.match_cos, quality["a"], quality["b"])
