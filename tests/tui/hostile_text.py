"""Text that must stay text: markup, terminal escapes, controls, bidi, huge and wide strings.

HOSTILE goes through every place that shows user or model text; PASTE_ESCAPES adds
what a bracketed paste may carry that a key press cannot (escape sequences with
their parameters, a nested paste marker, C1 controls, a bare ESC and CR line ends).
"""

HOSTILE = [
    "[bold red]markup[/]", "[/]", "[link=https://evil.example]click[/link]", "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07", "nul\x00byte", "bell\x07", "tab\tand\rreturn", "line\nbreak",
    "שלום עולם", "مرحبا", "\u202eevil override", "👩‍👩‍👧‍👦 emoji 🇫🇷", "x" * 3000,
    "   ", "💥" * 200, "\ufeffBOM", "\\[escaped]",
]

PASTE_ESCAPES = [
    "\x1b]0;title\x07 the", "\x1b[31mred\x1b[0m text", "ring\x07 the\x07 bell", "esc\x1b alone",
    "nested \x1b[200~start", "c1 \x85next \x9bcsi \x9cst", "del\x7f and nul\x00", "ctrl \x03\x04\x1a\x11",
    "crlf\r\nline", "\x1b7saved\x1b8 cursor \x1bc reset", "\x1bP+q544e\x1b\\dcs", "rt tt KK gs n",
]
