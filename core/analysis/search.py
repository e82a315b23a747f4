"""Find a feature: rank an SAE's features by how well they match words (by text) or by how strongly they
fire on chosen tokens relative to their usual activation (by example).

**By text.** Each SAE gets a word index, built once off the UI thread and cached on disk, over four fields
of every feature's label (core/engine/labels.py), each a sparse (terms x features) matrix of how much of
the field the term covers:

    explanation  a written explanation (a Neuronpedia export, `read_explanations`)   1 if the word is in it
    fires on     the firing token of each top snippet (the text inside [[...]])      share of the top snippets
    context      the rest of each top snippet                                        share of the top snippets
    promotes     the shipped promoted tokens                                         1 if one of them is the word

(only the top snippets: adding the labels' random and lower-activation firings was tried and halved the
"fires on" share of clear features such as the Japan ones while promoted-token noise stayed).

Words are runs of letters and digits, lowercased, with a few English endings cut (cities -> city,
cooking -> cook, Japanese -> japan). A query word matches a term exactly or by prefix either way
("japan" -> "japanese", "italy" -> "ital(ian)"). Per query word and field the best-matching term counts:

    score = sum over query words, sum over fields: weight(field) x match x coverage
    match = idf(word) exactly; 0.5 x min(idf(term), idf(word)) by prefix

with idf = ln((N + 1) / (df + 1)) + 1 over the N labelled features (a word every feature has counts
little; a rare prefix match such as "cookieparser" for "cook" counts no more than half of "cook").
Each hit keeps its matches (field, query word, term, coverage): the "why" shown beside it.

The promotes field is also scored at query time, through the unembedding, so SAEs that ship no
promoted tokens (Gemma Scope) are searchable too: each query word's tokens (as typed, lowercased and
capitalised, with and without a leading space, single tokens only) are scored against every feature's
decoder direction, standardised per feature (see `Promoter`); a z well out in the feature's own logit
distribution counts like a listed promoted token (the larger of the two is kept).

**By example.** The SAE codes of a prompt (from `Session.run`) at chosen positions, the strongest of them,
divided by each feature's usual maximum (`max_act` of its labels, else its maximum on the calibration
text): "how close to its strongest is it here". Always-on features (freq > DENSE_FREQ) are left out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from spectrascope.core.engine.labels import DENSE_FREQ, labels_folder
from spectrascope.core.lemma import stem  # noqa: F401 (search.stem: one stemmer for Find and the labels' lemmas)
from spectrascope.core.records import Record

Progress = Callable[[str, float | None], None]
INDEX_FORMAT = 3  # bump when the index layout or the word rules change: older cache files are misses
FIELDS = ("explanation", "fires on", "context", "promotes")
# A written explanation says what the feature is; the firing token is what it detects; the promoted tokens
# are what it writes (related, noisier); snippet context may be unrelated to the feature (a hint only).
WEIGHTS = {"explanation": 3.0, "fires on": 2.0, "context": 0.5, "promotes": 1.0}
PREFIX_MATCH = 0.5  # a prefix match counts half an exact one
PREFIX_MIN = 4  # prefix matching only for words (and terms) of at least this many letters
# The promoted z, as a share s = z / z_top of a random direction's top z (z_top = sqrt(2 ln V)), counts from
# s = 0.7 (on Gemma 3 270M's SAEs about a feature's 50th token: a handful of features reach it by chance)
# to 1 at s = 0.85 (about its 8th: where a listed promoted token sits), then on up to 1.5.
Z_FROM, Z_FULL, Z_CAP = 0.7, 0.85, 1.5
STOPWORDS = frozenset("a an and are as at be by for from in is it of on or that the this to was with".split())
_WORD = re.compile(r"[^\W_]+")


def _quiet(_msg: str, _frac: float | None = None) -> None:
    pass


# ---- words ---------------------------------------------------------------------------------------
def terms(text: str) -> list[tuple[str, str]]:
    """(stem, surface) of each word of `text`, stopwords left out."""
    return [(stem(w), w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def split_snippet(text: str) -> tuple[str, str]:
    """(the firing token inside [[...]], the rest of the snippet); the marker is the last "[[" before "]]"
    (the text may hold "[" itself), as FeatureLabel.marked_tokens reads it."""
    end = text.find("]]")
    start = text.rfind("[[", 0, end) if end >= 0 else -1
    if not 0 <= start < end:
        return "", text
    return text[start + 2 : end], text[:start] + " " + text[end + 2 :]


# ---- records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match(Record):
    """One reason a feature matched: a query word in a field (or, by example, its activation there)."""

    field: str  # one of FIELDS, "promotes (z)" (through the unembedding) or "example"
    word: str  # the query word ("" by example)
    term: str  # what it matched: an index word, a token piece, the example's tokens
    value: float  # coverage (share of top snippets, 1 for a listed word), z, or the activation
    score: float  # what it added to the hit's score


@dataclass(frozen=True)
class Hit(Record):
    role: str
    feature: int
    score: float
    label: str = ""
    freq: float | None = None  # firing rate on the labelling text, where known
    max_act: float | None = None  # its maximum activation there, where known
    why: str = ""
    matches: tuple[Match, ...] = ()
    url: str | None = None


def why_text(matches: Sequence[Match]) -> str:
    """The matches as one line: `fires on "japan" 3/3 · promotes " Japan" z 7.9`."""
    parts = []
    for m in matches:
        if m.field == "example":
            parts.append(f"act {m.value:.3g} on {m.term} = {m.score:.2f}x its usual max")
        elif m.field == "promotes (z)":
            parts.append(f"promotes {m.term!r} z {m.value:.1f}")
        elif m.field in ("fires on", "context"):
            parts.append(f"{m.field} \"{m.term}\" {m.value:.0%}")
        else:
            parts.append(f"{m.field} \"{m.term}\"")
    return " · ".join(parts)


# ---- explanations (a Neuronpedia export) -------------------------------------------------------------------
@dataclass(frozen=True)
class Explanations:
    descriptions: Mapping[int, str]  # feature -> its explanations, joined with " | "
    source: tuple[str, str] | None = None  # Neuronpedia's (modelId, layer) of the export, where it says

    def digest(self) -> str:
        blob = json.dumps(sorted(self.descriptions.items())).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def read_explanations(path: str | Path) -> Explanations:
    """A Neuronpedia feature-explanations export: a JSON list (or JSON lines, gzipped or not) of objects
    with "index" and "description" ("modelId" and "layer" name the SAE). ValueError with one line if not."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"Cannot read the labels file {path}: {exc.strerror or exc}.") from None
    try:
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON or JSON lines: {exc}.") from None
    if isinstance(data, dict):
        data = data.get("explanations", [data])
    out: dict[int, list[str]] = {}
    source = None
    for i, item in enumerate(data if isinstance(data, list) else []):
        try:
            index, text = int(item["index"]), str(item.get("description") or "").strip()
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: item {i} has no whole-number \"index\" (Neuronpedia's explanation "
                             "export: objects with \"index\" and \"description\").") from None
        if text and text not in out.setdefault(index, []):
            out[index].append(text)
        if source is None and item.get("modelId") and item.get("layer"):
            source = (str(item["modelId"]), str(item["layer"]))
    if not out:
        raise ValueError(f"{path} holds no explanations (expected objects with \"index\" and \"description\").")
    return Explanations({k: " | ".join(v) for k, v in out.items()}, source)


