"""What a demo caption says about the screen, as `expect` lines a demo plays and checks (tui/demo.py).

A caption is read aloud while the screen shows something; an `expect` line under it states one fact the
caption relies on, and playing the demo checks it against what the app shows (the Logits table's rows,
the knobs line, the A/B, the pane on screen, the Spectrum's token, table and card, a finished run):

    expect pane logits                 # the pane on screen (logits, spectrum, pairing, steering, ...)
    expect top " the"                  # the first row of the Logits distribution (quote a leading space)
    expect rank " Paris" 3-4           # a token's row in that table (N, or N-M: the model's dtype, picked
                                       #   per machine, can swap two rows of nearly equal probability)
    expect temperature 0.7             # the knobs: temperature X, top-k N|off, top-p X|off
    expect survivors 5                 # "survivors N of V": tokens the knobs keep
    expect ab on                       # the A/B (with and without the system prompt) is shown, computed for
                                       #   what is asked now; off: the plain distribution
    expect token " France"             # the Spectrum's selected token
    expect feature coarse:2997         # that feature is in the Spectrum's table
    expect card strongest              # the Spectrum card shows the table's first row (or ROLE:ID)
    expect done pairing                # the pane's run finished and is shown (pairing, steering), not stale
    expect contrast 200 200            # Pairing ran on this many concept and neutral prompts

A check returns None when it holds, else what the screen shows instead, in a few words for the presenter.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable

def _feature_id(word: str) -> bool:
    role, _, fid = word.partition(":")
    return role in ("coarse", "fine") and fid.isdigit()


def _ranks(word: str) -> range:
    """N or N-M (inclusive), as `expect rank` takes it; ValueError otherwise."""
    low, _, high = word.partition("-")
    ranks = range(int(low), int(high or low) + 1)
    if not ranks or ranks.start < 1:
        raise ValueError(word)
    return ranks


def _pane_name(word: str) -> bool:
    from spectrascope.tui.panes import PANES

    return word in {p.name for p in PANES}


# kind -> (what follows it, for the parse error; whether the words after it are right)
KINDS: dict[str, tuple[str, Callable[..., bool]]] = {
    "pane": ("NAME", _pane_name),
    "top": ('"TOKEN"', lambda token: True),
    "rank": ('"TOKEN" N|N-M', lambda token, n: bool(_ranks(n))),
    "temperature": ("X", lambda x: float(x) >= 0),
    "top-k": ("N|off", lambda k: k == "off" or int(k) >= 1),
    "top-p": ("X|off", lambda p: p == "off" or 0 < float(p) < 1),
    "survivors": ("N", lambda n: int(n) >= 0),
    "ab": ("on|off", lambda state: state in ("on", "off")),
    "token": ('"TOKEN"', lambda token: True),
    "feature": ("ROLE:ID", _feature_id),
    "card": ("ROLE:ID|strongest", lambda f: f == "strongest" or _feature_id(f)),
    "done": ("pairing|steering", lambda name: name in ("pairing", "steering")),
    "contrast": ("N_CONCEPT N_NEUTRAL", lambda c, n: int(c) >= 0 and int(n) >= 0),
}


@dataclass(frozen=True)
class Expect:
    kind: str
    args: tuple[str, ...]
    source: str = ""  # as the script writes it, for the messages

    def __str__(self) -> str:
        return f"expect {self.source or shlex.join((self.kind, *self.args))}"


def parse_expect(text: str) -> Expect:
    """`text` after `expect`, checked for shape (the app is not needed); ValueError says what is wrong."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"expect: {exc} in {text!r}") from None
    if not words or words[0] not in KINDS:
        raise ValueError(f"expect what? one of: {', '.join(KINDS)}")
    kind, args = words[0], tuple(words[1:])
    usage, valid = KINDS[kind]
    try:
        ok = len(args) == len(usage.split()) and valid(*args)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expect {kind} {usage}, not {text!r}")
    return Expect(kind, args, text.strip())


def check(app: Any, expect: Expect) -> str | None:
    """None when `expect` holds on `app`'s screen now, else what is shown instead."""
    try:
        return CHECKS[expect.kind](app, *expect.args)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed one, never a crash
        return f"cannot check ({type(exc).__name__}: {exc})"


def _q(token: str) -> str:
    return json.dumps(token, ensure_ascii=False)  # " the", as the script and the captions write it


def _text(app: Any, selector: str) -> str:
    return str(app.query_one(selector).render())


# ---- the Logits pane --------------------------------------------------------------------------------
def _distribution_tokens(app: Any) -> list[str] | str:
    """The tokens of the Logits table in its order, or why it does not show the distribution."""
    from spectrascope.tui.widgets.fast_table import FastTable

    pane = app.pane("logits")
    if pane.ab_on:
        return "the A/B table is shown, not the distribution"
    table = pane.query_one("#logits-table", FastTable)
    if not table.row_count:
        return "the Logits table is empty"
    return [pane.piece(int(key)) for key in table.keys]


