"""A trial whose sweep process died after its run had finished: the run's folder says how.

A population trains many trials in a child process that writes each member's record the moment
it ends; the sweep process tells the study when it reads the result. Killed in between (SIGKILL,
a lost machine), the study holds the trial RUNNING while its folder holds a complete record.
Reaping it as interrupted would throw that work away, train it again, and leave a folder that
says `complete` beside a study that says `interrupted`. So before a trial is reaped, its
folder's record is read (`core.record`, the one schema): when it is that trial's (same study,
same number), complete, and has one finite value per objective, the trial is completed with
them instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from linesweep.core.record import read_record
from linesweep.core.status import Status

log = logging.getLogger("linesweep.sweep.sweeper")
Finished = tuple[list[float], int | None]


def finished_in(sweep_dir: Path, study: optuna.Study) -> Callable[[FrozenTrial], Finished | None]:
    """For `coordination.reap_abandoned`: a trial's finished values from its folder, said."""

    def finished(trial: FrozenTrial) -> Finished | None:
        done = finished_values(sweep_dir, study.study_name, trial, len(study.directions))
        if done is not None:
            log.warning(
                "trial %d was left RUNNING by a sweep process that died after its run finished: "
                "complete, as its folder records",
                trial.number,
            )
        return done

    return finished


def finished_values(
    sweep_dir: Path, study_name: str, trial: FrozenTrial, n_values: int
) -> Finished | None:
    """The objective values (and the epoch they were measured at, where `last`) that the
    trial's folder recorded as complete, or None where it recorded nothing of the kind."""
    try:
        record, _ = read_record(sweep_dir / str(trial.number), sweep_dir)
    except (OSError, ValueError):
        return None
    link = record.trial or {}
    if record.status != Status.COMPLETE or record.objective is None:
        return None
    if link.get("study_name") != study_name or link.get("number") != trial.number:
        return None  # another study's run, or another trial's: not this one's result
    values = record.objective.values
    if len(values) != n_values or not all(v is not None and math.isfinite(v) for v in values):
        return None
    epoch = record.epochs_run if record.objective.epoch == "last" else None
    return [float(v) for v in values], epoch  # type: ignore[arg-type]
