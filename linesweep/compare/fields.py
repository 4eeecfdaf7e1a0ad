"""Small checks of values read from run files other than the typed records: metrics rows,
overrides, config values. Each returns the value, or None when it is malformed.

summary.json and shapes.yaml are checked by their own reader (`linesweep.core.record`).
"""

from __future__ import annotations

import math
from typing import Any

from linesweep.core.safe_read import Unreadable

MAX_REPLICATES = 1_000_000  # a population this size would not fit a summary.json's cap anyway


def finite(value: Any) -> float | None:
    """A metric value, or None for a missing, non-numeric or non-finite one (a diverged run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None  # plain data: ints fit a float


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
