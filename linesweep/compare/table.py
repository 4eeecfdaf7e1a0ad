"""The comparison table: which runs, which columns, in which order, and how the cells read.

The model behind every view of a comparison (terminal, CSV, Markdown, plots, report): `compare()`
reads the folders and returns a `Comparison`; the views only render it.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linesweep.compare.runs import Run, SweepConfigs, natural_key, parse_value, read_run
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.status import STATUSES, Status

NOISE_PREFIXES = ("hydra.", "plots.")  # differ between runs without changing what they learn
NOISE_KEYS = frozenset({"trainer.progress_bar"})
# Fixed columns after the varying config keys and the objective; how each one ranks best first.
FIXED_COLUMNS = ("val_acc", "best_acc", "val_loss", "n_params", "epochs", "wall_s", "state")
COLUMN_DIRECTIONS = {
    "val_acc": "maximize", "best_acc": "maximize", "val_loss": "minimize", "n_params": "minimize",
}  # fmt: skip
NOTE_WIDTH = 48  # the terminal clips notes (errors); the files keep them whole


class UsageError(Exception):
    """A bad argument or nothing to compare: one line on stderr, exit status 2."""


def objective_metrics(runs: Sequence[Run]) -> list[str]:
    """Every objective metric of the runs, in the order they first appear."""
    return list(dict.fromkeys(m for run in runs for m in run.objective))


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys that every run with a config has, whose values are not all the same."""
    configs = [run.config for run in runs if run.config is not None]
    if len(configs) < 2:
        return []
    shared = [k for k in configs[0] if all(k in c for c in configs[1:])]
    return [
        key
        for key in shared
        if not key.startswith(NOISE_PREFIXES)
        and key not in NOISE_KEYS
        and len({json.dumps(c[key], sort_keys=True, default=str) for c in configs}) > 1
    ]


def columns_for(runs: Sequence[Run], varying: Sequence[str]) -> list[str]:
    """rank, the varying config keys, the objective, the fixed columns, folder and note."""
    objective = [f"obj.{m}" for m in objective_metrics(runs)]
    return ["rank", *varying, *objective, *FIXED_COLUMNS, "folder", "note"]


def direction_of(column: str) -> str | None:
    """maximize/minimize for metric columns (so sorting puts the best first), None otherwise."""
    if column.startswith("obj."):
        return METRIC_DIRECTIONS.get(column[4:])
    return COLUMN_DIRECTIONS.get(column)


def _order_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, json.dumps(value, sort_keys=True, default=str))  # strings, booleans, lists


def sort_runs(runs: Sequence[Run], columns: Sequence[str], descending: Sequence[bool]) -> list[Run]:
    """Sort by each column in turn (ties fall to the next, then the folder); missing values last."""
    ordered = sorted(runs, key=lambda run: natural_key(run.folder))
    for column, down in reversed(list(zip(columns, descending, strict=True))):
        present = [r for r in ordered if _usable(r.cell(column))]
        absent = [r for r in ordered if not _usable(r.cell(column))]
        present.sort(key=lambda r: _order_key(r.cell(column)), reverse=down)
        ordered = present + absent
    return ordered


def _usable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def rank_by_objective(runs: Sequence[Run]) -> list[Run]:
    """Best objective first (each metric in its own direction); runs without a value last."""
    columns = [f"obj.{m}" for m in objective_metrics(runs)]
    return sort_runs(runs, columns, [direction_of(c) == "maximize" for c in columns])


def best_run(runs: Sequence[Run]) -> Run | None:
    """The run with the best objective, preferring complete runs to pruned or running ones."""
    ranked = [
        r for r in rank_by_objective(runs) if any(v is not None for v in r.objective.values())
    ]
    complete = [r for r in ranked if r.state == Status.COMPLETE]
    return (complete or ranked or [None])[0]


@dataclass(frozen=True)
class Filter:
    """`--where key=value`: the value is read as YAML, so 4, 0.01, true and [a,b] mean values."""

    key: str
    text: str

    @property
    def value(self) -> Any:
        return parse_value(self.text)

    def matches(self, run: Run) -> bool:
        actual, wanted = run.cell(self.key), self.value
        if actual is None:
            return wanted is None
        if isinstance(actual, bool) or isinstance(wanted, bool):
            return actual == wanted
        if isinstance(actual, (int, float)) and isinstance(wanted, (int, float)):
            return math.isclose(actual, wanted, rel_tol=1e-9)
        return actual == wanted or str(actual) == self.text


def known_keys(runs: Sequence[Run]) -> list[str]:
    keys = dict.fromkeys(columns_for(runs, []))
    keys.update(dict.fromkeys(k for run in runs if run.config for k in run.config))
    return list(keys)


def _check_key(option: str, key: str, runs: Sequence[Run]) -> None:
    keys = known_keys(runs)
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"{option}: no run has a column or config key {key!r}{hint}")


