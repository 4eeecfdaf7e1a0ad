"""One look for every comparison plot: the state colours, the resolution, and how a plot says
which epochs its values come from. plots.py (runs) and study_plots.py (a study) share it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DPI = 100
COMPLETE, PRUNED, OTHER = "tab:blue", "tab:orange", "tab:gray"
FRONTIER = "tab:red"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def epochs_text(values: Sequence[int | None]) -> str:
    """epoch 3, or epochs 1-2: the epochs a group of values was measured at."""
    known = sorted({v for v in values if v is not None})
    if not known:
        return "epoch unknown"
    return f"epoch {known[0]}" if len(known) == 1 else f"epochs {known[0]}–{known[-1]}"


def tally(counts: Mapping[str, int]) -> str:
    """`1 failed, 2 infeasible`: counts by state, in the states' alphabetical order."""
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n > 0)


def one_line(err: Exception | Warning) -> str:
    """An error or warning as one short line (a plot's problem, for a warning line)."""
    text = " ".join(str(err).split())
    return text[:160] if text else type(err).__name__
