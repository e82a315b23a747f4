"""Messages workers post to the app. Workers never touch widgets; they post these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI


@dataclass
class LoadProgress(Message):
    text: str
    fraction: float | None

    def can_replace(self, message: Message) -> bool:  # only the newest progress matters
        return isinstance(message, LoadProgress)


@dataclass
class SessionReady(Message):
    session: SessionAPI


@dataclass
class SessionFailed(Message):
    error: BaseException


@dataclass
class ResultReady(Message):
    result: Any  # core.session.Result


@dataclass
class RunFailed(Message):
    run_id: int
    error: BaseException


@dataclass
class SAESwitched(Message):
    """The SAE picker's load finished: `error` is None when `role` now reads through `label`."""

    role: str
    label: str
    error: str | None = None
