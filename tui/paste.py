"""Pasted text is inert: it arrives as text in the focused field and never as key presses.

Textual's parser (8.2.8, `_xterm_parser.py`) collects a bracketed paste
(`ESC[200~ ... ESC[201~`) but, inside it, still reads every ESC as the start of
a key sequence: `ESC]0;title BEL the` ends the paste early and the rest is
replayed as keys (BEL is ctrl+g: a screenshot; letters fire the pane's
bindings). `InertPasteParser` reads the paste itself up to its end marker, so
nothing inside can end it, and hands Textual's parser only the cleaned text.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Generator

from textual._parser import ParseEOF, ParseError, Read1, TokenCallback
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.message import Message

# Terminal escape sequences, removed whole so no parameter debris is left behind.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, a nested ESC[200~
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (window title), DCS, …: up to BEL or ST
    r"|\x1b[ -/]*[0-~]"  # the short ones: ESC 7, ESC c, ESC ( B
)
_KEPT_CONTROLS = {"\n", "\t"}


def inert_text(text: str) -> str:
    """`text` with escape sequences and control characters (C0, C1, DEL) dropped; line ends as \\n."""
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch) != "Cc")


class InertPasteParser(XTermParser):
    """Textual's terminal parser, except that a bracketed paste ends only at its end marker."""

    def parse(self, token_callback: TokenCallback) -> Generator[Read1, str, None]:
        textual = super().parse(token_callback)
        awaiting = next(textual)
        recent = ""  # the last few characters, to spot the paste start marker
        try:
            while True:
                try:
                    character = yield awaiting
                except ParseError as error:  # a key sequence timed out, or the input ended
                    awaiting = textual.throw(error)
                    continue
                awaiting = textual.send(character)
                recent = (recent + character)[-len(BRACKETED_PASTE_START):]
                if recent == BRACKETED_PASTE_START:  # Textual's parser now collects a paste: feed it clean text
                    pasted = yield from self._read_paste()
                    for character in inert_text(pasted) + BRACKETED_PASTE_END:
                        awaiting = textual.send(character)
                    recent = ""
        except (StopIteration, ParseEOF):  # Textual's parser finished, or the input ended mid-paste
            return

    def _read_paste(self) -> Generator[Read1, str, str]:
        """Everything up to the end marker, escapes included (nothing in a paste is a key)."""
        pasted: list[str] = []
        while "".join(pasted[-len(BRACKETED_PASTE_END):]) != BRACKETED_PASTE_END:
            pasted.append((yield self.read1()))
        return "".join(pasted[: -len(BRACKETED_PASTE_END)])


def use_inert_paste(driver_class: type) -> type:
    """`driver_class`, reading input with `InertPasteParser`.

    Textual's drivers build their parser by name inside their input thread, with
    no hook to pass another, so the name is rebound in the driver's module
    (a test checks this still takes effect when Textual is upgraded).
    """
    module = sys.modules[driver_class.__module__]
    if getattr(module, "XTermParser", None) is XTermParser:
        module.XTermParser = InertPasteParser
    return driver_class


def parse_terminal_input(data: str) -> list[Message]:
    """The messages a terminal's bytes `data` become (tests feed these to a running app)."""
    parser = InertPasteParser()
    return [*parser.feed(data), *parser.feed("")]
