"""Pasted text is inert: it arrives as text in the focused field and never as key presses.

Textual's parser (8.2.8, `_xterm_parser.py`) collects a bracketed paste
(`ESC[200~ ... ESC[201~`) but, inside it, still reads every ESC as the start of
a key sequence: `ESC]0;title BEL the` ends the paste early and the rest is
replayed as keys (BEL is ctrl+g: a screenshot; letters fire the pane's
bindings). `InertPasteParser` reads the paste itself up to its end marker, so
nothing inside can end it, and hands Textual's parser only the cleaned text.

A paste can also carry its own end marker: tmux (3.3a) passes an `ESC[201~` inside pasted text
through unchanged, so `hello ESC[201~ ttttT BEL gg ESC[200~ world` ends the paste after "hello" and
sends the rest as if typed. So input that arrives in the same burst as a paste's end (the rest of
the same read, or a read within `BURST_S`, faster than anyone types) is pasted text too: it becomes
a paste of its own, inert like the first.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Callable, Generator, Iterable

from textual._parser import ParseEOF, ParseError, Peek1, Read1, TokenCallback
from textual._time import get_time
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.message import Message

# Terminal escape sequences, removed whole so no parameter debris is left behind.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, a nested ESC[200~
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (window title), DCS, …: up to BEL or ST
    r"|\x1b[ -/]*[0-~]"  # the short ones: ESC 7, ESC c, ESC ( B
)
_KEPT_CONTROLS = {"\n", "\t"}
BURST_S = 0.010  # input this soon after a paste's end came with the paste (a keystroke takes far longer)


def inert_text(text: str) -> str:
    """`text` with escape sequences and control characters (C0, C1, DEL) dropped; line ends as \\n."""
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch) != "Cc")


class InertPasteParser(XTermParser):
    """Textual's terminal parser, except that a bracketed paste ends only at its end marker, and input
    in the same burst as a paste's end is pasted text too."""

    def __init__(self, debug: bool = False, clock: Callable[[], float] = get_time) -> None:
        self._clock = clock  # the drivers pass `debug` (positionally, some of them); tests pass a clock
        self._unread = 0  # characters of the current read not consumed yet
        self._paste_ended = float("-inf")  # when the last paste ended (its read was consumed)
        self._burst = False  # the current read came within BURST_S of a paste's end
        super().__init__(debug)

    def feed(self, data: str) -> Iterable[Message]:
        self._unread = len(data)
        self._burst = bool(data) and self._clock() - self._paste_ended < BURST_S
        return super().feed(data)

    def _read(self, awaiting: Read1 | Peek1) -> Generator[Read1 | Peek1, str, str]:
        character = yield awaiting
        if isinstance(awaiting, Read1):
            self._unread -= 1
        return character

    def parse(self, token_callback: TokenCallback) -> Generator[Read1 | Peek1, str, None]:
        textual = super().parse(token_callback)
        awaiting = next(textual)
        recent = ""  # the last few characters, to spot the paste start marker
        try:
            while True:
                try:
                    character = yield from self._read(awaiting)
                except ParseError as error:  # a key sequence timed out, or the input ended
                    awaiting = textual.throw(error)
                    continue
                if self._burst:  # a read right after a paste's end: the paste's tail, not keys
                    tail = character + (yield from self._read_rest())
                    awaiting = self._send_paste(textual, tail, awaiting)
                    continue
                awaiting = textual.send(character)
                recent = (recent + character)[-len(BRACKETED_PASTE_START):]
                if recent == BRACKETED_PASTE_START:  # Textual's parser now collects a paste: feed it clean text
                    pasted = yield from self._read_paste()
                    for character in inert_text(pasted) + BRACKETED_PASTE_END:
                        awaiting = textual.send(character)
                    recent = ""
                    if self._unread:  # the same read goes on after the paste's end: its tail
                        awaiting = self._send_paste(textual, (yield from self._read_rest()), awaiting)
        except (StopIteration, ParseEOF):  # Textual's parser finished, or the input ended mid-paste
            return

    def _send_paste(self, textual: Generator, text: str, awaiting: Read1 | Peek1) -> Read1 | Peek1:
        """`text` to Textual's parser as a paste of its own (markers inside it are dropped as escapes)."""
        self._paste_ended, self._burst = self._clock(), False
        for character in BRACKETED_PASTE_START + inert_text(text) + BRACKETED_PASTE_END:
            awaiting = textual.send(character)
        return awaiting

    def _read_paste(self) -> Generator[Read1, str, str]:
        """Everything up to the end marker, escapes included (nothing in a paste is a key)."""
        pasted: list[str] = []
        while "".join(pasted[-len(BRACKETED_PASTE_END):]) != BRACKETED_PASTE_END:
            pasted.append((yield from self._read(self.read1())))
        self._paste_ended = self._clock()
        return "".join(pasted[: -len(BRACKETED_PASTE_END)])

    def _read_rest(self) -> Generator[Read1, str, str]:
        """The rest of the current read."""
        rest: list[str] = []
        while self._unread > 0:
            rest.append((yield from self._read(self.read1())))
        return "".join(rest)


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


def parse_terminal_input(*reads: str, gap: float = 1.0) -> list[Message]:
    """The messages a terminal's bytes become, read in `reads` chunks `gap` seconds apart (tests feed
    these to a running app)."""
    now = [0.0]
    parser = InertPasteParser(clock=lambda: now[0])
    messages: list[Message] = []
    for data in reads:
        messages += parser.feed(data)
        now[0] += gap
    return [*messages, *parser.feed("")]
