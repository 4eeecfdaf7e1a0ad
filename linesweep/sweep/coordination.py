"""How several sweep processes share one study: trial slots, owners, heartbeats, and reaping.

Any number of sweep processes, on one machine or many, may run the same command against one
storage and study name. Three rules keep them exact:

* Slots. A process asks Optuna for a new trial only while fewer than `n_trials` trials hold a slot,
  and it counts and asks under one lock shared by all of them (a file lock next to a journal or
  SQLite file, an advisory lock in PostgreSQL). So the study ends with exactly `n_trials`.
* Owners. Every trial records which process runs it (host, pid, process start time) and, every
  few seconds, a heartbeat. A RUNNING trial whose owner is gone (its pid has died on this host, or
  its heartbeat is stale on another) was interrupted: it is failed with that reason, and its
  parameters are queued again, so its slot is re-run. A worker asks for a trial and records itself
  as its owner under the slot lock, so a RUNNING trial without an owner, seen under that lock,
  belongs to a worker that died between the two: it is reaped at once. Optuna's own heartbeat
  only covers `study.optimize`; sweeps use ask and tell, so linesweep keeps its own.
* Interrupted trials hold no slot, nor do proposals replaced as duplicates (never run); every
  other finished trial does (complete, pruned, failed).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from linesweep.core.processes import alive_here
from linesweep.core.storage import database_url, is_database_url

try:  # POSIX file locks: released by the kernel when the holder dies, so never stale
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

OWNER = "linesweep.owner"
HEARTBEAT = "linesweep.heartbeat"
STATE = "linesweep.state"  # complete, pruned, failed, diverged, infeasible, killed, interrupted
ERROR = "linesweep.error"
FOLDER = "linesweep.folder"
RETRY_OF = "linesweep.retry_of"
EPOCH = "linesweep.epoch"  # the epoch the trial's values were measured at
NO_SLOT = frozenset({"interrupted", "duplicate"})  # finished trials that do not count


def owner_alive(
    owner: dict[str, Any] | None, heartbeat: float | None, stale_after_s: float
) -> bool:
    """Whether the process that owns a RUNNING trial is still there."""
    here = alive_here(owner) if owner else None
    if here is not None:
        return here
    return heartbeat is not None and time.time() - heartbeat <= stale_after_s


def holds_slot(trial: FrozenTrial) -> bool:
    """Trials that count towards n_trials: all but those interrupted or replaced, and waiting."""
    if trial.state == TrialState.WAITING:
        return False
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get(STATE) in NO_SLOT)


class SlotLock:
    """A lock all sweep processes of one study take while they count trials and ask for one."""

    def __init__(self, storage_url: str, study_name: str) -> None:
        self._file = None
        self._connection = None
        self.exclusive = True  # False: no lock, so another worker may be between ask and owner
        self._key = int.from_bytes(
            hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True
        )
        path = None
        if not is_database_url(storage_url):
            path = storage_url
        elif storage_url.startswith("sqlite:///"):
            path = storage_url[len("sqlite:///") :]
        if path is not None and fcntl is not None:
            self._file = open(f"{path}.slots.lock", "a+b")  # noqa: SIM115 - held for the sweep
        elif storage_url.startswith("postgresql"):
            import sqlalchemy

            engine = sqlalchemy.create_engine(
                database_url(storage_url), poolclass=sqlalchemy.NullPool
            )
            self._connection = engine.connect()
        else:
            self.exclusive = False
            log.warning(
                "no cross-process lock for %s: with several workers the study may end with a "
                "few trials more than n_trials",
                storage_url.split("://", 1)[0],
            )

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        elif self._connection is not None:
            from sqlalchemy import text

            self._connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._connection.commit()
        else:
            yield

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._connection is not None:
            self._connection.close()


def trial_id(storage: BaseStorage, study: optuna.Study, number: int) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def fail_trial(
    storage: BaseStorage, study: optuna.Study, number: int, label: str, reason: str
) -> bool:
    """Mark a RUNNING trial failed with a reason; False if another process finished it first."""
    tid = trial_id(storage, study, number)
    try:
        storage.set_trial_user_attr(tid, STATE, label)
        storage.set_trial_user_attr(tid, ERROR, reason)
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def reap_abandoned(
    storage: BaseStorage, study: optuna.Study, stale_after_s: float, locked: bool = True
) -> list[FrozenTrial]:
    """Fail RUNNING trials whose sweep process is gone, and queue their parameters again.

    Call it holding the slot lock (`locked`): then a RUNNING trial without an owner was asked by
    a worker that died before recording itself, and is reaped at once. Without a lock, such a
    trial may be another worker's between the two steps: it gets `stale_after_s` from its start.
    """
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(OWNER)
        heartbeat = trial.user_attrs.get(HEARTBEAT)
        if owner is None and heartbeat is None and not locked and trial.datetime_start is not None:
            heartbeat = trial.datetime_start.timestamp()
        if (owner is not None or heartbeat is not None) and owner_alive(
            owner, heartbeat, stale_after_s
        ):
            continue
        if owner:
            who = f"the sweep process running it (pid {owner['pid']} on {owner['host']}) is gone"
        else:
            who = "the sweep process that asked for it died before recording itself as its owner"
        reason = f"interrupted: {who}; its slot is re-run"
        if fail_trial(storage, study, trial.number, "interrupted", reason):
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
            reaped.append(trial)
    return reaped