# ---- the word index ---------------------------------------------------------------------------------------
@dataclass
class TextIndex:
    """Sorted terms (stems), one sparse (terms x features) coverage matrix per field, idf per term."""

    vocab: np.ndarray  # (T,) str: the terms (stems, what "why" shows), sorted
    fields: dict[str, Any]  # field -> scipy.sparse.csr_matrix (T, F) float32
    idf: np.ndarray  # (T,) float32

    @classmethod
    def build(cls, latents: Mapping[int, Mapping], explanations: Mapping[int, str], n_features: int) -> TextIndex:
        import scipy.sparse as sp

        ids: dict[str, int] = {}
        coo: dict[str, tuple[list[int], list[int], list[float]]] = {f: ([], [], []) for f in FIELDS}

        def add(name: str, feature: int, covered: Mapping[str, float]) -> None:
            rows, cols, vals = coo[name]
            rows.extend(covered), cols.extend([feature] * len(covered)), vals.extend(covered.values())

        def term_ids(text: str) -> set[int]:
            out = set()
            for s, _ in terms(text):
                out.add(ids.setdefault(s, len(ids)))
            return out

        for feature, lat in latents.items():
            snippets = [str(s["text"]) for s in lat.get("snippets", ())]
            fires, context = Counter(), Counter()
            for text in snippets:
                marked, rest = split_snippet(text)
                hit = term_ids(marked)
                fires.update(hit)
                context.update(term_ids(rest) - hit)
            if snippets:
                add("fires on", feature, {t: c / len(snippets) for t, c in fires.items()})
                add("context", feature, {t: c / len(snippets) for t, c in context.items()})
            add("promotes", feature, dict.fromkeys(set().union(*map(term_ids, lat.get("promoted", ()))), 1.0))
        for feature, text in explanations.items():
            if 0 <= feature < n_features:
                add("explanation", feature, dict.fromkeys(term_ids(text), 1.0))
        # Terms sorted, so a prefix is one searchsorted range.
        order = np.argsort(np.array(list(ids), dtype=str), kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        shape = (len(order), n_features)
        mats = {f: sp.csr_matrix((np.asarray(v, np.float32), (rank[np.asarray(r, np.int64)], np.asarray(c, np.int64))),
                                 shape=shape) for f, (r, c, v) in coo.items()}
        present = sum((m != 0).astype(np.float32) for m in mats.values())
        df = np.asarray((present > 0).sum(axis=1)).ravel()
        docs = int((np.asarray(present.sum(axis=0)).ravel() > 0).sum())
        idf = (np.log((docs + 1) / (df + 1)) + 1).astype(np.float32)
        return cls(np.array(list(ids), dtype=str)[order], mats, idf)

    @property
    def n_features(self) -> int:
        return self.fields[FIELDS[0]].shape[1]

    def lookup(self, term: str) -> int | None:
        i = int(np.searchsorted(self.vocab, term))
        return i if i < len(self.vocab) and self.vocab[i] == term else None

    def matches(self, word_stem: str, limit: int = 256) -> list[tuple[int, float]]:
        """(term row, weight) for a query stem: its idf for an exact match; for a prefix match either way,
        PREFIX_MATCH x the smaller of the term's idf and the word's own (a rare junk term such as
        "cookieparser" must not outweigh "cook" itself)."""
        exact = self.lookup(word_stem)
        out: dict[int, float] = {}
        if len(word_stem) >= PREFIX_MIN:  # longer terms starting with the word: japan -> japanese
            lo = int(np.searchsorted(self.vocab, word_stem, "left"))
            hi = int(np.searchsorted(self.vocab, word_stem + "\U0010ffff", "left"))
            rows = list(range(lo, min(hi, lo + limit)))
            for cut in (1, 2):  # terms the word starts with, at most two letters shorter: italy -> ital
                if len(word_stem) - cut >= PREFIX_MIN and (row := self.lookup(word_stem[:-cut])) is not None:
                    rows.append(row)
            cap = self.idf[exact] if exact is not None else np.inf
            out.update({r: PREFIX_MATCH * float(min(self.idf[r], cap)) for r in rows})
        if exact is not None:
            out[exact] = float(self.idf[exact])
        return list(out.items())


# ---- the promoted-token score at query time ------------------------------------------------------------------
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


# ---- one SAE's search index (built once, cached in memory and on disk) -----------------------------------------
@dataclass
class SearchIndex:
    role: str
    text: TextIndex
    max_act: np.ndarray  # (F,) float32, NaN where the labels do not say
    freq: np.ndarray  # (F,) float32, NaN where the labels do not say
    promoter: Promoter | None
    explanations: Mapping[int, str] = field(default_factory=dict)
    calibration: tuple[np.ndarray, np.ndarray] | None = None  # (max, freq) on CALIBRATION_TEXT, when needed

    @property
    def n_features(self) -> int:
        return self.text.n_features

    def save(self, path: Path) -> None:
        import io

        from spectrascope.core.assets import atomic_write

        arrays = {"vocab": self.text.vocab, "idf": self.text.idf,
                  "max_act": self.max_act, "freq": self.freq,
                  "explained": np.array(sorted(self.explanations), np.int64),
                  "explanation_text": np.array([self.explanations[k] for k in sorted(self.explanations)], dtype=str)}
        for i, name in enumerate(FIELDS):
            m = self.text.fields[name]
            arrays |= {f"f{i}_data": m.data, f"f{i}_indices": m.indices, f"f{i}_indptr": m.indptr}
        if self.promoter is not None:
            arrays |= {"mean_u": self.promoter.mean_u, "std": self.promoter.std,
                       "z_top": np.array(self.promoter.z_top)}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, role: str) -> SearchIndex:
        import scipy.sparse as sp

        with np.load(path, allow_pickle=False) as z:
            shape = (len(z["vocab"]), len(z["max_act"]))
            mats = {name: sp.csr_matrix((z[f"f{i}_data"], z[f"f{i}_indices"], z[f"f{i}_indptr"]), shape=shape)
                    for i, name in enumerate(FIELDS)}
            promoter = Promoter(z["mean_u"], z["std"], float(z["z_top"])) if "std" in z else None
            return cls(role, TextIndex(z["vocab"], mats, z["idf"]), z["max_act"], z["freq"], promoter,
                       dict(zip(z["explained"].tolist(), z["explanation_text"].tolist())))


