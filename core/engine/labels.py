"""Feature labels that need no hub: promoted tokens, top snippets, and a Neuronpedia link.

The embedded SAEs ship `labels.json.gz` (built by core/train/labels.py from the
held-out corpus). Any other SAE gets its promoted tokens computed on demand
through the model's unembedding, in batches, and cached in memory; snippets need
a corpus pass and are only shown where precomputed.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

DENSE_FREQ = 0.2  # features firing on more than this share of held-out tokens are "always on"
LABELS_FILE = "labels.json.gz"  # gzip of the JSON; a plain labels.json is read too


def read_labels_file(folder: Path) -> dict | None:
    """The shipped labels of an SAE folder (labels.json.gz, else labels.json), or None."""
    import gzip

    folder = Path(folder)
    if (folder / LABELS_FILE).is_file():
        return json.loads(gzip.decompress((folder / LABELS_FILE).read_bytes()))
    if (folder / "labels.json").is_file():
        return json.loads((folder / "labels.json").read_text())
    return None


def labels_folder(spec: Any) -> Path | None:
    """Where a shipped labels.json for this SAE would be: its own folder, if it has one."""
    if spec is None:
        return None
    if spec.kind == "embedded":
        from spectrascope.core.assets import SAES_DIR

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
    freq: float | None = None  # firing rate on the labelling text
    url: str | None = None
    random_snippets: tuple[tuple[float, str], ...] = ()  # a uniform sample of its firings, same form
    density: tuple[int, ...] = ()  # nonzero activations per log10 bin (labels.json's density_bins)
    range_snippets: tuple[tuple[float, str], ...] = ()  # firings from lower activation bins, lowest first

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

    # ---- labels v2: the top contexts' firing tokens, how consistent they are, and how often it fires ----
    def firing(self) -> list[tuple[str, str, float]]:
        """(firing token as shown, its lemma, activation) of each top snippet, strongest first."""
        out = []
        for act, text in self.snippets:
            token = marked(text)
            if token is not None:
                out.append((shown(token), lemma(token), act))
        return out

    def consistency(self) -> tuple[str, float, int] | None:
        """(the most common lemma's first form, its share of the top contexts, how many contexts), None
        without snippets. Ties go to the lemma with more activation."""
        fired = self.firing()
        if not fired:
            return None
        count: dict[str, int] = {}
        mass: dict[str, float] = {}
        for _, lem, act in fired:
            count[lem] = count.get(lem, 0) + 1
            mass[lem] = mass.get(lem, 0.0) + act
        best = max(count, key=lambda k: (count[k], mass[k]))
        return next(form for form, lem, _ in fired if lem == best), count[best] / len(fired), len(fired)

    def text(self, n: int = 4) -> str:
        """The v2 one-line label. With snippets: "fires on: France (3/3 · 0.12% of tokens)" when one
        lemma has most of the top contexts, else "mixed: a · b · c (1/3 · ...)"; never blank. Without:
        the promoted tokens."""
        found = self.consistency()
        if found is None:
            return self.short(n)
        form, share, total = found
        forms = list(dict.fromkeys(f for f, _, _ in self.firing()))
        head = f"fires on: {form}" if share >= CONSISTENT else "mixed: " + " · ".join(forms[:n])
        density = "" if self.freq is None else f" · {density_text(self.freq)}"
        return f"{head} ({round(share * total)}/{total}{density})"

    def context(self, width: int = 48) -> str:
        """The top snippet on one line, cut to about `width` characters around its firing token, which
        is marked as [token]; "" without snippets."""
        if not self.snippets:
            return ""
        text = self.snippets[0][1]
        end = text.find("]]")
        start = text.rfind("[[", 0, end) if end >= 0 else -1
        if not 0 <= start < end:
            return " ".join(text.split())[:width]
        raw = text[start + 2 : end]
        left, token, right = text[:start] + (" " if raw[:1] == " " else ""), shown(raw), text[end + 2 :]
        room = max(0, width - len(token) - 2)
        left = left[-(room * 2 // 3):] if room else ""
        right = right[: max(0, room - len(left))]
        return " ".join(f"{left}[{token}]{right}".split())


PENDING = "…"  # what a label shows while its promoted tokens are being computed
CONSISTENT = 0.6  # a label names one token when its lemma has at least this share of the top contexts
ALWAYS_ON_PROMPTS = 0.9  # a latent firing on this share of all prompts of a contrast run is left out of rankings


def marked(text: str) -> str | None:
    """The firing token of a snippet (inside [[...]]: the last "[[" before "]]", since the text may hold
    "[" itself), as it was decoded; None when the snippet has no marker."""
    end = text.find("]]")
    start = text.rfind("[[", 0, end) if end >= 0 else -1
    return text[start + 2 : end] if 0 <= start < end else None


def shown(token: str) -> str:
    """A firing token as a label shows it: stripped, a whitespace-only one made visible (never blank)."""
    from spectrascope.core.text import visible

    return token.strip() or visible(token, 8) or "∅"


def lemma(token: str) -> str:
    """What top contexts are counted by: lowercased, a possessive 's and simple inflections cut (search's
    stem: cities -> city, French stays french, Japanese -> japan); a whitespace token is its visible form."""
    from spectrascope.core.lemma import stem  # one stemmer for labels and Find

    word = shown(token).lower()
    for suffix in ("'s", "’s"):
        if word.endswith(suffix) and len(word) > len(suffix):
            word = word[: -len(suffix)]
    return stem(word)


def density_text(freq: float) -> str:
    """A firing rate as the label says it: 0.12% of tokens."""
    pct = 100 * freq
    return f"{pct:.0f}% of tokens" if pct >= 10 else f"{pct:.2g}% of tokens" if pct >= 0.01 or pct == 0 else (
        f"{pct:.1e}% of tokens")


@dataclass
class FeatureLabels:
    """Labels for one SAE: precomputed where shipped, promoted tokens computed otherwise.

    `compute` does the work: one batched logit-lens call for every feature it is given that is
    not known yet; it can take seconds at 262K features x 256K tokens, so the UI calls it from a
    worker and draws `known` (never a matmul) meanwhile. Computed labels are kept in an LRU
    (this object belongs to one SAE, so features are the key); the unembedding is converted
    for the lens at most once (`lens_unembedding`).
    """

    sae: Any
    unembed: Any = None  # (V, d) tensor, for on-demand promoted tokens
    final_norm_gain: Any = None
    softcap: float | None = None
    decode: Any = None  # token id -> text
    shipped: dict[int, dict] = field(default_factory=dict)
    neuronpedia: tuple[str, str] | None = None
    max_cached: int = 65_536
    _computed: OrderedDict[int, FeatureLabel] = field(default_factory=OrderedDict)
    _lens: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # guards _computed (UI thread vs worker)
    _computing: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_sae(cls, sae: Any, session: Any = None, folder: Path | None = None,
                spec: Any = None) -> "FeatureLabels":
        data = read_labels_file(folder) if folder is not None else None
        shipped = {int(lat["id"]): lat for lat in data.get("latents", [])} if data else {}
        from spectrascope.core.engine.saes import neuronpedia_id  # from sae-lens' release list, offline

        labels = cls(sae=sae, shipped=shipped, neuronpedia=neuronpedia_id(spec))
        if session is not None:
            labels.unembed = session.unembedding()
            labels.softcap = getattr(session.model, "final_logit_softcap", None)
            labels.decode = session.piece
        return labels

    def _check(self, feature: int) -> int:
        feature = int(feature)
        if not 0 <= feature < self.sae.cfg.d_sae:
            raise IndexError(f"Feature {feature} does not exist: this SAE has 0..{self.sae.cfg.d_sae - 1}.")
        return feature

    def url(self, feature: int) -> str | None:
        """The feature's Neuronpedia page, where the SAE is one Neuronpedia hosts."""
        base = self.url_base()
        return f"{base}/{feature}" if base else None

    def url_base(self) -> str | None:
        """Neuronpedia's address of this SAE (a feature's page is base/<id>), None where it has none."""
        if not self.neuronpedia:
            return None
        model, source = self.neuronpedia
        return f"https://www.neuronpedia.org/{model}/{source}"

    def known(self, feature: int) -> FeatureLabel | None:
        """The label if it needs no computing (shipped, computed before, or nothing to compute it
        with), else None. Cheap: safe on the UI thread."""
        feature = self._check(feature)
        lat = self.shipped.get(feature)
        if lat is not None:
            return FeatureLabel(
                feature, tuple(lat.get("promoted", ())),
                tuple((float(s["act"]), str(s["text"])) for s in lat.get("snippets", ())),
                lat.get("max_act"), lat.get("freq"), self.url(feature),
                tuple((float(s["act"]), str(s["text"])) for s in lat.get("random_snippets", ())),
                tuple(int(c) for c in lat.get("density", ())),
                tuple((float(s["act"]), str(s["text"])) for s in lat.get("range_snippets", ())),
            )
        if self.unembed is None:
            return FeatureLabel(feature, (), url=self.url(feature))
        with self._lock:
            label = self._computed.get(feature)
            if label is not None:
                self._computed.move_to_end(feature)
            return label

    def compute(self, features: Sequence[int]) -> dict[int, FeatureLabel]:
        """Labels of `features`, the unknown ones in one batched call. Thread-safe; slow at Gemma
        Scope sizes (call it off the UI thread)."""
        from spectrascope.core.engine.codes import lens_unembedding, promoted_tokens_batch

        with self._computing:  # one batch at a time: a second caller finds the first one's labels
            out = {f: self.known(f) for f in dict.fromkeys(int(f) for f in features)}
            todo = [f for f, label in out.items() if label is None]
            if not todo:
                return out
            if self._lens is None:
                self._lens = lens_unembedding(self.unembed)  # once per SAE (a no-op for fp32 and bf16)
            directions = self.sae.W_dec.detach()[todo]  # (n, d)
            if self.final_norm_gain is not None:
                directions = directions * self.final_norm_gain.to(directions)
            ids, _ = promoted_tokens_batch(directions, self._lens, top=8, softcap=self.softcap)
            with self._lock:
                for f, row in zip(todo, ids.tolist()):
                    promoted = tuple(self.decode(i) if self.decode else str(i) for i in row)
                    out[f] = self._computed[f] = FeatureLabel(f, promoted, url=self.url(f))
                while len(self._computed) > self.max_cached:
                    self._computed.popitem(last=False)
        return out

    def get(self, feature: int) -> FeatureLabel:
        """One feature's label, computed now if needed (CLI, tests; the UI uses `known` + `compute`)."""
        return self.compute([feature])[int(feature)]


def compute_labels(labels: Mapping[str, FeatureLabels], wanted: Mapping[str, Sequence[int]]) -> None:
    """Fill the label caches of several SAEs: one batched call per role (the UI's label worker)."""
    for role, features in wanted.items():
        if role in labels and features:
            labels[role].compute(features)
