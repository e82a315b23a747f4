"""Shared Pilot helpers for the TUI tests (the helper itself lives in the package)."""

from spectrascope.tui.pilot import until

__all__ = ["until"]