def _top(app: Any, token: str) -> str | None:
    tokens = _distribution_tokens(app)
    if isinstance(tokens, str):
        return tokens
    if tokens[0] == token:
        return None
    where = f"; {_q(token)} is #{tokens.index(token) + 1}" if token in tokens else ""
    return f"{_q(tokens[0])} is on top{where}"


def _rank(app: Any, token: str, rank: str) -> str | None:
    tokens = _distribution_tokens(app)
    if isinstance(tokens, str):
        return tokens
    if token not in tokens:
        return f"{_q(token)} is not in the top {len(tokens)}"
    shown = tokens.index(token) + 1
    return None if shown in _ranks(rank) else f"{_q(token)} is #{shown} ({_q(tokens[0])} on top)"


def _knob(name: str) -> Callable[[Any, str], str | None]:
    def knob(app: Any, value: str) -> str | None:
        from spectrascope.tui.knob_keys import knob_text

        settings = app.pane("logits").settings
        have = {"temperature": settings.temperature, "top-k": settings.top_k,
                "top-p": None if settings.top_p >= 1.0 else settings.top_p}[name]
        want = None if value == "off" else float(value)
        same = have is None and want is None or have is not None and want is not None and abs(have - want) < 1e-6
        return None if same else f"the knobs read {knob_text(settings)}"
    return knob


def _survivors(app: Any, n: str) -> str | None:
    summary = _text(app, "#logits-summary")
    found = re.search(r"survivors ([\d,]+) of", summary)
    if found is None:
        return f"no survivors count on screen ({summary[:60]!r})"
    have = int(found.group(1).replace(",", ""))
    return None if have == int(n) else f"survivors {have:,}"


def _ab(app: Any, state: str) -> str | None:
    pane = app.pane("logits")
    # `_fresh_ab`: the A/B computed for the prompt, knobs and system prompt asked now (what its table shows).
    shown = pane.ab_on and pane._fresh_ab() is not None and pane.query_one("#logits-table").row_count > 0
    if shown == (state == "on"):
        return None
    if shown:
        return "the A/B table is shown"
    if not pane.ab_on:
        return "the A/B is off: the plain distribution is shown"
    return f"no current A/B on screen ({_text(app, '#logits-summary')[:60]!r})"


# ---- which pane, the Spectrum --------------------------------------------------------------------------
def _pane(app: Any, name: str) -> str | None:
    shown = app.current_pane().id
    return None if shown == name else f"the {shown} pane is on screen"


def _token(app: Any, token: str) -> str | None:
    pane = app.pane("spectrum")
    if pane.result is None or not pane.result.spectra:
        return "the Spectrum shows no spectrum"
    if pane.position is None:
        return "the Spectrum shows all tokens"
    shown = pane.result.tokens[pane.position].text
    return None if shown == token else f"the Spectrum is at token {pane.position}, {_q(shown)}"


def _spectrum_keys(app: Any) -> list[str]:
    return list(app.pane("spectrum").query_one("#spectrum-table").keys)


def _feature(app: Any, feature: str) -> str | None:
    keys = _spectrum_keys(app)
    return None if feature in keys else f"{feature} is not among the Spectrum's {len(keys)} rows"


def _card(app: Any, feature: str) -> str | None:
    card = app.pane("spectrum").feature
    if card is None:
        return "no feature card is open"
    shown = f"{card[0]}:{card[1]}"
    if feature == "strongest":
        keys = _spectrum_keys(app)
        feature = keys[0] if keys else "(none)"
    return None if shown == feature else f"the card shows {shown}, not {feature}"


# ---- runs: Pairing, Steering ---------------------------------------------------------------------------
def _done(app: Any, name: str) -> str | None:
    pane = app.pane(name)
    if pane.busy:
        return f"the {name} run is still going"
    shown = pane.result if name == "pairing" else pane.report
    if shown is None:
        return f"no {name} run on screen"
    if name == "steering" and app.query_one("#steer-stale").display:
        return f"the steering run is stale: {_text(app, '#steer-stale')[:80]}"
    return None


def _contrast(app: Any, n_concept: str, n_neutral: str) -> str | None:
    result = app.pane("pairing").result
    if result is None:
        return "no Pairing run on screen"
    have = (result.contrast.n_concept, result.contrast.n_neutral)
    return None if have == (int(n_concept), int(n_neutral)) else f"{have[0]} concept vs {have[1]} neutral prompts"


CHECKS: dict[str, Callable[..., str | None]] = {
    "pane": _pane, "top": _top, "rank": _rank, "temperature": _knob("temperature"), "top-k": _knob("top-k"),
    "top-p": _knob("top-p"), "survivors": _survivors, "ab": _ab, "token": _token, "feature": _feature,
    "card": _card, "done": _done, "contrast": _contrast,
}
