"""One run as the table sees it: the `Run` that compare reads from a folder, and its cells.

`Run` is plain data (runs.py fills it; nothing here reads a file). `Run.cell` is the one mapping
from a run to a table column, used by the terminal, CSV, Markdown, HTML, plots and `load_runs`
alike, so no two views disagree.

A run trained with `replicates=R` holds R members (`Run.members`: each replicate's state, last and
best epoch, objective values, seeds). Its metric cells (`val_acc`, `best_acc`, `val_loss`) are then
the mean over the replicates, and the spread cells sum up the replicates' objective values with
`linesweep.core.stats.summarize`, the one function the answer (linesweep/core/answer.py) uses too:
`<metric>_mean` with its 95% Student t interval (`<metric>_ci_low`, `<metric>_ci_high`), the
sample std and `<metric>_n` (finite values: a diverged replicate has none), and for the first
objective metric `success_rate` with its 95% Wilson interval (`success_ci_low`,
`success_ci_high`). A plain run has no members, `replicates` 1 and no spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linesweep.compare.fields import finite
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.record import ShapesRecord
from linesweep.core.stats import Summary, summarize
from linesweep.core.status import Status

# Per objective metric, the columns `<metric>_<stat>`: Summary's fields of that name.
METRIC_STATS = ("mean", "ci_low", "ci_high", "std", "n")
# The first objective metric's success rate and its Wilson interval: column -> Summary field.
SUCCESS_COLUMNS = {
    "success_rate": "success_rate",
    "success_ci_low": "success_low",
    "success_ci_high": "success_high",
}


@dataclass
class Member:
    """One replicate of a run (or, in a group of seeds, one run): what its numbers were."""

    replicate: int
    state: Status | None = None  # None: no summary said (a running population)
    final: dict[str, float] = field(default_factory=dict)  # its last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # its epoch with the best val_accuracy
    values: dict[str, float | None] = field(default_factory=dict)  # objective metric -> value
    folder: Path | None = None  # set when the member is a run of its own (a group of seeds)
    seeds: dict[str, int] | None = None  # its seeds (summary.json's), for paired tests
    epochs_run: int | None = None


@dataclass
class Run:
    """One run folder as the table sees it; what a folder lacks stays empty. Plain data only."""

    folder: Path
    state: Status = Status.UNREADABLE
    config: dict[str, Any] | None = None  # flattened: {"model.out_1": 4, "optimizer.lr": 0.01}
    config_text: str | None = None  # .hydra/config.yaml as written, for the report
    objective: dict[str, float | None] = field(default_factory=dict)  # metric -> value
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # the row with the best val_accuracy
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, one per epoch
    shapes: ShapesRecord | None = None  # shapes.yaml, checked by its reader
    n_params: int | None = None
    epochs_run: int | None = None
    wall_time_s: float | None = None
    overrides: list[str] | None = None  # .hydra/overrides.yaml, else summary.json's
    note: str | None = None  # the error, or why the run stopped
    sweep: Path | None = None  # the sweep or multirun folder that holds it
    warnings: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)  # its replicates; empty for a plain run
    success_threshold: float | None = None  # a replicate succeeds when objective[0] reaches it
    grouped: list[Path] = field(default_factory=list)  # a group of seeds: its runs' folders
    seeds: dict[str, int] | None = None  # summary.json's seeds (replicate 0's, a plain run's)
    # replicate_summary's results by metric: every view asks for the same few, many times.
    summaries: dict[str, Summary | None] = field(default_factory=dict, repr=False, compare=False)

    def cell(self, column: str) -> Any:
        """The value of a table column, or of any config key; None when the run lacks it."""
        if column.startswith("obj."):
            return self.objective.get(column[4:])
        if column in _CELLS:
            return _CELLS[column](self)
        stat = metric_stat(column)
        if stat is not None:
            summary = replicate_summary(self, stat[0])
            return None if summary is None else getattr(summary, stat[1])
        return None if self.config is None else self.config.get(column)

    @property
    def replicates(self) -> int:
        """How many replicates stand behind the run's numbers: 1 for a plain run."""
        return max(1, len(self.members))


def read_overrides(run: Run) -> list[str]:
    """The run's task overrides, as `read_run` found them."""
    return list(run.overrides or [])


def metric_stat(column: str) -> tuple[str, str] | None:
    """(metric, stat) of a spread column `<metric>_<stat>` (val_accuracy_ci_low), else None."""
    for stat in METRIC_STATS:
        metric = column.removesuffix(f"_{stat}")
        if metric != column and metric in METRIC_DIRECTIONS:
            return metric, stat
    return None


def replicate_summary(run: Run, metric: str) -> Summary | None:
    """`summarize` of the replicates' objective values of `metric` (None for a plain run).

    A replicate without a value (diverged: NaN) is left out of the moments and counts as a
    failure, as in the trainer's own summary. The success rate needs a threshold and is about
    the first objective metric only; for other metrics, and without a threshold, it is None.
    """
    if metric not in run.summaries:
        run.summaries[metric] = _summary(run, metric)
    return run.summaries[metric]


def _summary(run: Run, metric: str) -> Summary | None:
    if len(run.members) < 2 or metric not in METRIC_DIRECTIONS:
        return None
    values = [member.values.get(metric) for member in run.members]
    if all(v is None for v in values):
        return None
    first = next(iter(run.objective), None)
    threshold = run.success_threshold if metric == first else None
    return summarize(
        [math.nan if v is None else v for v in values], METRIC_DIRECTIONS[metric], threshold
    )


def _success(field_name: str) -> Callable[[Run], float | None]:
    def cell(run: Run) -> float | None:
        first = next(iter(run.objective), None)
        summary = None if first is None else replicate_summary(run, first)
        return None if summary is None else getattr(summary, field_name)

    return cell


def _member_mean(key: str, which: str) -> Callable[[Run], float | None]:
    """A metric cell: the run's own row, or for replicates the mean of theirs (finite ones)."""

    def cell(run: Run) -> float | None:
        if len(run.members) < 2:
            return getattr(run, which).get(key)
        values = [getattr(m, which).get(key) for m in run.members]
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return cell


def objective_epoch(run: Run) -> int | None:
    """The epoch the objective was measured at: the last trained (objective.epoch=last; a pruned
    run's is the epoch it stopped at), or the first metric's best epoch (objective.epoch=best)."""
    if all(value is None for value in run.objective.values()):
        return None
    metric = next((m for m in run.objective if m != "n_params"), None)
    if metric is None:
        return None  # the parameter count is not measured at an epoch
    if (run.config or {}).get("objective.epoch") == "best":
        sign = 1.0 if METRIC_DIRECTIONS.get(metric) == "maximize" else -1.0
        scored = [row for row in run.history if finite(row.get(metric)) is not None]
        best = max(scored, key=lambda row: sign * row[metric], default=None)
        return None if best is None else int(best["epoch"])
    return run.epochs_run


_CELLS = {
    "obj_epoch": objective_epoch,
    "val_acc": _member_mean("val_accuracy", "final"),
    "best_acc": _member_mean("val_accuracy", "best"),
    "val_loss": _member_mean("val_loss", "final"),
    "n_params": lambda run: run.n_params,
    "epochs": lambda run: run.epochs_run,
    "wall_s": lambda run: run.wall_time_s,
    "state": lambda run: run.state,
    "folder": lambda run: str(run.folder),
    "note": lambda run: run.note,
    **{column: _success(name) for column, name in SUCCESS_COLUMNS.items()},
    "replicates": lambda run: run.replicates,
}
