"""Held-out quality against training tokens: the curve issue 15 asks for when the bar is out of reach.

    python -m spectrascope.core.train curve --which fine --points FOLDER_OR_CKPT ...

Each point is an exported SAE folder (sae-lens files + train_curve.json) or a trainer checkpoint
(`ckpt.pt`, exported first into runs/curve/). Every point is scored the same way as the shipped
cards (core.train.evaluate.evaluate: centered EV, EV without the massive dimensions, dead share on
held-out, CE increase with its 95% CI over the same held-out sequences), and the CE increase is fit
as a power law in tokens seen, log dCE = log a - b log t, to say how many tokens the bar would take
*if the curve kept its slope* (a lower bound: a real curve flattens towards a floor set by width and k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from spectrascope.core.train.corpus import data_dir

BARS = {"coarse": 0.20, "fine": 0.15}  # issue 15's CE-increase bars, nats


def power_law(tokens: list[float], values: list[float]) -> dict | None:
    """Least-squares fit of log v = log a - b log t; None without two usable points at different token counts."""
    pts = [(math.log(t), math.log(v)) for t, v in zip(tokens, values) if t > 0 and v > 0]
    if len({x for x, _ in pts}) < 2:  # arms at one token count (a control) say nothing about a slope
        return None
    x, y = np.array(pts).T
    slope, intercept = np.polyfit(x, y, 1)
    return {"a": float(math.exp(intercept)), "b": float(-slope), "points": len(pts)}


def tokens_to_reach(fit: dict | None, target: float) -> float | None:
    """Tokens at which the fitted power law reaches `target` (None if it does not decrease)."""
    if fit is None or fit["b"] <= 0:
        return None
    return (fit["a"] / target) ** (1 / fit["b"])


def _folder_of(point: Path, which: str) -> Path:
    """An exported folder for `point`: itself, or a checkpoint exported under runs/curve/."""
    from spectrascope.core.train.trainer import PRESETS, TrainConfig, export, load_checkpoint

    if point.is_dir():
        return point
    cfg = TrainConfig(**PRESETS[which])
    res = load_checkpoint(cfg, checkpoint=point)
    return export(res, cfg, data_dir() / "runs" / "curve" / f"{cfg.name}-{point.stem}")


def score_points(which: str, points: list[Path], ce_seqs: int = 256) -> dict:
    from sae_lens import SAE

    from spectrascope.core.train.activations import load_session
    from spectrascope.core.train.evaluate import evaluate

    session = load_session()
    rows = []
    for point in points:
        folder = _folder_of(Path(point), which)
        m = evaluate(SAE.load_from_disk(folder), folder, ce_seqs=ce_seqs, session=session)
        rows.append({"point": str(point), "tokens_seen": m["train_tokens_seen"],
                     **{k: m[k] for k in ("explained_variance", "explained_variance_without_massive",
                                          "dead_frac_heldout", "ce_increase", "ce_increase_ci95")}})
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: r["tokens_seen"])
    fit = power_law([r["tokens_seen"] for r in rows], [r["ce_increase"] for r in rows])
    out = {"which": which, "ce_seqs": ce_seqs, "points": rows, "ce_power_law": fit, "bar": BARS[which],
           "tokens_to_bar_if_slope_held": tokens_to_reach(fit, BARS[which])}
    path = data_dir() / "runs" / f"curve-{which}.json"
    path.write_text(json.dumps(out, indent=1))
    return out


def format_curve(out: dict) -> str:
    lines = [f"{out['which']}: held-out metrics vs tokens seen ({out['ce_seqs']} sequences for CE)",
             f"{'tokens seen':>12}  {'EV':>6}  {'EV-massive':>10}  {'dead':>6}  {'dCE (95% CI)':>16}"]
    for r in out["points"]:
        lines.append(f"{r['tokens_seen']:>12,}  {r['explained_variance']:>6.4f}  {r['explained_variance_without_massive']:>10.4f}"
                     f"  {r['dead_frac_heldout']:>6.2%}  {r['ce_increase']:>8.3f} ± {r['ce_increase_ci95']:.3f}")
    fit, need = out["ce_power_law"], out["tokens_to_bar_if_slope_held"]
    if fit:
        lines.append(f"dCE ~ {fit['a']:.3g} * tokens^-{fit['b']:.3f} over {fit['points']} points; the bar "
                     f"{out['bar']} needs {'no decrease: not reachable on this slope' if need is None else f'{need:,.0f} tokens'}"
                     " if the slope held (a lower bound: the curve flattens)")
    return "\n".join(lines)


def record_shipped(which: str, label: str) -> dict:
    """Add the shipped SAE's own held-out record (its metrics.json, written by `eval`) to its
    heldout_curve.json as the point `label` (replacing a point of that name) and refit, so the card's
    curve ends at what ships, scored exactly as the card's headline figures."""
    from spectrascope.core.assets import SAES_DIR
    from spectrascope.core.train.trainer import PRESETS

    folder = SAES_DIR / PRESETS[which]["name"]
    m = json.loads((folder / "metrics.json").read_text())
    path = folder / "heldout_curve.json"
    curve = json.loads(path.read_text()) if path.exists() else {"which": which, "ce_seqs": m["ce_seqs"],
                                                                  "heldout_tokens": m["heldout_tokens"], "points": []}
    row = {"tokens_seen": m["train_tokens_seen"],
           **{k: m[k] for k in ("explained_variance", "explained_variance_without_massive", "dead_frac_heldout",
                                "ce_increase", "ce_increase_ci95")}, "point": label}
    points = sorted([p for p in curve["points"] if p["point"] != label] + [row], key=lambda p: p["tokens_seen"])
    fit = power_law([p["tokens_seen"] for p in points], [p["ce_increase"] for p in points])
    curve.update(points=points, ce_power_law=fit, bar=BARS[which], tokens_to_bar_if_slope_held=tokens_to_reach(fit, BARS[which]))
    path.write_text(json.dumps(curve, indent=1))
    return curve