_memory: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # SAE -> {labels/explanations key: SearchIndex}
_building: dict[int, threading.Lock] = {}
_guard = threading.Lock()


def _digest(t: Any, full: bool = True) -> str:
    """The tensor's shape, dtype and a strided sample (and, `full`, its sums: contrast's digest). The
    unembedding of a named model needs no full pass (0.7 s at 262K x 640 on a CPU)."""
    import torch
    from spectrascope.core.analysis.contrast import _tensor_digest

    h = hashlib.sha256()
    if full:
        _tensor_digest(h, t)
    else:
        h.update(f"{tuple(t.shape)} {t.dtype}".encode())
        h.update(t.detach()[:: max(1, t.shape[0] // 4096)].to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _labels_digest(session: Any, role: str) -> str:
    """The shipped labels file's hash (the labels as loaded, where there is no file)."""
    from spectrascope.core.engine.labels import LABELS_FILE

    folder = labels_folder(session.sae_specs.get(role)) if hasattr(session, "sae_specs") else None
    for name in (LABELS_FILE, "labels.json"):
        if folder is not None and (folder / name).is_file():
            return hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
    shipped = session.labels[role].shipped if role in session.labels else {}
    return hashlib.sha256(json.dumps(shipped, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(session: Any, role: str, explanations: Explanations | None) -> Path:
    """Where this SAE's index is kept: keyed by the SAE's weights and spec, its labels file, the
    explanations, and the model's unembedding (the promoted-token standardiser depends on it)."""
    from spectrascope.core.engine.embedded import cache_root

    sae, spec = session.saes[role], (getattr(session, "sae_specs", {}) or {}).get(role)
    labels = session.labels.get(role)
    gain = getattr(labels, "final_norm_gain", None)
    key = {"format": INDEX_FORMAT, "sae": _digest(sae.W_dec), "spec": getattr(spec, "label", None),
           "hook": sae.cfg.metadata.hook_name, "labels": _labels_digest(session, role),
           "explanations": explanations.digest() if explanations else None, "model": session.model.spec.name,
           "unembed": _digest(session.unembedding(), full=False), "gain": None if gain is None else _digest(gain)}
    blob = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root() / "search" / f"{blob}.npz"


def label_stats(latents: Mapping[int, Mapping], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(max_act, freq) per feature from shipped labels; NaN where a feature has none."""
    max_act, freq = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
    for f, lat in latents.items():
        if 0 <= f < n:
            max_act[f] = np.nan if lat.get("max_act") is None else lat["max_act"]
            freq[f] = np.nan if lat.get("freq") is None else lat["freq"]
    return max_act, freq


def index_for(session: Any, role: str, explanations: Explanations | None = None,
              progress: Progress = _quiet, use_disk: bool = True) -> SearchIndex:
    """The role's search index: from memory, else the disk cache, else built (seconds for 32K features;
    see bench/bench_search.py for 262K). One build at a time per SAE; a second caller waits for it.
    Not cancellable: a half-built index would only be built again."""
    sae = session.saes[role]
    labels = session.labels[role]
    mem_key = (id(labels), explanations.digest() if explanations else None)
    with _guard:
        lock = _building.setdefault(id(sae), threading.Lock())
    with lock:
        found = _memory.setdefault(sae, {}).get(mem_key)
        if found is not None:
            return found
        path = cache_path(session, role, explanations) if use_disk else None
        if path is not None and path.is_file():
            try:
                index = SearchIndex.load(path, role)
            except (OSError, ValueError, KeyError):
                index = None  # a damaged cache file: built again below
            if index is not None and index.n_features == sae.cfg.d_sae:
                _memory[sae][mem_key] = index
                return index
        n = int(sae.cfg.d_sae)
        progress(f"indexing the {role} SAE's labels ({n:,} features)", None)
        text = TextIndex.build(labels.shipped, explanations.descriptions if explanations else {}, n)
        promoter = None
        try:
            unembed = session.unembedding()
        except (AttributeError, NotImplementedError):
            unembed = None
        if unembed is not None:
            progress(f"standardising the {role} SAE's promoted-token score", 0.0)
            promoter = Promoter.build(session.decoder_directions(role), unembed, labels.final_norm_gain,
                                      lambda text, frac: progress(f"{role}: {text}", frac))
        index = SearchIndex(role, text, *label_stats(labels.shipped, n), promoter,
                            dict(explanations.descriptions) if explanations else {})
        if path is not None:
            try:
                index.save(path)
            except OSError:
                pass  # a read-only cache: the index still works, it is built again next session
        _memory[sae][mem_key] = index
        return index


# ---- by text ------------------------------------------------------------------------------------------------
def query_words(query: str) -> list[str]:
    """The query's words (stopwords left out, each once)."""
    return list(dict.fromkeys(w for _, w in terms(query)))


@dataclass
class WordMatch:
    """One query word against one SAE: per field the best match value of every feature (idf x match x
    coverage) and the matched rows, and the z of the word's tokens (None without an unembedding)."""

    word: str
    rows: np.ndarray  # matched term rows
    best: dict[str, np.ndarray]  # field -> (F,)
    sub: dict[str, Any]  # field -> csc (rows, F): what `best` is the column max of
    z: np.ndarray | None = None  # (F, len(ids))
    ids: tuple[int, ...] = ()


def text_scores(session: Any, index: SearchIndex, words: Sequence[str]) -> tuple[np.ndarray, list[WordMatch]]:
    """Every feature's score for `words`, and each word's matches (what "why" reads)."""
    text = index.text
    found = []
    for word in words:
        s = stem(word)
        pairs = text.matches(s)
        rows = np.array([r for r, _ in pairs], np.int64)
        factor = np.array([f for _, f in pairs], np.float32)
        best, sub = {}, {}
        for name in FIELDS:
            m = text.fields[name][rows].multiply(factor[:, None]).tocsc() if len(rows) else None
            best[name] = (np.asarray(m.max(axis=0).todense()).ravel() if m is not None and m.nnz
                          else np.zeros(text.n_features)).astype(np.float32)
            sub[name] = m
        found.append(WordMatch(word, rows, best, sub))
    if index.promoter is not None:
        _promoted_z(session, index, found)
    total = np.zeros(text.n_features, np.float32)
    for m in found:
        listed = m.best["promotes"]
        m.best["promotes"] = np.maximum(listed, m.best.get("promotes (z)", 0))
        m.best["promotes listed"] = listed
        total += sum(WEIGHTS[n] * m.best[n] for n in FIELDS)
    return total, found


def _promoted_z(session: Any, index: SearchIndex, found: list[WordMatch]) -> None:
    """Each word's promoted-token value through the unembedding: one pass over the decoder for every
    word's tokens together (the pass reads the whole decoder: its cost, bench/bench_search.py)."""
    ids = {m.word: query_tokens(session, m.word) for m in found}
    flat = [i for m in found for i in ids[m.word]]
    if not flat:
        return
    labels = session.labels[index.role]
    z = index.promoter.z(session.decoder_directions(index.role), session.unembedding(), flat, labels.final_norm_gain)
    max_idf = float(index.text.idf.max()) if len(index.text.idf) else 1.0
    start = 0
    for m in found:
        k = len(ids[m.word])
        if k == 0:
            continue
        m.z, m.ids, start = z[:, start : start + k], tuple(ids[m.word]), start + k
        exact = index.text.lookup(stem(m.word))
        idf = float(index.text.idf[exact]) if exact is not None else max_idf  # unseen word: as rare as any
        strength = m.z.max(axis=1) / index.promoter.z_top
        m.best["promotes (z)"] = (np.clip((strength - Z_FROM) / (Z_FULL - Z_FROM), 0, Z_CAP) * idf
                                  ).astype(np.float32)


def explain(session: Any, index: SearchIndex, feature: int, found: Sequence[WordMatch]) -> tuple[Match, ...]:
    """The matches behind one feature's score, strongest first."""
    out = []
    for m in found:
        by_z = m.z is not None and m.best["promotes (z)"][feature] > m.best["promotes listed"][feature]
        for name in FIELDS:
            if m.best[name][feature] <= 0 or m.sub[name] is None or (name == "promotes" and by_z):
                continue
            row = int(m.rows[int(m.sub[name][:, feature].toarray().ravel().argmax())])
            coverage = float(index.text.fields[name][row, feature])
            out.append(Match(name, m.word, str(index.text.vocab[row]), round(coverage, 4),
                             round(WEIGHTS[name] * float(m.best[name][feature]), 4)))
        if by_z:
            j = int(m.z[feature].argmax())
            out.append(Match("promotes (z)", m.word, session.piece(m.ids[j]), round(float(m.z[feature, j]), 3),
                             round(WEIGHTS["promotes"] * float(m.best["promotes (z)"][feature]), 4)))
    return tuple(sorted(out, key=lambda x: -x.score))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, largest first (ties: lower index first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]


def find_text(session: Any, query: str, roles: Sequence[str], top: int = 20,
              explanations: Mapping[str, Explanations] | None = None, cancel: Any = None,
              progress: Progress = _quiet) -> list[Hit]:
    """The `top` features of `roles` whose labels, snippets and promoted tokens best match `query`."""
    from spectrascope.core.engine.values import Cancelled

    words = query_words(query)
    if not words:
        raise ValueError(f"Nothing to search for in {query!r}: type a word (common words like 'the' are skipped).")
    ranked: list[tuple[float, str, int, SearchIndex, list[WordMatch]]] = []
    for role in roles:
        index = index_for(session, role, (explanations or {}).get(role), progress)
        if cancel is not None and cancel.is_set():
            raise Cancelled
        scores, found = text_scores(session, index, words)
        ranked += [(float(scores[f]), role, int(f), index, found) for f in _top(scores, top)]
    ranked.sort(key=lambda h: (-h[0], h[1], h[2]))
    return _labelled(session, [(_hit(session, index, role, f, score, explain(session, index, f, found)), index)
                               for score, role, f, index, found in ranked[:top]])


def _hit(session: Any, index: SearchIndex, role: str, feature: int, score: float, matches: tuple[Match, ...],
         basis: str = "labels") -> Hit:
    max_act, freq = float(index.max_act[feature]), float(index.freq[feature])
    why = why_text(matches) + ("" if basis == "labels" else f" (max from the {basis})")
    return Hit(role, feature, round(score, 4), "", None if math.isnan(freq) else freq,
               None if math.isnan(max_act) else max_act, why, matches, session.labels[role].url(feature))


def _labelled(session: Any, hits: Sequence[tuple[Hit, SearchIndex]]) -> list[Hit]:
    """The hits with their labels: the explanation where there is one, else the label's one-liner
    (promoted tokens computed now, one batch per SAE, where none were shipped)."""
    from dataclasses import replace

    wanted: dict[str, list[int]] = {}
    for h, _ in hits:
        wanted.setdefault(h.role, []).append(h.feature)
    labels = {role: session.labels[role].compute(features) for role, features in wanted.items()}
    return [replace(h, label=index.explanations.get(h.feature) or labels[h.role][h.feature].short())
            for h, index in hits]


# ---- by example ----------------------------------------------------------------------------------------------
def example_run(session: Any, prompt: str, cancel: Any = None) -> Any:
    """The SAE codes of `prompt`, through the session (its own request slot: the prompt's cache stays)."""
    from spectrascope.core.engine.values import Request

    return session.run(Request(prompt, layers=(), logits=False, slot="find"), cancel)


def usual_max(session: Any, index: SearchIndex, cancel: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(max_act, freq, where from) per feature: the labels' where they say, else measured once on the
    calibration text (features silent there take the SAE's median max: nothing better is known)."""
    if not np.isnan(index.max_act).all():
        return np.nan_to_num(index.max_act, nan=np.nanmedian(index.max_act)), np.nan_to_num(index.freq), "labels"
    if index.calibration is None:
        from spectrascope.core.engine.values import CALIBRATION_TEXT

        result = example_run(session, CALIBRATION_TEXT, cancel)
        codes = result.spectra[index.role].codes[result.bos:].numpy()
        top = codes.max(axis=0)
        fired = top[top > 0]
        index.calibration = (np.where(top > 0, top, np.median(fired) if len(fired) else 1.0).astype(np.float32),
                             (codes > 0).mean(axis=0).astype(np.float32))
    return (*index.calibration, "calibration text")


def example_scores(session: Any, index: SearchIndex, codes: Any,
                   cancel: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(score, activation, peak row, where the max is from) per feature: its strongest activation over the
    chosen positions (`codes`, (P, F)) divided by its usual max; 0 for always-on features. The strongest,
    not the mean: a phrase's Japan feature fires on "Japan" alone, and a mean over the phrase would let
    features that fire a little on every token win instead."""
    codes = np.asarray(codes, np.float32).reshape(-1, index.n_features)
    peak = codes.argmax(axis=0)
    act = codes[peak, np.arange(codes.shape[1])]
    max_act, freq, basis = usual_max(session, index, cancel)
    score = np.where((act > 0) & ~(freq > DENSE_FREQ), act / np.maximum(max_act, 1e-6), 0.0)
    return score.astype(np.float32), act, peak, basis


def example_positions(result: Any, positions: Iterable[int]) -> tuple[int, ...]:
    """The positions a by-example search reads: the given ones, else every token but BOS.
    ValueError for a position outside the prompt."""
    n = len(result.tokens)
    for p in positions:
        if not -n <= p < n:
            raise ValueError(f"Token {p} is outside the example (0..{n - 1}).")
    return tuple(sorted({p % n for p in positions})) or tuple(range(result.bos, n)) or (0,)


def find_example(session: Any, result: Any, positions: Sequence[int], roles: Sequence[str], top: int = 20,
                 cancel: Any = None, progress: Progress = _quiet) -> list[Hit]:
    """The `top` features most active at `positions` of `result` (a Session.run Result) relative to
    their usual max, always-on ones left out."""
    chosen = list(example_positions(result, positions))
    ranked = []
    for role in roles:
        index = index_for(session, role, None, progress)
        score, act, peak, basis = example_scores(session, index, result.spectra[role].codes[chosen], cancel)
        for f in _top(score, top):
            where = f"{result.tokens[chosen[peak[f]]].text!r} (token {chosen[peak[f]]})"
            m = Match("example", "", where, round(float(act[f]), 4), round(float(score[f]), 4))
            ranked.append((_hit(session, index, role, int(f), float(score[f]), (m,), basis), index))
    ranked.sort(key=lambda h: (-h[0].score, h[0].role, h[0].feature))
    return _labelled(session, ranked[:top])
