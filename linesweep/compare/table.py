"""The comparison table: which runs, which columns, in which order, and how the cells read.

The model behind every view of a comparison (terminal, CSV, Markdown, plots, report): `compare()`
reads the folders and returns a `Comparison`; the views only render it.

Runs with replicates (`replicates=R`, or repeats of one config merged by `--group-seeds`) add the
spread columns after the objective: `<metric>_mean` and `<metric>_std` of each objective metric
over the replicates, `success_rate` and `replicates` (how many stand behind the row's numbers).
The CSV keeps them apart; the terminal, Markdown and HTML tables show `<metric>_mean ± std` as one
cell (`display_table`). Without any such run the table is as it always was.

Why one module over 300 lines: selecting, ordering and rendering rows share the column model
(which columns, their directions, their formatting); the views import this one model.
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

from linesweep.compare.groups import NOISE_KEYS, NOISE_PREFIXES, group_seeds
from linesweep.compare.runs import Run, SweepConfigs, natural_key, parse_value, read_run
from linesweep.core.metrics import METRIC_DIRECTIONS, pareto_ranks
from linesweep.core.status import STATUSES, Status

# Fixed columns after the varying config keys and the objective; how each one ranks best first.
FIXED_COLUMNS = ("val_acc", "best_acc", "val_loss", "n_params", "epochs", "wall_s", "state")
COLUMN_DIRECTIONS = {
    "val_acc": "maximize", "best_acc": "maximize", "val_loss": "minimize", "n_params": "minimize",
    "success_rate": "maximize", "replicates": "maximize",
}  # fmt: skip
SPREAD_TAIL = ("success_rate", "replicates")
PLUS_MINUS = " ± std"  # `val_accuracy_mean ± std`: the views' one column for a mean and its std


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
        and key != "replicates"  # how many replicates: the spread column `replicates` shows it
        and len({json.dumps(c[key], sort_keys=True, default=str) for c in configs}) > 1
    ]


def has_replicates(runs: Sequence[Run]) -> bool:
    """Whether any run's numbers stand on more than one replicate."""
    return any(run.replicates > 1 for run in runs)


def spread_columns(runs: Sequence[Run]) -> list[str]:
    """`<metric>_mean`, `<metric>_std` of each objective metric (not n_params: it does not vary),
    `success_rate`, `replicates`."""
    metrics = [m for m in objective_metrics(runs) if m != "n_params" and m in METRIC_DIRECTIONS]
    return [*(f"{m}_{stat}" for m in metrics for stat in ("mean", "std")), *SPREAD_TAIL]


def is_spread_column(column: str) -> bool:
    metric, _, stat = column.rpartition("_")
    return (
        column in SPREAD_TAIL
        or column.endswith(PLUS_MINUS)
        or (stat in ("mean", "std") and metric in METRIC_DIRECTIONS)
    )


def columns_for(
    runs: Sequence[Run], varying: Sequence[str], spread: bool | None = None
) -> list[str]:
    """rank, the varying config keys, the objective, the spread columns (`spread`; default: when
    a run has replicates), the epoch the objective was measured at, the fixed columns, folder and
    note."""
    objective = [f"obj.{m}" for m in objective_metrics(runs)]
    spreads = spread_columns(runs) if (has_replicates(runs) if spread is None else spread) else []
    varying = [k for k in varying if k not in spreads]  # the config key `replicates`
    measured = ["obj_epoch"] if objective else []  # report branch: issue 8
    return ["rank", *varying, *objective, *spreads, *measured, *FIXED_COLUMNS, "folder", "note"]


def direction_of(column: str) -> str | None:
    """maximize/minimize for metric columns (so sorting puts the best first), None otherwise."""
    if column.startswith("obj."):
        return METRIC_DIRECTIONS.get(column[4:])
    metric, _, stat = column.rpartition("_")
    if stat == "mean":
        return METRIC_DIRECTIONS.get(metric)
    if stat == "std" and metric in METRIC_DIRECTIONS:
        return "minimize"
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
    """The run with the best objective, preferring complete runs to pruned or running ones (for
    several objectives: the member of the Pareto set with the best first objective)."""
    ranked = [
        r for r in rank_by_objective(runs) if any(v is not None for v in r.objective.values())
    ]
    front = pareto_set(ranked)  # report branch: several objectives: the Pareto set's first
    complete = [r for r in ranked if r.state == Status.COMPLETE]
    return (front or complete or ranked or [None])[0]


# ---- report branch (issue 12): multi-objective comparisons rank by Pareto front


