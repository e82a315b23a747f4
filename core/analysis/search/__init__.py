"""Find a feature: rank an SAE's features by how well they match words (by text) or by how strongly they
fire on chosen tokens relative to their usual activation (by example). One idea a module:

    words.py         the word rules (lowercased, stemmed, stopwords left out; the [[firing token]] of a snippet)
    explanations.py  written explanations from a Neuronpedia export
    text_index.py    the word index over one SAE's labels: per field, which terms cover which features
    promoter.py      the promoted-token score through the unembedding, standardised per feature
    index.py         one SAE's search index (the above with its labels' stats) and its file format
    index_cache.py   where indexes are kept (memory, disk keyed by what they are built from): `index_for`
    hits.py          what a search returns: Hit, Match, the "why" line
    ranking.py       from scores to hits: top features, a Hit, the final list's labels
    by_text.py       find by text: `find_text`, and the score it ranks by
    by_example.py    find by example: `find_example`, a feature's strongest activation over its usual max
"""
