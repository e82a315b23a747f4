"""Keys pressed while a pane's job runs, kept in order and run once it is done (a demo types ahead)."""

from __future__ import annotations

from typing import Callable


class TypedAhead(list):
    """The waiting actions, oldest first; at most `limit` (a held key queues no more)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def add(self, action: Callable[[], None]) -> bool:
        """Keep `action` for later; False when `limit` actions already wait."""
        if len(self) >= self.limit:
            return False
        self.append(action)
        return True

    def run(self, busy: Callable[[], bool]) -> None:
        """Run the waiting actions in order while `busy()` is False (an action that starts a job stops it)."""
        while self and not busy():
            self.pop(0)()
