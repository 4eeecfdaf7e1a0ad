"""Typed values out of parsed run files: each check returns the value, or None when it is malformed.

A run folder may come from anyone, so every value the table uses is checked for its type before
it is used: a malformed one is left out, and each file with any is one warning line (`Fields`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from linesweep.core.safe_read import MAX_INT, Unreadable

MAX_REPLICATES = 1_000_000  # a population this size would not fit a summary.json's cap anyway


def finite(value: Any) -> float | None:
    """A metric value, or None for a missing, non-numeric or non-finite one (a diverged run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None  # plain data: ints fit a float


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT
    return value if ok else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def texts(value: Any) -> list[str] | None:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value if ok else None


def share(value: Any) -> float | None:
    """A share (a success threshold): a finite number in [0, 1], else None."""
    number = finite(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None


def show(value: Any) -> str:
    """A value from a file, short and printable (repr escapes control characters)."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:39] + "…"


def problem(err: Exception) -> str:
    """An error as a short reason: Unreadable's message as it is, others with their type."""
    reason = " ".join(str(err).split())
    if isinstance(err, Unreadable):
        return reason
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    return f"{type(err).__name__}: {reason[:120]}" if reason else type(err).__name__


class Fields:
    """Typed values out of one parsed file: a malformed one is noted and left out, never raised."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.bad: list[str] = []

    def get(self, key: str, check: Callable[[Any], Any], expected: str) -> Any:
        """The value of `key` if `check` accepts it; None when it is absent or malformed."""
        value = self.data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
        checked = check(value)
        if checked is None:
            self.bad.append(f"{key} ({expected}: {show(value)})")
        return checked

    def warning(self, name: str) -> str | None:
        if not self.bad:
            return None
        return f"{name} has malformed values, left out: {', '.join(self.bad)}"
