"""How the table reads in every view: cells to 4 significant digits, a mean and its interval as
one cell, the key columns first, and short column names that still tell the keys apart.

The terminal, Markdown and HTML tables show `<metric>_mean` with its 95% Student t interval as
one cell, `<metric>_mean [95% t]` (`0.934 [0.921, 0.947]`), and `success_rate` with its Wilson
interval as `success_rate [Wilson 95%]` (`display_table`); the CSV, the DataFrame and sorting
keep every number apart (`_ci_low`, `_ci_high`, `_std`, `_n`), with every digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linesweep.compare.table import (
    FIXED_COLUMNS,
    MEAN_INTERVAL,
    RATE_INTERVAL,
    SUCCESS_COLUMNS,
    is_spread_column,
)

KEY_TAIL = ("obj_epoch", "state", "folder")  # after the objective, in every view
HIDDEN_STATS = ("ci_low", "ci_high", "std", "n")  # in the one cell, or in table.csv only


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


@dataclass(frozen=True)
class Interval:
    """A value and its 95% interval, as the views show them in one cell: 0.934 [0.921, 0.947];
    `n` finite values of `of` replicates (said when some have none: a diverged replicate)."""

    value: float
    low: float | None
    high: float | None
    n: int | None = None
    of: int | None = None

    def __str__(self) -> str:
        text = f"{_g(self.value)} [{_g(self.low)}, {_g(self.high)}]"
        if self.low is None:
            text = f"{_g(self.value)} (n={self.n}: no interval)"
        if self.n is not None and self.of is not None and self.n < self.of and self.low is not None:
            text += f" n={self.n}"
        return text


def format_value(value: Any) -> str:
    """How a value reads in the terminal, Markdown and HTML tables (the CSV keeps every digit)."""
    if value is None:
        return "-"
    if isinstance(value, Interval):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def display_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows and columns as the terminal, Markdown and HTML tables show them: each
    `<metric>_mean` with its interval as one `<metric>_mean [95% t]` cell, `success_rate` with
    its as `success_rate [Wilson 95%]` (`Interval`; "-" for a run without replicates); the
    std and n stay in table.csv."""
    means = [c for c in columns if c.endswith("_mean") and f"{c[:-5]}_ci_low" in columns]
    rate = "success_rate" in columns and "success_ci_low" in columns
    if not means and not rate:
        return [dict(row) for row in rows], list(columns)
    hidden = {f"{c[:-5]}_{stat}" for c in means for stat in HIDDEN_STATS}
    if rate:
        hidden |= {c for c in SUCCESS_COLUMNS if c != "success_rate"}
    renamed = {c: c + MEAN_INTERVAL for c in means}
    if rate:
        renamed["success_rate"] = "success_rate" + RATE_INTERVAL
    shown = [renamed.get(c, c) for c in columns if c not in hidden]
    merged = []
    for row in rows:
        out = {k: v for k, v in row.items() if k not in hidden and k not in renamed}
        for c in means:
            metric = c[:-5]
            value = row.get(c)
            out[renamed[c]] = None if value is None else Interval(
                value, row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"),
                row.get(f"{metric}_n"), row.get("replicates"),
            )  # fmt: skip
        if rate:
            value = row.get("success_rate")
            out[renamed["success_rate"]] = None if value is None else Interval(
                value, row.get("success_ci_low"), row.get("success_ci_high")
            )  # fmt: skip
        merged.append(out)
    return merged, shown


def numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether every value of the column is a number (right-aligned in every view)."""
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(
        isinstance(v, (int, float, Interval)) and not isinstance(v, bool) for v in values
    )


def key_columns(columns: Sequence[str], first: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """How the views order the columns, in two parts: the key columns (rank, the config keys in
    `first`, i.e. the ones the user searched, or every config key when None; the objective, the
    spread, its epoch, state and folder), then the others (other config keys, the metrics, the
    note)."""
    named = {"rank", "note", *KEY_TAIL, *FIXED_COLUMNS}
    spreads = [c for c in columns if is_spread_column(c)]
    keys = [c for c in columns if c not in named and not c.startswith("obj.") and c not in spreads]
    chosen = keys if first is None else [k for k in keys if k in set(first)]
    objective = [c for c in columns if c.startswith("obj.")]
    head = ["rank", *chosen, *objective, *spreads, *KEY_TAIL]
    tail = [*(k for k in keys if k not in chosen), *FIXED_COLUMNS, "note"]  # state: in head
    head = [c for c in dict.fromkeys(head) if c in columns]
    return head, [c for c in dict.fromkeys(tail) if c in columns and c not in head]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix that still tells the keys apart: optimizer.lr -> lr, and
    model.conv1.kernel_size -> conv1.kernel_size beside model.conv2.kernel_size."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if sum(k == suffix or k.endswith("." + suffix) for k in keys) == 1:
                break
        names[key] = suffix
    return names