def _front_ranks(runs: Sequence[Run]) -> dict[int, int]:
    """id(run) -> its non-dominated front among the complete runs with every objective value."""
    metrics = objective_metrics(runs)
    scored = [
        run
        for run in runs
        if run.state == Status.COMPLETE
        and all(_usable(run.objective.get(m)) for m in metrics)
        and all(m in METRIC_DIRECTIONS for m in metrics)
    ]
    points = [[float(run.objective[m]) for m in metrics] for run in scored]  # type: ignore[arg-type]
    return {id(run): rank for run, rank in zip(scored, pareto_ranks(points, metrics), strict=True)}


def pareto_set(runs: Sequence[Run]) -> list[Run]:
    """The complete runs no other complete run beats on every objective, in the given order."""
    if len(objective_metrics(runs)) < 2:
        return []
    fronts = _front_ranks(runs)
    return [run for run in runs if fronts.get(id(run)) == 1]


def _finished_first(run: Run, columns: Sequence[str], worst_first: bool) -> tuple[bool, bool]:
    """A sort key: complete runs, then others with a value (reversed worst first), then none."""
    missing = not any(_usable(run.cell(c)) for c in columns)
    return missing, (run.state != Status.COMPLETE) != worst_first


def by_front(runs: Sequence[Run], worst_first: bool = False) -> list[Run]:
    """Several objectives: the Pareto set first, then each next front; a stable sort."""
    fronts = _front_ranks(runs)
    unranked = math.inf if not worst_first else -math.inf
    return sorted(runs, key=lambda r: fronts.get(id(r), unranked), reverse=worst_first)


# ---- end of the report branch's Pareto ranking


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
    group_seeds: bool = False  # runs that differ only in `seed`: one row (`groups.group_seeds`)


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
    if selection.group_seeds:
        kept = group_seeds(kept)
    if selection.sort is None:
        columns = [f"obj.{m}" for m in objective_metrics(kept)]
        best_first = [direction_of(c) == "maximize" for c in columns]
        # --ascending/--descending set the first objective's order; the others follow its flip.
        flip = bool(columns) and selection.descending not in (None, best_first[0])
        ordered = sort_runs(kept, columns, [down != flip for down in best_first])
        # report branch (issues 8, 12): complete runs rank first, since a pruned run's value is
        # from an earlier epoch; several objectives rank by Pareto front.
        ordered = sorted(ordered, key=lambda run: _finished_first(run, columns, flip))
        if len(columns) > 1:
            ordered = by_front(ordered, worst_first=flip)
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


@dataclass(frozen=True)
class MeanStd:
    """A mean and its standard deviation, as the views show them in one cell: 0.75 ± 0.29."""

    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}"


