"""Token and user text made safe and visible for a terminal.

Pieces are shown with visible whitespace (a leading space matters to a
tokenizer) and with control characters escaped, so model output or a pasted
prompt can never move the cursor, restyle the screen or hide a character.
Markup safety is the renderer's job: the UI always builds `rich.text.Text`,
never markup strings.
"""

from __future__ import annotations

import unicodedata

SPACE = "·"
MAX_PIECE = 40

_WHITESPACE = {" ": SPACE, "\n": "↵", "\t": "→", "\r": "␍"}


def visible(piece: str, max_len: int = MAX_PIECE, mark_spaces: bool = True) -> str:
    """`piece` with whitespace marked, control and format characters escaped, length capped."""
    out = []
    for ch in piece:
        if ch == " " and not mark_spaces:
            out.append(ch)
        elif ch in _WHITESPACE:
            out.append(_WHITESPACE[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            # Control, bidi overrides, surrogates, private use, line/para separators.
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out)
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


def one_line(text: str, max_len: int = 200) -> str:
    """User or model text on a single safe line (newlines shown, controls escaped)."""
    return visible(text, max_len=max_len, mark_spaces=False)


def sentence(text: str) -> str:
    """`text` as a sentence of a report: its first letter capitalised (the rest as it is) and a full stop."""
    return f"{text[:1].upper()}{text[1:]}."
