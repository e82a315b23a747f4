"""Find by example: the SAE codes of a prompt (from `Session.run`) at chosen positions, the strongest of
them, divided by each feature's usual maximum (`max_act` of its labels, else its maximum on the
calibration text): "how close to its strongest is it here". Always-on features (freq > DENSE_FREQ) are
left out.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from spectrascope.core.analysis.search.hits import Hit, Match
from spectrascope.core.analysis.search.index import SearchIndex
from spectrascope.core.analysis.search.index_cache import index_for
from spectrascope.core.analysis.search.ranking import (
    make_hit,
    top_features,
    with_labels,
)
from spectrascope.core.engine.embedded import Progress, _quiet
from spectrascope.core.engine.labels import DENSE_FREQ


def example_run(session: Any, prompt: str, cancel: Any = None) -> Any:
    """The SAE codes of `prompt`, through the session (its own request slot: the prompt's cache stays)."""
    from spectrascope.core.engine.values import Request

    return session.run(Request(prompt, layers=(), logits=False, slot="find"), cancel)


def usual_max(session: Any, index: SearchIndex, cancel: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(max_act, freq, where from) per feature: the labels' where they say, else measured once on the
    calibration text (features silent there take the SAE's median max: nothing better is known)."""
    if not np.isnan(index.max_act).all():
        return np.nan_to_num(index.max_act, nan=np.nanmedian(index.max_act)), np.nan_to_num(index.freq), "labels"
    if index.calibration is None:
        from spectrascope.core.engine.values import CALIBRATION_TEXT

        result = example_run(session, CALIBRATION_TEXT, cancel)
        codes = result.spectra[index.role].codes[result.bos:].numpy()
        top = codes.max(axis=0)
        fired = top[top > 0]
        index.calibration = (np.where(top > 0, top, np.median(fired) if len(fired) else 1.0).astype(np.float32),
                             (codes > 0).mean(axis=0).astype(np.float32))
    return (*index.calibration, "calibration text")


def example_scores(session: Any, index: SearchIndex, codes: Any,
                   cancel: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(score, activation, peak row, where the max is from) per feature: its strongest activation over the
    chosen positions (`codes`, (P, F)) divided by its usual max; 0 for always-on features. The strongest,
    not the mean: a phrase's Japan feature fires on "Japan" alone, and a mean over the phrase would let
    features that fire a little on every token win instead."""
    codes = np.asarray(codes, np.float32).reshape(-1, index.n_features)
    peak = codes.argmax(axis=0)
    act = codes[peak, np.arange(codes.shape[1])]
    max_act, freq, basis = usual_max(session, index, cancel)
    score = np.where((act > 0) & ~(freq > DENSE_FREQ), act / np.maximum(max_act, 1e-6), 0.0)
    return score.astype(np.float32), act, peak, basis


def example_positions(result: Any, positions: Iterable[int]) -> tuple[int, ...]:
    """The positions a by-example search reads: the given ones, else every token but BOS.
    ValueError for a position outside the prompt."""
    n = len(result.tokens)
    for p in positions:
        if not -n <= p < n:
            raise ValueError(f"Token {p} is outside the example (0..{n - 1}).")
    return tuple(sorted({p % n for p in positions})) or tuple(range(result.bos, n)) or (0,)


def find_example(session: Any, result: Any, positions: Sequence[int], roles: Sequence[str], top: int = 20,
                 cancel: Any = None, progress: Progress = _quiet) -> list[Hit]:
    """The `top` features most active at `positions` of `result` (a Session.run Result) relative to
    their usual max, always-on ones left out."""
    chosen = list(example_positions(result, positions))
    ranked = []
    for role in roles:
        index = index_for(session, role, None, progress)
        score, act, peak, basis = example_scores(session, index, result.spectra[role].codes[chosen], cancel)
        for f in top_features(score, top):
            where = f"{result.tokens[chosen[peak[f]]].text!r} (token {chosen[peak[f]]})"
            m = Match("example", "", where, round(float(act[f]), 4), round(float(score[f]), 4))
            ranked.append((make_hit(session, index, role, int(f), float(score[f]), (m,), basis), index))
    ranked.sort(key=lambda h: (-h[0].score, h[0].role, h[0].feature))
    return with_labels(session, ranked[:top])
