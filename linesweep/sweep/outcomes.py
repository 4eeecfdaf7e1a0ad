"""How a trial ended, judged from its job's return value or exception, never from its files.

The task raises typed exceptions that carry their `Status` (`linesweep.core.errors`); any other
app returns a value `float()` accepts, or raises. This is the one place that maps both to
Optuna's trial states, as Optuna's own `_run_trial` maps `TrialPruned`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from linesweep.core.errors import LinesweepError, RunStopped, interrupted_by
from linesweep.core.status import Status


@dataclass
class JobOutcome:
    """What an executor knows of a finished job."""

    number: int
    job_return: JobReturn | None  # None when the job's process died before returning
    output_dir: Path | None
    died: str | None = None  # why the process died, e.g. "killed by SIGKILL"
    timed_out: bool = False  # ended by the sweep: no epoch reported within trial_timeout


@dataclass(frozen=True)
class Verdict:
    status: Status
    values: list[float] | None  # one per objective, for a complete trial
    reason: str | None  # why it did not complete, as one line
    epoch: int | None = None  # the epoch a pruned or diverged trial stopped at

    @property
    def optuna_state(self) -> TrialState:
        """Optuna's state for it: complete and pruned are Optuna's own, every other end fails."""
        return OPTUNA_STATES.get(self.status, TrialState.FAIL)


# linesweep's words and Optuna's trial states, the one place they meet: a failed trial's
# `linesweep.state` user attribute says which of linesweep's failures it was.
OPTUNA_STATES = {
    Status.COMPLETE: TrialState.COMPLETE,
    Status.PRUNED: TrialState.PRUNED,
    Status.RUNNING: TrialState.RUNNING,
    Status.WAITING: TrialState.WAITING,
}


def status_of(state: TrialState) -> Status:
    """linesweep's word for an Optuna trial state (a FAIL without a reason: failed)."""
    return next((s for s, t in OPTUNA_STATES.items() if t == state), Status.FAILED)


def as_objective(value: Any) -> list[float]:
    """The objective values of a return value: anything `float()` accepts, or a sequence of it.

    numpy and torch scalars, 0-d arrays and tensors, arrays, lists, tuples and OmegaConf lists.
    Raises TypeError or ValueError for anything else.
    """
    if hasattr(value, "tolist"):  # numpy and torch, without importing either
        value = value.tolist()
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, bool) for v in items):  # float(True) is 1.0, but surely a mistake
        raise TypeError(f"not a number: {value!r}")
    return [float(v) for v in items]


def judge(outcome: JobOutcome, n_objectives: int) -> Verdict:
    """The trial's status, values and reason from how its job ended."""
    if outcome.timed_out:
        return Verdict(Status.TIMEOUT, None, outcome.died)
    if outcome.died is not None:
        status = Status.INTERRUPTED if outcome.died == Status.INTERRUPTED else Status.KILLED
        return Verdict(status, None, f"trial process {outcome.died}")
    ret = outcome.job_return
    assert ret is not None
    if ret.status == JobStatus.FAILED:
        return _judge_error(ret._return_value)
    try:
        values = as_objective(ret._return_value)
    except (TypeError, ValueError):
        return Verdict(
            Status.FAILED, None, f"the job returned {ret._return_value!r}, not an objective value"
        )
    if len(values) != n_objectives:
        reason = f"the job returned {len(values)} value(s) for {n_objectives} objective(s)"
        return Verdict(Status.FAILED, None, reason)
    if not all(math.isfinite(v) for v in values):
        return Verdict(Status.FAILED, None, f"the job returned a non-finite objective: {values}")
    return Verdict(Status.COMPLETE, values, None)


def _judge_error(error: Any) -> Verdict:
    if isinstance(error, RunStopped):
        return Verdict(error.status, None, error.reason, error.epoch)
    if type(error).__name__ == "TrialPruned":  # optuna.TrialPruned, from any app
        return Verdict(Status.PRUNED, None, str(error) or Status.PRUNED.value)
    if isinstance(error, LinesweepError):
        return Verdict(error.status, None, str(error))
    if isinstance(error, KeyboardInterrupt):  # SIGTERM or SIGINT reached the trial's process
        return Verdict(Status.INTERRUPTED, None, f"interrupted by {interrupted_by(error)}")
    return Verdict(Status.FAILED, None, f"{type(error).__name__}: {error}")
