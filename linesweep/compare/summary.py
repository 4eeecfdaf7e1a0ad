"""summary.json and shapes.yaml into a `Run`: the state, objective, replicates, shape plan.

Both files are typed records (`linesweep.core.record.RunRecord`, `ShapesRecord`), checked field
by field once by their reader; here each checked record becomes the table's view of the run,
and what the reader left out becomes one warning line per file.
"""

from __future__ import annotations

from linesweep.compare.row import Member, Run
from linesweep.core.checked import Problems
from linesweep.core.processes import alive_here
from linesweep.core.record import SHAPES, SUMMARY, RunRecord, ShapesRecord
from linesweep.core.status import Status

# What a trainer may write into summary.json; compare's own words (incomplete...) are not.
STATUSES_WRITTEN = frozenset(s.value for s in Status if s.written)


def malformed(run: Run, name: str, problems: Problems) -> None:
    """One warning line naming what the reader left out of file `name`, if anything."""
    if problems:
        run.warnings.append(f"{name} has malformed values, left out: {', '.join(problems)}")


def apply_summary(run: Run, record: RunRecord, problems: Problems) -> None:
    """The record's fields, as the table holds them (its reader checked every one)."""
    malformed(run, SUMMARY, problems)
    if record.status is None:
        if not any(p.startswith("status ") for p in problems):  # else said just above
            run.warnings.append(f"{SUMMARY} has no status linesweep writes")
        run.state = Status.INCOMPLETE
    else:
        run.state = record.status
    run.note = record.error or record.reason
    run.final, run.best = _numbers(record.final), _numbers(record.best)
    run.n_params, run.epochs_run = record.n_params, record.epochs_run
    run.wall_time_s = record.wall_time_s
    run.seeds = dict(record.seeds) or None
    if record.objective is not None:
        metrics = record.objective.metrics
        run.objective = dict(zip(metrics, record.objective.values, strict=True))
    elif run.state == Status.COMPLETE and not any(p.startswith("objective") for p in problems):
        run.warnings.append(f"{SUMMARY} has no objective: not ranked")
    if record.replicates is not None:
        run.success_threshold = record.replicates.success_threshold
        run.members = [
            Member(
                m.replicate,
                m.status,
                _numbers(m.final),
                values=dict(zip(run.objective, m.values, strict=True)) if m.values else {},
                seeds=dict(m.seeds) or None,
                epochs_run=m.epochs_run,
            )
            for m in record.replicates.members
        ]
    if run.state == Status.RUNNING and record.host is not None and record.pid is not None:
        owner = {"host": record.host, "pid": record.pid, "pid_start": record.pid_start}
        if alive_here(owner) is False:  # other hosts: unknowable
            run.state = Status.KILLED
            run.note = f"process {record.pid} on {record.host} is gone"


def apply_shapes(run: Run, record: ShapesRecord, problems: Problems) -> None:
    run.shapes = record
    malformed(run, SHAPES, problems)


def _numbers(row: dict[str, float | None]) -> dict[str, float]:
    """A metrics row without the values JSON could not hold (NaN, written as null)."""
    return {k: v for k, v in row.items() if v is not None}
