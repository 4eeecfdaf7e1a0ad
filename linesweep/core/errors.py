"""How a run can end other than complete: typed, picklable exceptions that carry their status.

Two kinds. `LinesweepError`s are the user's to fix (a bad value, an impossible architecture) and
print as one line naming the key, the value and the fix. `RunStopped`s are runs that trained and
stopped early (pruned, diverged): no one's error. Each carries the `Status` it records and the
exit status a single run ends with, so that every caller maps them the same way: the command
line turns them into exit codes, a sweeper into trial states (as Optuna's own `_run_trial` maps
`TrialPruned`), without reading the run's files. Each pickles with its arguments
(`__reduce__`), so it crosses from a trial's process to the sweep's intact.
"""

from __future__ import annotations

from typing import Any

from linesweep.core.status import Status


def interrupted_by(interrupt: KeyboardInterrupt) -> str:
    """The signal that stopped a run: a run turns SIGTERM into KeyboardInterrupt("SIGTERM"),
    Python turns Ctrl-C into a bare KeyboardInterrupt."""
    return str(interrupt) or "SIGINT"


class LinesweepError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""

    status = Status.FAILED
    exit_code = 2


class ConfigError(LinesweepError):
    """A config value outside what linesweep accepts."""

    status = Status.REFUSED

    def __init__(self, key: str, value: Any, allowed: str, fix: str | None = None) -> None:
        self.key, self.value, self.allowed, self.fix = key, value, allowed, fix
        message = f"{key}={_show(value)} is not allowed: {allowed}"
        super().__init__(f"{message}; {fix}" if fix else message)

    def __reduce__(self):
        return (type(self), (self.key, self.value, self.allowed, self.fix))


class InfeasibleArchitecture(LinesweepError):
    """A layer stack whose activations would shrink below 1x1 (or that torch would reject)."""

    status = Status.INFEASIBLE

    def __init__(self, layer: str, reason: str, fix: str) -> None:
        self.layer, self.reason, self.fix = layer, reason, fix
        super().__init__(f"{layer}: {reason}; {fix}")

    def __reduce__(self):
        return (type(self), (self.layer, self.reason, self.fix))


class RunStopped(Exception):
    """A run that trained some epochs and stopped early; its record is complete and says why."""

    status = Status.FAILED
    exit_code = 1

    def __init__(self, reason: str, epoch: int) -> None:
        self.reason, self.epoch = reason, epoch
        super().__init__(reason)

    def __reduce__(self):
        return (type(self), (self.reason, self.epoch))


class Pruned(RunStopped):
    """A sweep's pruner stopped the run after `epoch`."""

    status = Status.PRUNED


class Diverged(RunStopped):
    """The loss became NaN or infinite at `epoch`: no value of this run can be trusted."""

    status = Status.DIVERGED
    exit_code = 3


def _show(value: Any) -> str:
    """Render a value the way the user would type it on the command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return repr(value)
