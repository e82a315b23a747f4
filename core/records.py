"""Frozen records that travel as JSON: a view's Spec (CLI arguments, session-file section, staleness key)
and its Report (JSON export, session restore) convert with `to_dict` / `from_dict`."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for a frozen dataclass of JSON-ready fields (numbers, text, tuples, nested Records)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record from `to_dict`'s output; a missing key keeps its default, an unknown one is a
        ValueError naming it (a hand-edited session file gets a message, not a traceback)."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected an object, not {type(data).__name__}.")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field{'s' * (len(unknown) > 1)} {', '.join(unknown)}.")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _typed(hints.get(k), v, f"{cls.__name__}.{k}") for k, v in data.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` (from JSON) as `hint` says: tuples from lists, nested Records from dicts, numbers checked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _typed(inner[0], value, where) if len(inner) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, not {value!r}.")
        if args and Ellipsis not in args:  # a fixed shape, e.g. tuple[int, str]: each place its own type
            if len(value) != len(args):
                raise ValueError(f"{where}: expected {len(args)} items, not {value!r}.")
            return tuple(_typed(a, v, where) for a, v in zip(args, value))
        item = args[0] if args else Any
        return tuple(_typed(item, v, where) for v in value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, not {value!r}.")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected a whole number, not {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, not {value!r}.")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected text, not {value!r}.")
        return value
    return value
