"""summary.json's fields, checked one by one into a `Run`: the state, objective, replicates...

Moved here as one block from runs.py: these hand checks go away once `linesweep.core.record`
reads summary.json into a typed record (issue 22, item 1); `apply_summary` is the one call site.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from linesweep.compare.fields import (
    MAX_REPLICATES,
    Fields,
    count,
    finite,
    is_number,
    share,
    show,
    text,
    texts,
)
from linesweep.compare.row import Member, Run
from linesweep.core.processes import alive_here
from linesweep.core.record import SUMMARY
from linesweep.core.status import Status

# What a trainer may write into summary.json; compare's own words (incomplete...) are not.
STATUSES_WRITTEN = frozenset(
    s.value for s in Status if s not in (Status.INCOMPLETE, Status.UNREADABLE, Status.KILLED)
)
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # no `$`: names reach plot titles


def _metric_names(value: Any) -> list[str] | None:
    names = texts(value)
    return names if names and all(_METRIC_NAME.fullmatch(n) for n in names) else None


def metrics_row(value: Any) -> dict[str, float] | None:
    """A metrics row: names to numbers; None (how JSON writes NaN) leaves a metric out."""
    if not isinstance(value, dict):
        return None
    if any(v is not None and not is_number(v) for v in value.values()):
        return None
    return {k: f for k, v in value.items() if (f := finite(v)) is not None}


def _values_for(names: list[str]) -> Callable[[Any], list[float | None] | None]:
    def check(value: Any) -> list[float | None] | None:
        ok = isinstance(value, list) and len(value) == len(names)
        if not ok or not all(v is None or is_number(v) for v in value):
            return None
        return [finite(v) for v in value]

    return check


def _pid(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
    return value if ok else None


def apply_summary(run: Run, summary: dict[str, Any]) -> None:
    """Fill `run` from its parsed summary.json; each malformed field is left out and named."""
    status = summary.get("status")
    if not isinstance(status, str) or status not in STATUSES_WRITTEN:  # a list is unhashable
        run.warnings.append(f"{SUMMARY} has no status linesweep writes: {show(status)}")
        run.state = Status.INCOMPLETE
    else:
        run.state = Status(status)
    fields = Fields(summary)
    error, reason = fields.get("error", text, "not text"), fields.get("reason", text, "not text")
    run.note = error or reason
    final = fields.get("final", metrics_row, "not a row of numbers")
    best = fields.get("best", metrics_row, "not a row of numbers")
    run.final, run.best = final or {}, best or {}
    run.n_params = fields.get("n_params", count, "not a count")
    run.epochs_run = fields.get("epochs_run", count, "not a count")
    run.wall_time_s = fields.get("wall_time_s", finite, "not a finite number")
    fields.get("overrides", texts, "not a list of text")
    host = fields.get("host", text, "not text")
    pid = fields.get("pid", _pid, "not a process id")
    pid_start = fields.get("pid_start", text, "not text")
    objective = summary.get("objective")
    if isinstance(objective, dict):
        metrics = fields.get("objective.metrics", _metric_names, "not a list of metric names")
        if metrics:
            values = fields.get("objective.values", _values_for(metrics), "not one number each")
            run.objective = dict(zip(metrics, values or [None] * len(metrics), strict=True))
    elif objective is not None:
        fields.get("objective", lambda _: None, "not a mapping")
    elif run.state == Status.COMPLETE:
        run.warnings.append(f"{SUMMARY} has no objective: not ranked")
    if isinstance(summary.get("replicates"), dict):
        threshold = fields.get("replicates.success_threshold", share, "not a number in [0, 1]")
        run.success_threshold = threshold
        check = _members(list(run.objective))
        members = fields.get("replicates.members", check, "not a list of replicate records")
        run.members = members or []
    elif summary.get("replicates") is not None:
        fields.get("replicates", lambda _: None, "not a mapping")
    if run.state == Status.RUNNING and host is not None and pid is not None:
        record = {"host": host, "pid": pid, "pid_start": pid_start}
        if alive_here(record) is False:  # other hosts: unknowable
            run.state = Status.KILLED
            run.note = f"process {pid} on {host} is gone"
    if warning := fields.warning(SUMMARY):
        run.warnings.append(warning)


def _members(metrics: list[str]) -> Callable[[Any], list[Member] | None]:
    """summary.json's `replicates.members`: each replicate's number, status, last epoch and
    objective values; None (the whole list left out) when any record is malformed."""
    values_of = _values_for(metrics)

    def member(record: Any) -> Member | None:
        if not isinstance(record, dict):
            return None
        number, status = count(record.get("replicate")), record.get("status")
        final = metrics_row(record.get("final", {}))
        values = values_of(record["values"]) if "values" in record else [None] * len(metrics)
        ok = isinstance(status, str) and status in STATUSES_WRITTEN
        if number is None or not ok or final is None or values is None:
            return None
        return Member(number, Status(status), final, values=dict(zip(metrics, values, strict=True)))

    def check(value: Any) -> list[Member] | None:
        if not isinstance(value, list) or len(value) > MAX_REPLICATES:
            return None
        members = [member(record) for record in value]
        return None if None in members else members  # type: ignore[return-value]

    return check
