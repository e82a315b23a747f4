"""Corpus cleaning, dedupe and the by-document split on tiny strings."""

from spectrascope.core.train.corpus import Doc, clean_text, dedupe, is_heldout, split, untag_brown


def test_clean_text_strips_html_and_whitespace():
    s = "<strong>metropolitan France:</strong>  Western&nbsp;Europe<br>next\x07 line\n\n\n\nend"
    assert clean_text(s) == "metropolitan France: Western Europe\nnext line\n\nend"


def test_untag_brown():
    s = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n\n\tIt/pps ran/vbd ./."
    assert untag_brown(s) == 'The jury said " no evidence ".\n\nIt ran.'


def test_dedupe_normalises_case_and_punctuation_and_drops_short():
    docs = [Doc("a", "1", "Paris is the capital of France, a country."),
            Doc("b", "2", "paris is the capital of france   a country!"),
            Doc("c", "3", "too short"),
            Doc("d", "4", "Rome is the capital of Italy, another country.")]
    out = dedupe(docs, min_chars=20)
    assert [d.title for d in out] == ["1", "4"]


def test_split_is_by_document_and_deterministic():
    docs = [Doc("s", str(i), f"document number {i} with some text") for i in range(400)]
    train, held = split(docs, 0.1)
    assert len(train) + len(held) == 400 and 10 < len(held) < 80
    assert not {d.text for d in train} & {d.text for d in held}
    # Membership depends on the text only, not on order or on the other documents.
    train2, held2 = split(list(reversed(docs)), 0.1)
    assert {d.text for d in held} == {d.text for d in held2}
    assert all(is_heldout(d, 0.1) for d in held)
