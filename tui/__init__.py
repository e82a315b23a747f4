"""spectrascope terminal UI (Textual)."""
