"""Feature labels that need no hub: promoted tokens, top snippets, and a Neuronpedia link.

The embedded SAEs ship `labels.json` (built by core/train/labels.py from the
held-out corpus). Any other SAE gets its promoted tokens computed on demand
through the model's unembedding and cached in memory; snippets need a corpus
pass and are only shown where precomputed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Neuronpedia ids of SAEs users are likely to load: (release, sae id) -> (model, source).
NEURONPEDIA = {
    ("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical"): ("gemma-2-2b", "12-gemmascope-res-16k"),
    ("gemma-scope-2b-pt-res-canonical", "layer_12/width_262k/canonical"): ("gemma-2-2b", "12-gemmascope-res-262k"),
}


def labels_folder(spec: Any) -> Path | None:
    """Where a shipped labels.json for this SAE would be: its own folder, if it has one."""
    if spec is None:
        return None
    if spec.kind == "embedded":
        from .assets import SAES_DIR

        return SAES_DIR / spec.name
    if spec.kind in ("local", "gemma_scope_folder"):
        return Path(spec.path).expanduser()
    return None


@dataclass(frozen=True)
class FeatureLabel:
    feature: int
    promoted: tuple[str, ...]  # tokens the decoder direction raises most
    snippets: tuple[tuple[float, str], ...] = ()  # (activation, text with [[max token]])
    max_act: float | None = None
    freq: float | None = None  # firing rate on held-out tokens
    url: str | None = None

    def marked_tokens(self) -> list[str]:
        """The max-activating token of each top snippet (the text inside [[...]]), unique, in order."""
        out: list[str] = []
        for _, text in self.snippets:
            # The marker is the last "[[" before "]]": the text itself may hold "[" ("[[[French]]]").
            end = text.find("]]")
            start = text.rfind("[[", 0, end) if end >= 0 else -1
            if 0 <= start < end:
                token = text[start + 2 : end].strip()
                if token and token not in out:
                    out.append(token)
        return out

    def short(self, n: int = 4) -> str:
        """A one-line label: where the feature fires most (from snippets) if known, else what it promotes."""
        if self.snippets:
            return "fires on: " + " · ".join(self.marked_tokens()[:n])
        return " · ".join(p.strip() or repr(p) for p in self.promoted[:n])


@dataclass
class FeatureLabels:
    """Labels for one SAE: precomputed where shipped, promoted tokens computed otherwise."""

    sae: Any
    unembed: Any = None  # (V, d) tensor, for on-demand promoted tokens
    final_norm_gain: Any = None
    softcap: float | None = None
    decode: Any = None  # token id -> text
    shipped: dict[int, dict] = field(default_factory=dict)
    neuronpedia: tuple[str, str] | None = None
    _computed: dict[int, FeatureLabel] = field(default_factory=dict)

    @classmethod
    def for_sae(cls, sae: Any, session: Any = None, folder: Path | None = None,
                spec: Any = None) -> "FeatureLabels":
        shipped: dict[int, dict] = {}
        if folder is not None and (folder / "labels.json").is_file():
            data = json.loads((folder / "labels.json").read_text())
            shipped = {int(lat["id"]): lat for lat in data.get("latents", [])}
        np_id = None
        if spec is not None and getattr(spec, "release", None):
            np_id = NEURONPEDIA.get((spec.release, spec.sae_id))
        labels = cls(sae=sae, shipped=shipped, neuronpedia=np_id)
        if session is not None:
            labels.unembed = session.unembedding()
            labels.softcap = session.model.final_logit_softcap
            labels.decode = session.piece
        return labels

    def get(self, feature: int) -> FeatureLabel:
        feature = int(feature)
        if not 0 <= feature < self.sae.cfg.d_sae:
            raise IndexError(f"Feature {feature} does not exist: this SAE has 0..{self.sae.cfg.d_sae - 1}.")
        url = None
        if self.neuronpedia:
            model, source = self.neuronpedia
            url = f"https://www.neuronpedia.org/{model}/{source}/{feature}"
        lat = self.shipped.get(feature)
        if lat is not None:
            return FeatureLabel(
                feature, tuple(lat.get("promoted", ())),
                tuple((float(s["act"]), str(s["text"])) for s in lat.get("snippets", ())),
                lat.get("max_act"), lat.get("freq"), url,
            )
        if feature not in self._computed:
            promoted: tuple[str, ...] = ()
            if self.unembed is not None:
                from .spectrum import promoted_tokens

                pairs = promoted_tokens(self.sae, feature, self.unembed, self.final_norm_gain, k=8,
                                        softcap=self.softcap)
                promoted = tuple(self.decode(i) if self.decode else str(i) for i, _ in pairs)
            self._computed[feature] = FeatureLabel(feature, promoted, url=url)
        return self._computed[feature]
