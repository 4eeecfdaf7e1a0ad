"""One run as the table sees it: the `Run` that compare reads from a folder, and its cells.

`Run` is plain data (runs.py fills it; nothing here reads a file). `Run.cell` is the one mapping
from a run to a table column, used by the terminal, CSV, Markdown, HTML, plots and `load_runs`
alike, so no two views disagree.

A run trained with `replicates=R` holds R members (`Run.members`: each replicate's state, last and
best epoch, objective values). Its metric cells (`val_acc`, `best_acc`, `val_loss`) are then the
mean over the replicates, and the spread cells (`<metric>_mean`, `<metric>_std`, `success_rate`)
sum up the replicates' objective values with `linesweep.core.metrics.spread`, as the trainer does;
a plain run has no members, `replicates` 1 and no spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linesweep.compare.fields import finite
from linesweep.core.metrics import METRIC_DIRECTIONS, spread
from linesweep.core.record import ShapesRecord
from linesweep.core.status import Status


@dataclass
class Member:
    """One replicate of a run (or, in a group of seeds, one run): what its numbers were."""

    replicate: int
    state: Status | None = None  # None: no summary said (a running population)
    final: dict[str, float] = field(default_factory=dict)  # its last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # its epoch with the best val_accuracy
    values: dict[str, float | None] = field(default_factory=dict)  # objective metric -> value
    folder: Path | None = None  # set when the member is a run of its own (a group of seeds)


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

    def cell(self, column: str) -> Any:
        """The value of a table column, or of any config key; None when the run lacks it."""
        if column.startswith("obj."):
            return self.objective.get(column[4:])
        if column in _CELLS:
            return _CELLS[column](self)
        metric, _, stat = column.rpartition("_")
        if stat in ("mean", "std") and metric in METRIC_DIRECTIONS:
            stats = replicate_spread(self, metric)
            return None if stats is None else stats[stat]
        return None if self.config is None else self.config.get(column)

    @property
    def replicates(self) -> int:
        """How many replicates stand behind the run's numbers: 1 for a plain run."""
        return max(1, len(self.members))


def read_overrides(run: Run) -> list[str]:
    """The run's task overrides, as `read_run` found them."""
    return list(run.overrides or [])


def replicate_spread(run: Run, metric: str) -> dict[str, float] | None:
    """`spread` of the replicates' objective values of `metric` (None for a plain run).

    A replicate without a value (diverged: NaN) is left out of the moments and counts as a
    failure, as in the trainer's own summary. The success rate needs a threshold and is about
    the first objective metric only; for other metrics, and without a threshold, it is None.
    """
    if len(run.members) < 2 or metric not in METRIC_DIRECTIONS:
        return None
    values = [member.values.get(metric) for member in run.members]
    if all(v is None for v in values):
        return None
    threshold = run.success_threshold
    first = next(iter(run.objective), None)
    stats = spread([math.nan if v is None else v for v in values], metric, threshold or 0.0)
    if threshold is None or metric != first:
        stats["success_rate"] = None  # type: ignore[assignment]
    return stats


def _success_rate(run: Run) -> float | None:
    first = next(iter(run.objective), None)
    stats = None if first is None else replicate_spread(run, first)
    return None if stats is None else stats["success_rate"]


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
    "success_rate": _success_rate,
    "replicates": lambda run: run.replicates,
}
