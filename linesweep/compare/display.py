"""How the table reads in every view: cells to 4 significant digits, a mean ± std as one cell,
the key columns first, and short column names that still tell the keys apart.

The terminal, Markdown and HTML tables show `<metric>_mean ± std` as one cell (`display_table`);
the CSV, the DataFrame and sorting keep the two numbers apart, and every digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linesweep.compare.table import FIXED_COLUMNS, PLUS_MINUS, is_spread_column

KEY_TAIL = ("obj_epoch", "state", "folder")  # after the objective, in every view


@dataclass(frozen=True)
class MeanStd:
    """A mean and its standard deviation, as the views show them in one cell: 0.75 ± 0.29."""

    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}"


def format_value(value: Any) -> str:
    """How a value reads in the terminal, Markdown and HTML tables (the CSV keeps every digit)."""
    if value is None:
        return "-"
    if isinstance(value, MeanStd):
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
    `<metric>_mean` with its `<metric>_std` as one `<metric>_mean ± std` cell (`MeanStd`; "-"
    for a run without replicates)."""
    pairs = {
        c: c.removesuffix("_mean") + "_std"
        for c in columns
        if c.endswith("_mean") and c.removesuffix("_mean") + "_std" in columns
    }
    if not pairs:
        return [dict(row) for row in rows], list(columns)
    shown = [c + PLUS_MINUS if c in pairs else c for c in columns if c not in pairs.values()]
    merged = []
    for row in rows:
        out = {k: v for k, v in row.items() if k not in pairs and k not in pairs.values()}
        for mean, std in pairs.items():
            both = row.get(mean), row.get(std)
            out[mean + PLUS_MINUS] = None if None in both else MeanStd(*both)  # type: ignore[misc]
        merged.append(out)
    return merged, shown


def numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether every value of the column is a number (right-aligned in every view)."""
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(
        isinstance(v, (int, float, MeanStd)) and not isinstance(v, bool) for v in values
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
