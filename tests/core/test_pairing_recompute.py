"""Moving the thresholds: the cheap reclassification shown at once, and the full one (null model and
permutation p again) that reports progress and stops when cancelled."""

from __future__ import annotations

import threading

import pytest
import torch

from spectrascope.core.analysis import pairing
from spectrascope.core.analysis.pairing import PENDING_NOTE, PairingSettings, pair, reclassify, reclassify_classes
from spectrascope.core.engine.values import Cancelled
from tests.core.synthetic_sae import world


@pytest.fixture(scope="module")
def result():
    r, wc, wf, _ = world([4, 2, 0, 1, 3, 0], extra=True, concept_topic=0, seed=1)
    return pair(r, torch.tensor(wc), torch.tensor(wf), PairingSettings(n_anchors=3))


def test_the_cheap_part_has_the_classes_and_says_the_rest_is_pending(result):
    moved = PairingSettings(n_anchors=3, cos_threshold=0.35, corr_threshold=0.45)
    full, quick = reclassify(result, moved), reclassify_classes(result, moved)
    for a in result.anchors:
        assert (quick.pairings[a].classes == full.pairings[a].classes).all()
    assert (quick.verdict.go, quick.verdict.anchor, quick.verdict.count) == (full.verdict.go, full.verdict.anchor,
                                                                             full.verdict.count)
    assert quick.verdict.grid == full.verdict.grid == result.verdict.grid  # the grid does not move
    assert quick.verdict.null is None and quick.verdict.permutation is None
    assert quick.verdict.permutation_note == PENDING_NOTE and PENDING_NOTE in quick.verdict.text
    assert full.verdict.null is not None and full.verdict.permutation is not None
    assert quick.settings == full.settings == moved


def test_the_full_reclassification_reports_progress_and_stops_when_cancelled(result):
    moved = PairingSettings(n_anchors=3, corr_threshold=0.45)
    seen = []
    full = reclassify(result, moved, progress=lambda text, fraction=None: seen.append((text, fraction)))
    fractions = [f for _, f in seen]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all("recomputing the null model and permutation p at cos ≥ 0.30, corr ≥ 0.45" in t for t, _ in seen)
    assert full.verdict.to_dict()["null_model"] == reclassify(result, moved).verdict.to_dict()["null_model"]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        reclassify(result, moved, cancel=stop)


def test_a_cancel_set_midway_stops_the_null_models_pairing(result, monkeypatch):
    """The check runs between blocks of the null model's coarse x fine pairing, not only at its end."""
    stop, blocks = threading.Event(), []
    real = pairing.subfeature_counts

    def small_blocks(*a, tick=None, **k):
        def counted(fraction):
            blocks.append(fraction)
            if len(blocks) == 2:
                stop.set()  # the user moved on during the second block
            tick(fraction)
        return real(*a, chunk=1, tick=counted, **k)

    monkeypatch.setattr(pairing, "subfeature_counts", small_blocks)
    with pytest.raises(Cancelled):
        reclassify(result, PairingSettings(n_anchors=3, corr_threshold=0.45), cancel=stop)
    assert len(blocks) == 2 and blocks[-1] < 1.0