@dataclass(frozen=True)
class Selection:
    """What the options ask for: filters, an order, and how many rows to keep."""

    where: tuple[Filter, ...] = ()
    states: tuple[str, ...] = ()
    sort: str | None = None
    descending: bool | None = None  # None: best first for metrics, ascending for other columns
    top: int | None = None


def shown_by_state(run: Run, states: Sequence[str]) -> bool:
    """Whether `--state` keeps the run; without it, every run but those refused by validation.

    A refused run is a config linesweep would not train (a typo on the command line, say): it
    has nothing to compare, and a bare `compare` would otherwise show only that.
    """
    return run.state in states if states else run.state != Status.REFUSED


def select(runs: Sequence[Run], selection: Selection) -> list[Run]:
    """Filter, sort and cut the runs as the options ask; UsageError names a bad key or state."""
    for condition in selection.where:
        _check_key("--where", condition.key, runs)
    unknown = [s for s in selection.states if s not in STATUSES]
    if unknown:
        raise UsageError(f"--state: unknown state {unknown[0]!r}; states: {', '.join(STATUSES)}")
    kept = [
        run
        for run in runs
        if all(c.matches(run) for c in selection.where) and shown_by_state(run, selection.states)
    ]
    if selection.sort is None:
        columns = [f"obj.{m}" for m in objective_metrics(kept)]
        best_first = [direction_of(c) == "maximize" for c in columns]
        # --ascending/--descending set the first objective's order; the others follow its flip.
        flip = bool(columns) and selection.descending not in (None, best_first[0])
        ordered = sort_runs(kept, columns, [down != flip for down in best_first])
    else:
        _check_key("--sort", selection.sort, runs)
        down = selection.descending
        if down is None:
            down = direction_of(selection.sort) == "maximize"
        ordered = sort_runs(kept, [selection.sort], [down])
    return ordered[: selection.top] if selection.top else ordered


def table_rows(runs: Sequence[Run], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per run, raw values (None where a run lacks one), ranked in the given order."""
    rows = []
    for rank, run in enumerate(runs, start=1):
        row = {column: run.cell(column) for column in columns}
        row["rank"] = rank
        rows.append(row)
    return rows


def format_value(value: Any) -> str:
    """How a value reads in the terminal, Markdown and HTML tables (the CSV keeps every digit)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An aligned plain-text table: numbers right-aligned, notes clipped to NOTE_WIDTH."""

    def clip(text: str) -> str:
        return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"

    cells = [list(columns)] + [
        [clip(format_value(row[c])) if c == "note" else format_value(row[c]) for c in columns]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    right = [_numeric(rows, c) for c in columns]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if r else cell.ljust(w)
            for cell, w, r in zip(line, widths, right, strict=True)
        ).rstrip()
        for line in cells
    )


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        return format_value(value).replace("|", "\\|").replace("\n", " ")

    align = ["---:" if _numeric(rows, c) else ":---" for c in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lists as JSON (`["val_accuracy"]`), so that a spreadsheet cell reads back as one value."""
    return [
        {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
        for row in rows
    ]


@dataclass
class Comparison:
    """All runs found, the ones the options kept (in order), and their table."""

    runs: list[Run]
    shown: list[Run]
    columns: list[str]
    rows: list[dict[str, Any]]
    varying: list[str]
    best: Run | None
    refused_hidden: int = 0  # refused runs left out because no --state asked for them
    storage: str | None = None  # --storage: where the sweeps' studies are (else their journals)

    @property
    def with_warnings(self) -> int:
        return sum(1 for run in self.runs if run.warnings)

    def count_line(self) -> str:
        found = f"{len(self.runs)} runs ({self.with_warnings} with warnings)"
        if len(self.shown) == len(self.runs):
            return found
        return f"{len(self.shown)} shown of {found}"

    def hidden_line(self) -> str | None:
        """One line on the refused runs left out by default, or None when there are none."""
        if not self.refused_hidden:
            return None
        runs = "run" if self.refused_hidden == 1 else "runs"
        return f"{self.refused_hidden} refused {runs} not shown; --state refused shows them"

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(run.state for run in self.runs).most_common())


def compare(
    folders: Sequence[Path], selection: Selection = Selection(), storage: str | None = None
) -> Comparison:
    """Read every run folder and build the table the options ask for."""
    sweeps = SweepConfigs()
    runs = [read_run(folder, sweeps) for folder in folders]
    shown = select(runs, selection)
    varying = varying_keys(shown)
    columns = columns_for(shown, varying)
    hidden = 0 if selection.states else sum(run.state == Status.REFUSED for run in runs)
    rows = table_rows(shown, columns)
    return Comparison(runs, shown, columns, rows, varying, best_run(shown), hidden, storage)
