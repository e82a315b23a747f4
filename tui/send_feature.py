"""A feature one pane hands to Spectrum or Pairing (the Find pane's `v` and `p`): how each takes it.

The app shows the pane and calls `send_feature`; each pane takes the feature through what it already
offers: Spectrum its `select_feature` (the card, on the current prompt), Pairing the session-file state
it restores (`get_state` / `set_state`: the anchors, run again from the contrast cache), so neither pane
needs new code. (Steering has its own hand-off, the app's `steer_features`.)
"""

from __future__ import annotations

from typing import Any


def nearest_coarse(session: Any, fine: int) -> tuple[int, float]:
    """The coarse feature whose decoder direction is closest (cosine) to the fine feature's."""
    import torch

    coarse = torch.nn.functional.normalize(session.decoder_directions("coarse").float(), dim=1)
    row = torch.nn.functional.normalize(session.decoder_directions("fine", [fine]).float(), dim=1)
    cos = (coarse @ row.to(coarse.device).T).ravel()
    best = int(cos.argmax())
    return best, float(cos[best])


def send_feature(pane: Any, role: str, feature: int, session: Any) -> str:
    """Hand (role, feature) to `pane` (its id says which); returns the status line saying what happened."""
    if pane.id == "spectrum":
        pane.select_feature(role, feature)
        return f"Spectrum: the card of {role} #{feature}, on the current prompt."
    if pane.id == "pairing":
        if pane.busy:
            return "Pairing is running: send the feature again when it ends (x cancels)."
        note = ""
        if role != "coarse":  # anchors are coarse: the fine feature's nearest one, whose sub-feature it may be
            fine, (feature, cos) = feature, nearest_coarse(session, feature)
            note = f" (the nearest coarse feature to fine #{fine}, decoder cosine {cos:.2f})"
        state = pane.get_state()
        anchors = list(dict.fromkeys([*(state.get("anchors") or []), feature]))
        pane.set_state({**state, "anchors": anchors, "anchor": feature})  # runs again with them (contrast cache)
        return f"Pairing: coarse #{feature}{note} is an anchor; pairing its concept set (s picks another)."
    return f"The {pane.id} pane takes no feature."
