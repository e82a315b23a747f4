"""The concept sets drawn from real text (assets/prompts/own/, built by bench/build_concept_sets.py): no model.

Each shipped set exists with >= 150 distinct lines, concept and neutral share no line, every concept line
has one of the builder's keywords and no neutral line has a keyword (or one of the extra words kept out of
it), the lines are 8-40 words, and the matched sets (all six are length-matched) have the same median
word count to within 20%.
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import median

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "assets" / "prompts" / "own"
sys.path.insert(0, str(ROOT / "bench"))
from build_concept_sets import MAX_WORDS, MIN_WORDS, SETS  # noqa: E402

NAMES = [s.name for s in SETS]


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def test_six_sets_two_of_them_confounded_on_purpose():
    assert len(SETS) >= 6
    assert sum(bool(s.confounded) for s in SETS) >= 2
    assert sum(s.concept_source == s.neutral_source for s in SETS) >= 4  # the matched ones: same source


@pytest.mark.parametrize("spec", SETS, ids=NAMES)
def test_set_exists_is_distinct_and_keeps_the_keyword_rule(spec):
    concept, neutral = _lines(OWN / f"{spec.name}.txt"), _lines(OWN / f"{spec.name}-neutral.txt")
    for lines in (concept, neutral):
        assert 150 <= len(lines) <= 200
        assert len(set(lines)) == len(lines)
        assert all(MIN_WORDS <= len(ln.split()) <= MAX_WORDS for ln in lines)
    assert not set(concept) & set(neutral)
    keyword, excluded = spec.pattern(), spec.excluded()
    assert [ln for ln in concept if not keyword.search(ln)] == []
    assert [ln for ln in neutral if excluded.search(ln)] == []


@pytest.mark.parametrize("spec", SETS, ids=NAMES)
def test_concept_and_neutral_lengths_match(spec):
    c = [len(ln.split()) for ln in _lines(OWN / f"{spec.name}.txt")]
    n = [len(ln.split()) for ln in _lines(OWN / f"{spec.name}-neutral.txt")]
    assert abs(median(c) - median(n)) <= 0.2 * median(c)
    assert abs(sum(c) / len(c) - sum(n) / len(n)) <= 0.2 * sum(c) / len(c)


def test_keyword_rule_is_whole_word():
    spec = next(s for s in SETS if s.name == "war")
    assert spec.pattern().search("The war ended.") and spec.pattern().search("WAR")
    assert not spec.pattern().search("a warm coat and software")


def test_own_folder_names_its_sources():
    readme = (OWN / "README.md").read_text()
    for spec in SETS:
        assert spec.name in readme
    for word in ("CC BY-SA", "public domain", "Wikipedia"):
        assert word in readme
