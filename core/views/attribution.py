"""The Attribution view ("why this token"): which SAE features made the model predict a token, estimated
by activation × gradient and checked by ablation (core/analysis/attribution.py).

`spectrascope attribute` prints the report; the Attribution pane shows the same one, and ablates a
feature live with `ablate`. The scalar is the target's logit, or its difference from a contrast
token's (`vs`), in the next-token prediction after `position` (default: the prompt's last token).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from spectrascope.core.analysis import attribution as attr
from spectrascope.core.records import Record

DEFAULT_VERIFY = 20


@dataclass(frozen=True)
class AttributionSpec(Record):
    prompt: str
    target: str | None = None  # token text (" Paris") or "#id"; None: the model's top next token
    vs: str | None = None  # a contrast token: the scalar is logit(target) − logit(vs)
    position: int = -1  # the prompt token whose next-token prediction is explained; -1 = the last
    top: int = 20  # features listed
    verify: int = DEFAULT_VERIFY  # of those, how many are measured by ablation (one batched forward)
    roles: tuple[str, ...] = ("coarse", "fine")

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"top must be at least 1, not {self.top}.")
        if self.verify < 0:
            raise ValueError(f"verify must be 0 or more, not {self.verify}.")


@dataclass(frozen=True)
class AttributedFeature(Record):
    role: str
    feature: int
    position: int
    token: str  # the prompt token at `position`
    activation: float
    estimate: float  # activation × (W_dec[feature] · gradient): its first-order share of the scalar
    measured: float | None = None  # the scalar minus the scalar with the feature ablated there; None: not checked
    off: bool = False  # the estimate misses the measured effect by more than half of it
    label: str = ""
    url: str | None = None
    dense: bool = False  # fires on more than labels.DENSE_FREQ of held-out tokens: closer to a bias than a concept


@dataclass(frozen=True)
class SAETerms(Record):
    """One SAE's decomposition of the layer's linear effect (the sum rule: features + error + constant +
    bos = total), and how much of the measured effect its top features carry."""

    role: str
    hook: str
    width: int
    active: int  # active (position, feature) pairs read
    features: float  # every feature's estimate, summed
    error: float  # the SAE's error term (x − x̂) · gradient, summed over positions
    constant: float  # the decoder's constant (b_dec) · gradient, summed
    bos: float  # the BOS position's x · gradient (one node: its residual is the same for every prompt)
    total: float  # Σ_t x_t · gradient_t
    error_share: float  # |error| / (Σ |feature estimates| + |error|)
    strip: tuple[float, ...]  # the features' estimates summed at each prompt position
    top_n: int = 0  # this SAE's features among the verified ones
    top_estimated: float = 0.0  # their estimates, summed
    top_measured: float | None = None  # the scalar's change with those features ablated together
    all_measured: float | None = None  # the scalar's change with every feature ablated at every position but BOS

    @property
    def recovered(self) -> float | None:
        """The share of every feature's measured effect its verified top features carry together."""
        if self.top_measured is None or not self.all_measured:
            return None
        return self.top_measured / self.all_measured


