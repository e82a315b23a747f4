"""A high-contrast theme for projectors: pure black and white, saturated accents."""

from textual.theme import Theme

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
    variables={"text-muted": "#e0e0e0", "footer-key-foreground": "#ffff00"},
)
