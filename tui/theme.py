"""The app's two themes, both readable from the back of a room: F9 switches between them.

- DEFAULT_THEME is Textual's dark theme, still named "textual-dark" (what F9 returns to), with the
  colours that fell below WCAG AA raised: field labels were 1.05:1 (drawn in the unfocused border's
  colour), error titles 3.6:1; placeholders (3.5:1) and unselected tabs (4.3:1) now use $text-muted (app.tcss).
- CONTRAST_THEME, the projector theme: black and white, saturated accents, visible field borders.

TEXT_PAIRS lists each text colour the app's CSS (app.tcss, and Textual's widgets as we use them) draws
on a theme background; tests/tui/test_theme_contrast.py holds each to 4.5:1 in both themes, and the
GRAPHIC_PAIRS (field borders) to WCAG's 3:1 for non-text. Fixed Rich colours in panes are held to
4.5:1 as they render (tui/contrast.py).
"""

from dataclasses import replace

from textual.theme import BUILTIN_THEMES, Theme

DEFAULT_THEME = replace(BUILTIN_THEMES["textual-dark"], variables={
    "border-blurred": "#6e6e6e",  # an unfocused field's border: it was the field's own colour
    "text-error": "#e79aab",  # 3.6:1 on a notification
})

CONTRAST_THEME = Theme(
    name="spectrascope-contrast",
    primary="#00d7ff",
    secondary="#ffd700",
    accent="#ffff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#1c1c1c",
    success="#00ff5f",
    warning="#ffaf00",
    error="#ff3030",
    dark=True,
    variables={"text-muted": "#e0e0e0", "footer-key-foreground": "#ffff00", "border-blurred": "#b0b0b0",
               "border": "#00d7ff", "text-error": "#ff6060"},
)

THEMES = {"default": DEFAULT_THEME, "projector": CONTRAST_THEME}

# (text colour, the background it is drawn on, where): "$name N%" is that colour at N% over the
# page background ($background); "auto N%" is Textual's contrasting text colour at N% over the background.
TEXT_PAIRS = [
    ("$foreground", "$background", "body text, tables, the active tab"),
    ("$foreground", "$surface", "text typed into a field; help, SAE info and picker screens"),
    ("$foreground", "$panel", "header"),
    ("$foreground", "$boost", "the prompt line at 80x24 (Screen.-short #prompt)"),
    ("$foreground", "$primary 30%", "the demo's caption, the focused prompt line at 80x24"),
    ("$text-muted", "$background", "status line, summaries, Steering's status, unselected tabs"),
    ("$text-muted", "$surface", "field labels (border titles) and placeholders"),
    ("$accent", "$background", "the knob lines (Logits, Steering)"),
    ("$text-error", "$surface", "the SAE picker's error line"),
    ("$footer-key-foreground", "$footer-background", "footer keys"),
    ("$footer-description-foreground", "$footer-background", "footer descriptions"),
    ("$foreground", "$panel-lighten-1", "notifications"),
    ("$text-success", "$panel-lighten-1", "a notification's title"),
    ("$text-warning", "$panel-lighten-1", "a warning's title"),
    ("$text-error", "$panel-lighten-1", "an error's title"),
    ("$input-cursor-foreground", "$input-cursor-background", "the character under a field's cursor"),
]
GRAPHIC_PAIRS = [
    ("$border-blurred", "$background", "a field's border"),
    ("$border", "$background", "the focused field's border"),
    ("$primary", "$background", "the border of help, SAE info and picker screens"),
]