@dataclass(frozen=True)
class AttributionReport(Record):
    prompt: str
    tokens: tuple[str, ...]  # the prompt's tokens up to `position` (BOS included)
    position: int
    target: str
    target_id: int
    vs: str | None
    vs_id: int | None
    value: float  # logit(target) [− logit(vs)]
    prob: float  # the target's next-token probability
    vs_prob: float | None
    saes: tuple[SAETerms, ...]
    features: tuple[AttributedFeature, ...]  # the largest |estimates| over both SAEs, largest first
    spearman: float | None  # rank agreement of estimate and measured effect over the verified features
    spearman_p: float | None
    verified: int
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def scalar(self) -> str:
        return f"logit({self.target!r})" + (f" − logit({self.vs!r})" if self.vs is not None else "")

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        for terms, out in zip(self.saes, doc["saes"]):
            out["recovered"] = terms.recovered  # derived: dropped again by from_dict
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AttributionReport":
        data = dict(data) if isinstance(data, dict) else data  # not an object: Record's from_dict says so
        if isinstance(data, dict) and isinstance(data.get("saes"), list):  # else Record names the bad field
            data["saes"] = [{k: v for k, v in s.items() if k != "recovered"} if isinstance(s, dict) else s
                            for s in data["saes"]]
        return super().from_dict(data)

    def to_markdown(self) -> str:
        lines = [f"# Why {self.target!r} after {self.tokens[-1]!r} (position {self.position})", "",
                 f"Scalar: {self.scalar} = {self.value:+.3f}; p({self.target!r}) = {self.prob:.3f}"
                 + (f", p({self.vs!r}) = {self.vs_prob:.3f}" if self.vs_prob is not None else "") + ".", ""]
        lines += [f"- {n}" for n in self.notes]
        lines += ["", "| SAE | features | error | constant | BOS | total | error share | top-k recover |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in self.saes:
            rec = "–" if s.recovered is None else f"{s.recovered:.0%} of {s.all_measured:+.2f} ({s.top_n} features)"
            lines.append(f"| {s.role} {s.width:,} | {s.features:+.3f} | {s.error:+.3f} | {s.constant:+.3f} | "
                         f"{s.bos:+.3f} | {s.total:+.3f} | {s.error_share:.0%} | {rec} |")
        rho = "–" if self.spearman is None else f"{self.spearman:.2f} (p = {self.spearman_p:.2g})"
        lines += ["", f"Rank agreement of estimate and ablation (Spearman, {self.verified} features): {rho}", "",
                  "| # | SAE | feature | pos | token | act | estimate | measured | label |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for i, f in enumerate(self.features, 1):
            meas = "–" if f.measured is None else f"{f.measured:+.3f}" + (" ⚠" if f.off else "")
            token = f.token.replace("|", "\\|")
            label = f.label.replace("|", "\\|") + (" (dense)" if f.dense else "")
            lines.append(f"| {i} | {f.role} | {f.feature} | {f.position} | {token!r} | {f.activation:.2f} | "
                         f"{f.estimate:+.3f} | {meas} | {label} |")
        lines += ["", HOW]
        return "\n".join(lines) + "\n"


HOW = ("Estimate = activation × (decoder row · ∂scalar/∂residual) at the SAE's hook (first order, zero "
       "baseline); measured = scalar − scalar with the feature zeroed in the SAE code and the SAE's error "
       "kept, one batched forward; ⚠ = the estimate misses by more than half. Features + error + constant "
       "+ BOS = Σ residual · gradient (the layer's total linear effect). Top-k recover = the measured change with "
       "an SAE's verified features ablated together over that with every feature ablated (signed). Dense = fires "
       "on more than a fifth of held-out tokens.")


def resolve_token(session: Any, text: str, what: str) -> tuple[int, list[str]]:
    """A token id from "#id" or text; notes say which token a multi-token text is scored by."""
    if text.startswith("#") and text[1:].isdigit():
        vocab = int(session.unembedding().shape[0])
        if not int(text[1:]) < vocab:
            raise ValueError(f"The {what} {text} is outside the vocabulary (#0..#{vocab - 1}).")
        return int(text[1:]), []
    if text == "":
        raise ValueError(f"The {what} is empty: give a token's text (' Paris') or '#id'.")
    ids, _ = session.tokenize(text, add_bos=False)
    if not ids:
        raise ValueError(f"The {what} {text!r} is no token of this model.")
    if len(ids) == 1:
        return ids[0], []
    pieces = " + ".join(repr(session.piece(i)) for i in ids)
    return ids[0], [f"The {what} {text!r} is {len(ids)} tokens ({pieces}): the first, "
                    f"{session.piece(ids[0])!r}, is scored."]


def _position(spec: AttributionSpec, n: int) -> int:
    p = spec.position + n if spec.position < 0 else spec.position
    if not 0 <= p < n:
        raise ValueError(f"Position {spec.position} is outside the prompt (0..{n - 1}, or -1 for the last).")
    return p


def _roles(session: Any, spec: AttributionSpec) -> list[str]:
    roles = [r for r in spec.roles if r in session.saes]
    if not roles:
        why = "; ".join(f"{r}: {session.sae_errors[r]}" for r in spec.roles if r in session.sae_errors)
        raise ValueError("No SAE is loaded, and attribution reads SAE features: load one with --sae ROLE=SPEC"
                         + (f" ({why})." if why else "."))
    return roles


def build(session: Any, spec: AttributionSpec, cancel: Any = None, progress: Any = None) -> AttributionReport:
    import torch
    from scipy.stats import spearmanr

    from spectrascope.core.engine.plan import LogitObjective

    t0 = time.perf_counter()
    say = progress or (lambda text, fraction=None: None)
    roles = _roles(session, spec)
    ids, _ = session.tokenize(spec.prompt)
    p = _position(spec, len(ids))
    notes: list[str] = []
    if spec.target is None:
        say("reading the model's top next token", 0.05)
        logits = session.forward(ids[: p + 1], keep_logits=1, cancel=cancel).logits[0, -1]
        target = int(logits.argmax())
        notes.append(f"No target given: the model's top next token, {session.piece(target)!r}.")
    else:
        target, more = resolve_token(session, spec.target, "target")
        notes += more
    vs = None
    if spec.vs is not None:
        vs, more = resolve_token(session, spec.vs, "contrast token")
        notes += more
        if vs == target:
            raise ValueError(f"The target and the contrast token are the same token ({session.piece(vs)!r}).")
    hooks = {role: session.sae_hook(role) for role in roles}
    say("one forward and one backward to the SAE layer", 0.1)
    grad = session.gradient(ids, LogitObjective(p, target, vs), wrt=list(dict.fromkeys(hooks.values())), cancel=cancel)
    skip_bos = len(ids) > 1 and ids[0] == getattr(session.tokenizer, "bos_token_id", None)
    nodes = [attr.attribute_sae(role, session.sae(role), grad.resid[hooks[role]], grad.grad[hooks[role]], skip_bos)
             for role in roles]
    order = attr.ranked(nodes, max(spec.top, spec.verify))
    checked = order[: spec.verify]
    measured: dict[tuple[int, int], float] = {}
    joint: dict[str, tuple[float, float]] = {}
    if checked:
        say(f"ablating {len(checked)} features, one batched forward", 0.5)
        pairs = [(nodes[i].role, int(nodes[i].positions[j]), int(nodes[i].features[j])) for i, j in checked]
        first = 1 if skip_bos else 0
        extra = []
        for role in roles:
            top_at = tuple((t, f) for r, t, f in pairs if r == role)
            if top_at:
                extra += [(role, top_at), (role, tuple((t, -1) for t in range(first, p + 1)))]
        edits = attr.ablation_edits(pairs, extra, first_row=1)
        batch = torch.tensor([ids[: p + 1]] * (len(edits) + 1))  # row 0 is the run itself
        out = session.forward(batch, edits=edits, keep_logits=0, cancel=cancel, scores=attr.scored_tokens(target, vs))
        values = attr.objective_value(out.scores.cpu())
        change = (values[0] - values[1:]).tolist()
        measured = {key: change[k] for k, key in enumerate(checked)}
        rest = change[len(pairs):]
        for role in roles:
            if any(r == role for r, _, _ in pairs):
                joint[role], rest = (rest[0], rest[1]), rest[2:]
    say("labelling", 0.9)
    tokens = [session.piece(i) for i in ids[: p + 1]]
    rows = []
    for i, j in order[: spec.top]:
        node = nodes[i]
        f, t, est = int(node.features[j]), int(node.positions[j]), float(node.estimates[j])
        m = measured.get((i, j))
        labels = session.labels.get(node.role)
        rows.append(attr_row(node.role, f, t, tokens[t], float(node.activations[j]), est, m, labels))
    saes = []
    for node in nodes:
        role = node.role
        top = [(i, j) for i, j in checked if nodes[i].role == role]
        sum_abs = float(node.estimates.abs().sum()) + abs(float(node.error.sum()))
        tm, am = joint.get(role, (None, None))
        saes.append(SAETerms(
            role=role, hook=hooks[role], width=int(session.sae(role).cfg.d_sae), active=int(node.estimates.numel()),
            features=float(node.estimates.sum()), error=float(node.error.sum()), constant=float(node.constant.sum()),
            bos=node.bos, total=node.total, error_share=abs(float(node.error.sum())) / sum_abs if sum_abs else 0.0,
            strip=tuple(node.per_position(p + 1).tolist()), top_n=len(top),
            top_estimated=float(sum(float(nodes[i].estimates[j]) for i, j in top)), top_measured=tm, all_measured=am))
    est_m = [(float(nodes[i].estimates[j]), measured[(i, j)]) for i, j in checked]
    rho = rho_p = None
    if len(est_m) >= 3:
        r = spearmanr([e for e, _ in est_m], [m for _, m in est_m])
        rho, rho_p = (None, None) if r.statistic != r.statistic else (float(r.statistic), float(r.pvalue))
    probs = torch.softmax(grad.logits.float(), -1)
    return AttributionReport(
        prompt=spec.prompt, tokens=tuple(tokens), position=p, target=session.piece(target), target_id=target,
        vs=None if vs is None else session.piece(vs), vs_id=vs, value=grad.value, prob=float(probs[target]),
        vs_prob=None if vs is None else float(probs[vs]), saes=tuple(saes), features=tuple(rows),
        spearman=rho, spearman_p=rho_p, verified=len(checked), notes=tuple(notes),
        seconds=time.perf_counter() - t0)


def attr_row(role: str, feature: int, position: int, token: str, activation: float, estimate: float,
             measured: float | None, labels: Any) -> AttributedFeature:
    from spectrascope.core.engine.labels import DENSE_FREQ

    label = labels.get(feature) if labels is not None else None
    freq = label.freq if label is not None else None
    return AttributedFeature(
        role=role, feature=feature, position=position, token=token, activation=activation, estimate=estimate,
        measured=measured, off=measured is not None and attr.off(estimate, measured),
        label=label.text() if label is not None else "", url=labels.url(feature) if labels is not None else None,
        dense=freq is not None and freq > DENSE_FREQ)


@dataclass(frozen=True)
class Ablation(Record):
    """One feature ablated live: the scalar and the target's probability before and after."""

    role: str
    feature: int
    position: int
    value_before: float
    value_after: float
    prob_before: float
    prob_after: float


def ablate(session: Any, report: AttributionReport, row: AttributedFeature, cancel: Any = None,
           progress: Any = None) -> Ablation:
    """The report's prompt run again with `row`'s feature zeroed at its position (the SAE's error kept)."""
    import torch

    from spectrascope.core.engine.plan import AblateFeatures

    ids, _ = session.tokenize(report.prompt)
    ids = ids[: report.position + 1]
    edit = AblateFeatures(row.role, ((row.position, row.feature),), row=1)  # row 0 is the run itself
    out = session.forward(torch.tensor([ids, ids]), edits=[edit], keep_logits=1,
                          cancel=cancel, scores=attr.scored_tokens(report.target_id, report.vs_id))
    values = attr.objective_value(out.scores.cpu())
    probs = torch.softmax(out.logits[:, -1].float().cpu(), -1)[:, report.target_id]
    return Ablation(row.role, row.feature, row.position, float(values[0]), float(values[1]),
                    float(probs[0]), float(probs[1]))
