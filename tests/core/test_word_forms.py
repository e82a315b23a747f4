"""Concept-word matching ignores case and inflection (issue 35): a country <-> demonym table and the regular
plural of common nouns (core/analysis/word_forms.py), and the default words come from the concept feature's
top contexts and its whole-word promoted tokens (core/analysis/steering.py `concept_words`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spectrascope.core.analysis import steering as st
from spectrascope.core.analysis.word_forms import FAMILIES, forms, plural
from spectrascope.core.engine.labels import FeatureLabel


@pytest.mark.parametrize("word", ["French", "France", "Frenchman", "frenchmen", "FRENCH"])
def test_every_member_of_the_france_family_finds_the_others(word):
    text = "A Frenchman met two Frenchmen in France; the French wine was good."
    assert st.match_concept(text, [word]) == ["frenchman", "frenchmen", "france", "french"]


def test_the_stage_case_a_french_label_counts_a_run_that_says_france():
    """The rehearsal's Steering column: words from the label ("French"), a run saying France: 0% before."""
    assert st.match_concept("probably not in France, but … Fran", ["French"]) == ["france"]
    assert st.match_concept("Fran and Francesca went to frances", ["French"]) == []


def test_common_nouns_take_their_plural_names_do_not():
    assert st.match_concept("Two lawyers, three cities and five churches.", ["lawyer", "city", "church"]) == [
        "lawyers", "cities", "churches"]
    assert st.match_concept("the tree houses", ["tree house"]) == ["tree houses"]
    assert st.match_concept("Frances and Parisians", ["France", "Paris"]) == []  # names have no plural
    assert st.match_concept("Parisians", ["Parisian", "Parisians"]) == ["parisians"]  # list city demonyms
    assert [plural(w) for w in ("cat", "day", "box", "fly")] == ["cats", "days", "boxes", "flies"]


def test_possessives_and_case():
    assert st.match_concept("FRANCE's wine and germany's beer", ["French", "German"]) == ["france", "germany"]


def test_the_table_is_well_formed():
    seen = {}
    for family in FAMILIES:
        assert len(family) >= 2 and all(f.strip() == f and f for f in family)
        for form in family:
            assert form.casefold() not in seen, f"{form} is in two families"
            seen[form.casefold()] = family
    assert forms("Japanese")[0] == "Japanese" and "Japan" in forms("Japanese")
    assert "Netherlands" in forms("Dutchmen") and "Germany" not in forms("France")
    assert forms("  ") == () and forms("Paris") == ("Paris",)


def _session_with(label: FeatureLabel) -> SimpleNamespace:
    return SimpleNamespace(labels={"coarse": SimpleNamespace(get=lambda feature: label)})


def test_default_words_are_the_top_contexts_and_the_whole_word_promoted_tokens():
    # Feature 2997 of the embedded coarse SAE, as its labels.json has it: contexts " French", promoted noise.
    france = FeatureLabel(2997, ("ſs", "enseit", "zló", "cento", ' "-//', "handed", "oinette", "迢"), (
        (395.19, ", 1904. The canal properties of the[[ French]] Canal Company were"),
        (391.23, ", the[[ French]] Riviera and the"),
        (386.28, "1943 (from League of Nations mandate under[[ French]] administration)")))
    assert st.concept_words(_session_with(france), ("coarse", 2997)) == (["French"], "coarse:2997's top contexts")

    japan = FeatureLabel(3, (" Tokyo", " Japanese", "ese", " Kyoto", " sushi", " Osaka", " ramen"),
                         ((9.0, "in [[ Kyoto]] and"), (8.0, "the[[ Japanese]] garden")))
    words, source = st.concept_words(_session_with(japan), ("coarse", 3))
    # contexts first; then up to four promoted whole words, none twice, no word piece ("ese")
    assert words == ["Kyoto", "Japanese", "Tokyo", "sushi", "Osaka", "ramen"]
    assert source == "coarse:3's top contexts and promoted tokens"

    promoted_only = FeatureLabel(4, (" Berlin", "##", " Munich"))
    assert st.concept_words(_session_with(promoted_only), ("coarse", 4)) == (["Berlin", "Munich"],
                                                                           "coarse:4's promoted tokens")
    with pytest.raises(st.SteeringError, match="word list"):
        st.concept_words(_session_with(FeatureLabel(5, ("oinette", " 42"))), ("coarse", 5))
