"""The product check of the embedded SAEs: on each shipped concept set, the most selective
coarse and fine features, their firing rates, and whether their labels name the concept.

    python -m spectrascope.core.train concepts   # writes assets/saes/concept_sets.json

Selectivity is the Pairing pane's (max(0, 2 AUROC - 1) over per-prompt max activations, see
core/contrast.py); a label "names the concept" when one of the feature's max-activating
held-out tokens is a word of the set (core/concept_sets.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spectrascope.core.assets import SAES_DIR, atomic_write
from spectrascope.core.analysis.concept_sets import CONCEPT_SETS, ConceptSet

REPORT = SAES_DIR / "concept_sets.json"


def best_features(session: Any, cset: ConceptSet, top: int = 5) -> dict:
    """Set sizes, per role the `top` features by selectivity on `cset` with rates and label, and the
    Pairing verdict with its null model (the Pairing pane's own call)."""
    from spectrascope.core.analysis.contrast import load_prompts
    from spectrascope.core.analysis.pairing import analyse

    result = analyse(session, load_prompts(cset.concept), load_prompts(cset.neutral), labels=False)
    contrast = result.contrast
    rows_out: dict[str, list[dict]] = {}
    for role in contrast.roles:
        stats, labels = contrast.stats[role], session.labels[role]
        rows = []
        for f in stats.ranked(top):
            label = labels.get(f)
            fires_on = label.marked_tokens() if label else []
            rows.append({"feature": f, "selectivity": round(float(stats.selectivity[f]), 4),
                         "rate_concept": round(float(stats.rate_concept[f]), 4),
                         "rate_neutral": round(float(stats.rate_neutral[f]), 4),
                         "fires_on": fires_on, "names_concept": cset.names_concept(fires_on)})
        rows_out[role] = rows
    v = result.verdict
    return {"n_concept": contrast.n_concept, "n_neutral": contrast.n_neutral, "best": rows_out,
            "verdict": {"text": v.text, "go": v.go, "status": v.status, "withheld": list(v.withheld),
                        "anchor": v.anchor, "sub_features": list(v.sub_features),
                        "null_base_rate": v.null.base_rate if v.null is not None else None,
                        "permutation_p": v.permutation.p_value if v.permutation is not None else None,
                        "grid_go_share": v.grid.go_share if v.grid is not None else None},
            "confounds": list(result.confounds)}


def found(best: dict[str, list[dict]], min_selectivity: float = 0.8) -> dict | None:
    """The first (coarse before fine, by rank) feature at `min_selectivity` whose label names the concept."""
    for role, feats in best.items():
        for r in feats:
            if r["selectivity"] >= min_selectivity and r["names_concept"]:
                return {"role": role, **r}
    return None


def concept_report(session: Any) -> dict:
    sets = {}
    for name, cset in CONCEPT_SETS.items():
        sets[name] = best_features(session, cset)
        sets[name]["found"] = found(sets[name]["best"])
        print(f"[concepts] {name}: {sets[name]['found']}", flush=True)
    return {"saes": {role: session.sae_specs[role].name if session.sae_specs.get(role) else role
                     for role in session.saes},
            "definition": "top 5 features by selectivity = max(0, 2 AUROC - 1) on per-prompt max activations; "
                          "found = first with selectivity >= 0.8 whose max-activating held-out tokens include "
                          "a word of the concept", "sets": sets}


def write_concept_report(path: Path = REPORT) -> Path:
    from spectrascope.core.engine.session import Session

    session = Session.load("gemma-3-270m", device="cpu", dtype="float32")
    atomic_write(path, json.dumps(concept_report(session), indent=1, ensure_ascii=False))
    return path
