"""The comparison as files: table.csv (every column whole, every digit) and table.md.

`write_table_csv` is the one writer of table.csv.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from linesweep.compare.display import display_table, format_value, numeric
from linesweep.compare.table import Comparison
from linesweep.core.files import atomic_write_text, write_csv

CSV, MARKDOWN = "table.csv", "table.md"


def write_tables(out: Path, comparison: Comparison) -> list[Path]:
    """table.csv and table.md into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_table_csv(out / CSV, comparison)
    atomic_write_text(out / MARKDOWN, markdown_table(comparison.rows, comparison.columns))
    return [out / CSV, out / MARKDOWN]


def write_table_csv(path: Path, comparison: Comparison) -> None:
    """table.csv: one row per shown run, every column, raw values (lists as JSON)."""
    write_csv(path, csv_rows(comparison.rows), comparison.columns, spreadsheet_safe=True)


def csv_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lists as JSON (`["val_accuracy"]`), so that a spreadsheet cell reads back as one value."""
    return [
        {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
        for row in rows
    ]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The table as Markdown: numbers to 4 significant digits, a mean and its interval one cell."""
    rows, columns = display_table(rows, columns)

    def cell(value: Any) -> str:
        return format_value(value).replace("|", "\\|").replace("\n", " ")

    align = ["---:" if numeric(rows, c) else ":---" for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
