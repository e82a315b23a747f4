"""Matched neutral sets (issue 34, item 6): a concept prompt's twin differs from it only in the enriched
words, each swapped for the same column of another row of its same-kind table."""

from __future__ import annotations

import re

import pytest

from spectrascope.core.analysis.contrast import PromptSetError, load_prompts
from spectrascope.core.analysis.matched_neutral import Table, load_tables, match_neutral, matched_path, write_matched
from spectrascope.core.assets import PROMPTS_DIR

TABLES = [Table("country", ("country", "adjective", "capital"),
                (("France", "French", "Paris"), ("Spain", "Spanish", "Madrid"), ("Peru", "Peruvian", "Lima"),
                 ("Chad", "Chadian", "N'Djamena"), ("Mexico", "Mexican", "Mexico City"))),
          Table("topic", ("field", "tool"), (("music", "guitar"), ("cooking", "oven"), ("sailing", "boat")))]
BACKGROUND = ["The weather was mild on the coast.", "A river runs through the old town.",
              "People walk their dogs in the park.", "Spain has long summers.", "The market opens early."] * 8


def mask(text: str, rows, tables=TABLES) -> str:
    """`text` with every cell of `rows` replaced by <table:column>, longest cells first."""
    cells = sorted(((cell, f"<{t.name}:{c}>") for t in tables for row in t.rows if row in rows
                    for c, cell in enumerate(row)), key=lambda x: -len(x[0]))
    for cell, tag in cells:
        text = re.sub(rf"(?<![\w']){re.escape(cell)}(?!\w)", tag, text, flags=0 if cell[0].isupper() else re.I)
    return text


def test_only_the_enriched_words_change_each_for_its_own_column_of_another_row():
    concept = [f"In {w}, {x} food is famous." for w, x in [("France", "French")] * 20] + \
              ["Paris is the capital of France."] * 10 + ["The French love music and the guitar."] * 30
    m = match_neutral(concept, TABLES, BACKGROUND, seed=1)
    assert [r for _, r in m.rows] == ["France", "music"] and m.dropped == 0 and len(m.prompts) == 60
    concept_cells = {"France", "French", "Paris", "music", "guitar"}
    concept_rows = [TABLES[0].rows[0], TABLES[1].rows[0]]
    for src, twin in zip((concept[i] for i in m.source), m.prompts):
        # Each concept cell masked by its column in the prompt, each other row's cell in its twin: the rest
        # is the same text, so only enriched words changed, each into its own column.
        assert mask(src, concept_rows) == mask(twin, [r for t in TABLES for r in t.rows if r not in concept_rows])
        assert src != twin and not concept_cells & set(re.findall(r"\w+", twin.lower()) + re.findall(r"\w+", twin))
    # One other row per prompt: its country, adjective and capital agree.
    twin = m.prompts[m.source.index(0)]
    row = next(r for r in TABLES[0].rows if r[1] in twin)
    assert twin == f"In {row[0]}, {row[1]} food is famous."
    assert sum(m.swaps.values()) == 20 * 2 + 10 * 2 + 30 * 3


def test_a_prompt_with_nothing_to_swap_has_no_twin_and_the_words_left_are_listed():
    concept = ["France has the Eiffel Tower."] * 20 + ["The Eiffel Tower is tall."] * 10
    m = match_neutral(concept, TABLES, BACKGROUND)
    assert len(m.prompts) == 20 and m.dropped == 10 and m.source == list(range(20))
    assert ("Eiffel", 30) in m.kept and all("Eiffel" in p for p in m.prompts)
    assert "10 prompt(s) had nothing to swap" in m.text and "Eiffel" in m.text


def test_longest_cells_first_capitals_kept_and_rows_in_the_prompt_not_drawn():
    concept = ["Music is loud in Mexico City, Mexico."] * 30 + ["Music and cooking."] * 5
    m = match_neutral(concept, TABLES, BACKGROUND, seed=0)
    assert {r for _, r in m.rows} >= {"Mexico", "music"}
    for twin in m.prompts:
        assert "Mexico" not in twin and "Music" not in twin and twin[0].isupper()
        assert not twin.endswith(" City, Mexico.")  # "Mexico City" was swapped whole (capital column)
    assert all(not p.startswith("Cooking and cooking") for p in m.prompts[30:])  # cooking is in the prompt


def test_the_shipped_france_set_differs_from_its_twins_only_in_france_row_words():
    concept = load_prompts(PROMPTS_DIR / "france.txt")
    m = match_neutral(concept)
    tables = load_tables()
    france = next(r for r in tables[0].rows if r[0] == "France")
    assert ("country", "France") in m.rows and len(m.prompts) >= 150
    concept_rows = [tables[t].rows[r] for t, r in ((0, tables[0].rows.index(france)),)]
    assert [r for _, r in m.rows] == ["France"]  # no topic row is enriched in the France set
    rows = [r for t in tables for r in t.rows]
    others = [r for r in rows if r not in concept_rows]
    for i, twin in zip(m.source, m.prompts):
        # Every cell masked by its column: the same text, so changes are cells for cells of the same column;
        # the other rows' cells of the prompt ("Greek sailors") all still there; no France word left.
        assert mask(concept[i], rows, tables) == mask(twin, rows, tables), (concept[i], twin)
        kept = mask(concept[i], others, tables)
        assert all(tag in mask(twin, others, tables) for tag in re.findall(r"<[^>]+>", kept)) or not kept
        assert not any(re.search(rf"\b{cell}\b", twin) for cell in france), twin


def test_write_matched_writes_beside_the_cache_and_refuses_a_set_with_nothing_to_swap(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRASCOPE_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "c.txt"
    src.write_text("\n".join(["The capital of France is Paris."] * 30))
    path, m = write_matched(src)
    assert path == matched_path(src) and path.parent == tmp_path / "cache" / "matched"
    assert load_prompts(path) == m.prompts and len(m.prompts) == 30
    src.write_text("\n".join(["def f(x): return x"] * 30))
    with pytest.raises(PromptSetError, match="no neutral twin can be made"):
        write_matched(src)


def test_the_shipped_tables_load_with_full_rows():
    tables = {t.name: t for t in load_tables()}
    assert tables["country"].columns == ("country", "adjective", "capital", "city")
    assert len(tables["country"].rows) >= 40 and all(len(r) == 4 for r in tables["country"].rows)
    assert tables["topic"].rows[0][0] == "music"
