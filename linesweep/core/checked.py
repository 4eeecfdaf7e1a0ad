"""Plain data (parsed JSON) into a typed dataclass, each field checked once against its type.

A record type (`linesweep.core.record.RunRecord`) is its own schema: its fields' annotations
say what each value must be, and `from_plain` builds an instance from data anyone may have
written. A value of the wrong type is not raised but left out (the field keeps its default)
and named in the returned problems, so that a reader of a damaged folder still gets everything
that is sound, and says what was not. A field may add a constraint of its own in its metadata
(`checked(...)`: a count must be >= 0, a share in [0, 1]); a record may add checks across
fields in a `problems()` method, which drops what disagrees.

Supported annotations: str, int, float, bool, an Enum, Any, `X | None`, list[X], dict[str, X]
and nested dataclasses. JSON writes NaN as null, so a float that may be NaN is `float | None`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
MAX_ITEMS = 1_000_000  # a list or mapping longer than this is no record a run wrote


def checked(check: Callable[[Any], bool] | None, expected: str, **kwargs: Any) -> Any:
    """A dataclass field whose value must also pass `check`, said as `expected` when it does
    not (or when it has the wrong type: `checked(None, "a list of layers")` names it only)."""
    metadata = {**kwargs.pop("metadata", {}), "check": (check, expected)}
    return dataclasses.field(metadata=metadata, **kwargs)


class Problems(list):
    """What `from_plain` left out: `key (not expected: value)` for each value that did not fit."""

    def add(self, key: str, expected: str, value: Any) -> None:
        self.append(f"{key} (not {expected}: {_show(value)})")


def from_plain(cls: type[T], data: Any, problems: Problems | None = None, key: str = "") -> T:
    """An instance of dataclass `cls` from a parsed mapping; what does not fit goes to problems.

    Raises ValueError only when `data` is not a mapping at all.
    """
    problems = Problems() if problems is None else problems
    if not isinstance(data, dict):
        raise ValueError(f"not a mapping: {_show(data)}")
    values: dict[str, Any] = {}
    for name, hint, check, expected in _fields(cls):
        if name not in data or data[name] is None:
            continue  # absent, or null: the default
        where, before = f"{key}{name}", len(problems)
        ok, value = _convert(hint, data[name], problems, where)
        if ok and check is not None and not check(value):
            ok = False
        if ok:
            values[name] = value
        elif len(problems) == before:  # else a value inside it said what was wrong
            problems.add(where, expected, data[name])
    record = cls(**values)
    extra = getattr(record, "problems", None)
    for problem in extra() if extra is not None else ():  # " (...)": about the whole record
        problems.append(f"{key.rstrip('.')}{problem}" if problem[0] == " " else f"{key}{problem}")
    return record


def to_plain(record: Any) -> Any:
    """A dataclass (or anything inside one) as JSON's plain data: enums by their value."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_plain(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, enum.Enum):
        return record.value
    if isinstance(record, dict):
        return {str(k): to_plain(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_plain(v) for v in record]
    return record


# ---------------------------------------------------------------- conversion by annotation


# Worked out once per record type and per annotation: compare reads a thousand records of the
# same few types, and resolving annotations was most of its reading time.


@cache
def _fields(cls: type) -> list[tuple[str, Any, Callable[[Any], bool] | None, str]]:
    """(name, annotation, its check, what it expects) for each field of a record type."""
    hints = typing.get_type_hints(cls)
    return [
        (f.name, hints[f.name], *f.metadata.get("check", (None, _expected(hints[f.name]))))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]


@cache
def _shape(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(hint), typing.get_args(hint)


def _convert(hint: Any, value: Any, problems: Problems, key: str) -> tuple[bool, Any]:
    """(whether `value` fits `hint`, the value as the field holds it)."""
    origin, args = _shape(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, problems, key) if len(inner) == 1 else (False, None)
    if hint is Any:
        return True, value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return False, None
        return True, from_plain(hint, value, problems, f"{key}.")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return True, hint(value)
        except (ValueError, TypeError):  # TypeError: an unhashable list
            return False, None
    if origin is list:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            return False, None
        before = len(problems)
        items = [_convert(args[0], v, problems, f"{key}[{i}]") for i, v in enumerate(value)]
        if len(problems) > before:  # one unsound record (a replicate's) spoils the list
            problems.append(f"{key} (left out whole)")
            return False, None
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            return False, None
        items = {k: _convert(args[1], v, problems, f"{key}.{k}") for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    return _scalar(hint, value)


def _scalar(hint: Any, value: Any) -> tuple[bool, Any]:
    if isinstance(value, bool) and hint is not bool:  # JSON's true is no number, no text
        return False, None
    if hint is float:
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        return ok, float(value) if ok else None
    if hint is int:
        return isinstance(value, int), value
    if hint in (str, bool):
        return isinstance(value, hint), value
    raise TypeError(f"unsupported annotation {hint!r}")  # a record type's bug, not the data's


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_expected(args[0])}"
    if origin is dict:
        return f"a mapping to {_expected(args[1])}"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in hint)
    names = {float: "a finite number", int: "an integer", str: "text", bool: "true or false"}
    return names.get(hint, str(hint))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
