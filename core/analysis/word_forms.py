"""Which written forms one concept word stands for, so a concept-word count ignores case and inflection.

Two rules, no general stemmer: a stemmer folds "France" and "frances" (or "Francesca") onto one stem and
still keeps "French" apart, which is the pair that matters for a country concept.

- **Country <-> demonym table** (`FAMILIES`, below): a word in a row stands for the whole row, so "French"
  also counts "France", "Frenchman" and "Frenchmen". Countries only: a city's demonym ("Parisian") is
  not "Paris" (list both where both should count).
- **Regular plural of a common noun**: a word written in lower case ("lawyer", "city", "church") also
  counts "lawyers", "cities", "churches". A capitalised word not in the table is a name and has no
  plural ("France" never counts "Frances").

Case is ignored when matching (core/analysis/steering.py `concept_pattern`); possessives ("France's")
match already, since "'" ends a word.
"""

from __future__ import annotations

import re

# One family a line: country (and other names of it), adjective, the people (singular and plural).
_TABLE = """
France | French | Frenchman | Frenchmen | Frenchwoman | Frenchwomen
Germany | German | Germans
Italy | Italian | Italians
Spain | Spanish | Spaniard | Spaniards
Portugal | Portuguese
England | English | Englishman | Englishmen | Englishwoman | Englishwomen
Britain | Great Britain | United Kingdom | UK | British | Briton | Britons | Brit | Brits
Scotland | Scottish | Scot | Scots | Scotsman | Scotsmen | Scotswoman | Scotswomen
Wales | Welsh | Welshman | Welshmen | Welshwoman | Welshwomen
Ireland | Irish | Irishman | Irishmen | Irishwoman | Irishwomen
Netherlands | Holland | Dutch | Dutchman | Dutchmen | Dutchwoman | Dutchwomen
Belgium | Belgian | Belgians
Switzerland | Swiss
Austria | Austrian | Austrians
Sweden | Swedish | Swede | Swedes
Norway | Norwegian | Norwegians
Denmark | Danish | Dane | Danes
Finland | Finnish | Finn | Finns
Iceland | Icelandic | Icelander | Icelanders
Poland | Polish
Czechia | Czech Republic | Czech | Czechs
Hungary | Hungarian | Hungarians
Romania | Romanian | Romanians
Greece | Greek | Greeks
Russia | Russian | Russians
Ukraine | Ukrainian | Ukrainians
Turkey | Turkish | Turk | Turks
Israel | Israeli | Israelis
Iran | Iranian | Iranians | Persia | Persian | Persians
Iraq | Iraqi | Iraqis
Saudi Arabia | Saudi | Saudis
Egypt | Egyptian | Egyptians
Morocco | Moroccan | Moroccans
Algeria | Algerian | Algerians
Nigeria | Nigerian | Nigerians
Kenya | Kenyan | Kenyans
Ethiopia | Ethiopian | Ethiopians
South Africa | South African | South Africans
India | Indian | Indians
Pakistan | Pakistani | Pakistanis
China | Chinese
Japan | Japanese
Korea | Korean | Koreans
Vietnam | Vietnamese
Thailand | Thai | Thais
Indonesia | Indonesian | Indonesians
Philippines | Filipino | Filipinos | Filipina | Filipinas
Kyrgyzstan | Kyrgyz
Kazakhstan | Kazakh | Kazakhs
Australia | Australian | Australians | Aussie | Aussies
New Zealand | New Zealander | New Zealanders
Canada | Canadian | Canadians
United States | America | American | Americans | USA
Mexico | Mexican | Mexicans
Brazil | Brazilian | Brazilians
Argentina | Argentine | Argentinian | Argentinians | Argentines
Chile | Chilean | Chileans
Peru | Peruvian | Peruvians
Colombia | Colombian | Colombians
Cuba | Cuban | Cubans
"""

FAMILIES: tuple[tuple[str, ...], ...] = tuple(
    tuple(form.strip() for form in line.split("|")) for line in _TABLE.strip().splitlines())
_FAMILY_OF = {form.casefold(): family for family in FAMILIES for form in family}
_COMMON_NOUN = re.compile(r"[a-z]+")  # lower case letters only: a common noun that takes a regular plural


def plural(word: str) -> str:
    """The regular English plural of a common noun (city -> cities, church -> churches, cat -> cats)."""
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def forms(word: str) -> tuple[str, ...]:
    """Every form `word` stands for (itself first): its country/demonym family, or its regular plural when it
    is a lower-case common noun (a phrase's last word takes the plural: "tree house" -> "tree houses")."""
    word = " ".join(word.split())
    if not word:
        return ()
    family = _FAMILY_OF.get(word.casefold())
    if family is not None:
        return (word, *(f for f in family if f.casefold() != word.casefold()))
    last = word.rsplit(" ", 1)[-1]
    if _COMMON_NOUN.fullmatch(last) and len(last) >= 3:
        return (word, word[: len(word) - len(last)] + plural(last))
    return (word,)