def display_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows and columns as the terminal, Markdown and HTML tables show them: each
    `<metric>_mean` with its `<metric>_std` as one `<metric>_mean ± std` cell (`MeanStd`; "-"
    for a run without replicates). The CSV, the DataFrame and sorting keep the two numbers."""
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


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(
        isinstance(v, (int, float, MeanStd)) and not isinstance(v, bool) for v in values
    )


# ---- report branch (issue 12): the terminal table and the views' column order


KEY_TAIL = ("obj_epoch", "state", "folder")  # after the objective, in every view
VALUE_WIDTH = 24  # a wide config value (a list, a class path) is shortened to this in the terminal
FOLDER_MIN, NOTE_MIN = 12, 10  # these two take what width is left, shortened


def key_columns(columns: Sequence[str], first: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """How the views order the columns, in two parts: the key columns (rank, the config keys in
    `first`, i.e. the ones the user varied, or every config key when None; the objective, its
    epoch, state and folder), then the others (other config keys, the metrics, the note)."""
    named = {"rank", "note", *KEY_TAIL, *FIXED_COLUMNS}
    spreads = [c for c in columns if is_spread_column(c)]
    keys = [c for c in columns if c not in named and not c.startswith("obj.") and c not in spreads]
    chosen = keys if first is None else [k for k in keys if k in set(first)]
    objective = [c for c in columns if c.startswith("obj.")]
    head = ["rank", *chosen, *objective, *spreads, *KEY_TAIL]
    tail = [*(k for k in keys if k not in chosen), *FIXED_COLUMNS, "note"]  # state: in head
    head = [c for c in dict.fromkeys(head) if c in columns]
    return head, [c for c in dict.fromkeys(tail) if c in columns and c not in head]


def text_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    width: int | None = None,
    first: Sequence[str] | None = None,
) -> str:
    """The table for a terminal `width` columns wide (default: $COLUMNS, else the terminal's).

    Columns in `key_columns` order. The key columns come first in fitting too: rank, the
    objective, its epoch, state and folder, then the varied keys (dropped from the last when even
    those do not fit); then the folder widens to its full length; then the other columns join
    while they fit, and the ones left out are named on a last line. Wide values, folders (from the
    left) and notes are shortened with an ellipsis. Plain text, no colour: it reads the same in a
    pipe or a file. Rendered by rich (its column layout, alignment and ellipsis)."""
    import shutil

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = width or shutil.get_terminal_size().columns
    rows, columns = display_table(rows, columns)
    head, tail = key_columns(columns, first)
    order = head + tail
    cells = {c: [format_value(row.get(c)) for row in rows] for c in order}
    longest = {c: max((len(text) for text in cells[c]), default=1) for c in order}
    smallest = {"folder": FOLDER_MIN, "note": NOTE_MIN}
    # A mean ± std and the replicates behind it are the row's answer; its success rate may wait.
    answer = [c for c in head if c.endswith(PLUS_MINUS) or c == "replicates"]
    essential = ["rank", *(c for c in head if c.startswith("obj.")), *answer, *KEY_TAIL]
    by_priority = [c for c in dict.fromkeys([*essential, *head]) if c in order]

    def layout(split: bool) -> tuple[list[str], dict[str, int]]:
        need = {
            c: max(
                max(len(part) for part in _header(c, split).split("\n")),
                min(longest[c], smallest.get(c, VALUE_WIDTH)),
            )
            for c in order
        }

        def spare(kept: list[str]) -> int:
            return width - sum(need[c] for c in kept) - 2 * (len(kept) - 1)

        kept = list(by_priority)
        while len(kept) > 1 and spare(kept) < 0:
            kept.pop()  # the key columns, the least important first
        if len(kept) < len(by_priority):
            return [c for c in order if c in kept], need
        for c in ("folder", *tail):
            if c in smallest and c in kept:  # widen to the whole folder (or note) if room
                need[c] += max(0, min(spare(kept), longest[c] - need[c]))
            elif c in tail and spare([*kept, c]) >= 0:
                kept.append(c)
                if c in smallest:
                    need[c] += max(0, min(spare(kept), longest[c] - need[c]))
            elif c in tail:
                break  # keep the order: no narrow column after a hidden one
        return [c for c in order if c in kept], need

    split = False
    shown, need = layout(split)
    if len(shown) < len(order):  # headers on two lines (model. / out_1) leave room for more
        split = True
        shown, need = layout(split)

    # A one-space divider and one space of right padding: the 2 between columns counted above.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for c in shown:
        table.add_column(
            _header(c, split),
            justify="right" if _numeric(rows, c) else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=need[c],
        )
    for i in range(len(rows)):
        table.add_row(*(Text(_shorten(cells[c][i], need[c], c == "folder")) for c in shown))
    console = Console(width=width, color_system=None, force_terminal=False, highlight=False)
    with console.capture() as capture:
        console.print(table)
    lines = [line.rstrip() for line in capture.get().splitlines()]
    hidden = [c for c in order if c not in shown]
    if hidden:
        lines.append(f"not shown at {width} columns: {', '.join(hidden)} (in table.csv)")
    return "\n".join(lines)


def _header(column: str, split: bool) -> str:
    """A column's name; when space is short, on two lines after the dot or underscore that makes
    it narrowest (model.conv1. / kernel_size)."""
    cuts = [i + 1 for i, char in enumerate(column[:-1]) if char in "._"]
    if not split or not cuts:
        return column
    cut = min(cuts, key=lambda i: max(i, len(column) - i))
    return f"{column[:cut]}\n{column[cut:]}"


def _shorten(text: str, width: int, from_left: bool) -> str:
    """Text cut to `width` with an ellipsis: a folder keeps its end, which tells runs apart."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1 :] if from_left else text[: width - 1] + "…"


# ---- end of the report branch's terminal table


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    rows, columns = display_table(rows, columns)

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
    if selection.group_seeds and "seed" not in varying and any(run.grouped for run in shown):
        varying.append("seed")  # the seeds each row stands on
    columns = columns_for(shown, varying)
    hidden = 0 if selection.states else sum(run.state == Status.REFUSED for run in runs)
    rows = table_rows(shown, columns)
    return Comparison(runs, shown, columns, rows, varying, best_run(shown), hidden, storage)
