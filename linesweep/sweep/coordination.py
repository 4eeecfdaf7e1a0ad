"""How several sweep processes share one study: trial slots, owners, heartbeats, and reaping.

Any number of sweep processes, on one machine or many, may run the same command against one
storage and study name. Three rules keep them exact:

* Slots. A process asks Optuna for a new trial only while fewer than `n_trials` trials hold a slot,
  and it counts and asks under one lock shared by all of them (a file lock next to a journal or
  SQLite file, an advisory lock in PostgreSQL). So the study ends with exactly `n_trials`.
* Owners. Every trial records which process runs it (host, pid, process start time), and that
  process sends a heartbeat for it every few seconds. A RUNNING trial whose owner is gone was
  interrupted: it is failed, and its parameters are queued again, so its slot is re-run. On a
  database that is Optuna's own mechanism: the storage records heartbeats
  (`record_heartbeat`), `fail_stale_trials` fails a trial whose heartbeat is older than
  `stale_after_s`, and Optuna's `RetryHeartbeatStaleTrialCallback` queues the re-run (its
  `retry_history` system attribute names the trials re-run). Journal files have no heartbeat in
  Optuna, so there linesweep keeps its own (the `linesweep.heartbeat` user attribute) and its
  own re-run mark (`linesweep.retry_of`). Two checks Optuna lacks apply to both: an owner on
  this host whose pid has died is reaped at once, without waiting out the grace period; and a
  worker asks for a trial and records itself as its owner under the slot lock, so a RUNNING
  trial without an owner, seen under that lock, belongs to a worker that died between the two
  (before its first heartbeat, which Optuna would wait for forever): it is reaped at once.
* Interrupted trials hold no slot, nor do proposals replaced as duplicates (never run); every
  other finished trial does (complete, pruned, failed).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import logging
import os
import stat
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, fail_stale_trials
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from linesweep.core.errors import ConfigError
from linesweep.core.files import what_is
from linesweep.core.processes import alive_here
from linesweep.core.status import Status
from linesweep.core.storage import database_url, is_database_url

try:  # POSIX file locks: released by the kernel when the holder dies, so never stale
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

OWNER = "linesweep.owner"
HEARTBEAT = "linesweep.heartbeat"  # journal files only: a database has Optuna's heartbeat
STATE = "linesweep.state"  # complete, pruned, failed, diverged, infeasible, killed, interrupted
ERROR = "linesweep.error"
FOLDER = "linesweep.folder"
RETRY_OF = "linesweep.retry_of"  # journal files only: a database has Optuna's retry_history
RETRY_HISTORY = "retry_history"  # the system attribute Optuna's retry callback writes
EPOCH = "linesweep.epoch"  # the epoch the trial's values were measured at
# The trial whose parameters the sampler proposed again; this trial runs an unvisited point.
REPLACED = "linesweep.replaced_repeat_of"
# Finished trials that hold no slot (duplicate: a repeated proposal, told FAIL by an older
# linesweep, before proposals were drawn on a scratch study; kept for the studies it left).
NO_SLOT = frozenset({Status.INTERRUPTED, Status.DUPLICATE})


def retry_of(trial: FrozenTrial) -> int | None:
    """The trial this one re-runs (its slot's previous, interrupted holder), if any."""
    history = trial.system_attrs.get(RETRY_HISTORY)  # RetryHeartbeatStaleTrialCallback's
    if history:
        return int(history[-1])
    return trial.user_attrs.get(RETRY_OF)


def rerun_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials queued again because their process was gone (or was stopped).

    Optuna's `fail_stale_trials` cannot label the trials it fails (a finished trial takes no
    attributes): the re-run its callback queued is what says so.
    """
    return {n for n in map(retry_of, trials) if n is not None}


def slot_holders(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count towards n_trials: all but waiting ones, re-run ones and duplicates."""
    rerun = rerun_numbers(trials)
    return [
        t
        for t in trials
        if t.state != TrialState.WAITING
        and not (
            t.state == TrialState.FAIL and (t.number in rerun or t.user_attrs.get(STATE) in NO_SLOT)
        )
    ]


def uses_optuna_heartbeat(storage: BaseStorage) -> bool:
    """A database opened with a heartbeat (the sweep's, see open_storage); never a journal."""
    return is_heartbeat_enabled(storage)


def beat(storage: BaseStorage, trials: Iterable[optuna.Trial]) -> None:
    """Mark the trials as alive: Optuna's heartbeat on a database, linesweep's on a journal.

    The sweep process beats for its trials from its own loop, not with Optuna's heartbeat
    thread (`get_heartbeat_thread`, which `study.optimize` starts per trial): its trials run in
    processes forked from it, and forking a process that runs threads may deadlock the child.
    """
    now = time.time()
    for trial in trials:
        with contextlib.suppress(UpdateFinishedTrialError):  # reaped by another worker
            if isinstance(storage, BaseHeartbeat) and uses_optuna_heartbeat(storage):
                storage.record_heartbeat(trial._trial_id)
            else:
                trial.set_user_attr(HEARTBEAT, now)


def claim_trial_folder(
    storage: BaseStorage, study: optuna.Study, number: int, folder: Path, sweep_dir: Path
) -> None:
    """A new trial's folder must be absent or empty: one that holds a run (or is a link, or a
    file) belongs to a study this one has no record of. Then the sweep is refused, naming the
    folder (a link there is never followed, even to an empty folder), and the trial, which never
    ran, is recorded interrupted: it holds no slot, and its parameters run again, as a new
    trial in a folder of its own, when the command runs again."""
    found = what_is(folder)
    if found is None or (found == "a folder" and not any(folder.iterdir())):
        return
    held = "holds a run" if found == "a folder" else f"is {found}"
    fail_trial(storage, study, number, Status.INTERRUPTED, f"folder {folder} {held}")
    requeue(storage, study, number)
    raise ConfigError(
        "hydra.sweep.dir",
        str(sweep_dir),
        f"a folder whose trial folders match its study, but {folder} already {held} "
        f"and study {study.study_name!r} has no record of it",
        "use a new hydra.sweep.dir or hydra.sweeper.study_name, or restore the storage",
    )


def ask(study: optuna.Study, distributions: dict[str, BaseDistribution]) -> optuna.Trial:
    """`study.ask`, quiet about a heartbeat outside `optimize`: linesweep beats itself (`beat`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Heartbeat of storage is supposed", category=UserWarning
        )
        return study.ask(fixed_distributions=distributions)


class RetryStale:
    """Optuna's stale-trial callback for a sweep's database: queue the trial to run again.

    Optuna's `RetryHeartbeatStaleTrialCallback` copies the failed trial's user attributes into
    the re-run; linesweep's own (owner, state, error, folder) describe the failed run, not the
    re-run, so they are left behind.
    """

    def __init__(self) -> None:
        from optuna import storages

        retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        with warnings.catch_warnings():  # "experimental" since 2.8
            warnings.filterwarnings("ignore", category=ExperimentalWarning)
            self._retry = (retry or storages.RetryFailedTrialCallback)()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {
            k: v for k, v in trial.user_attrs.items() if not k.startswith("linesweep.")
        }
        self._retry(study, trial)


def requeue(storage: BaseStorage, study: optuna.Study, number: int) -> None:
    """Queue a failed trial's parameters again, recording which trial the re-run replaces."""
    if uses_optuna_heartbeat(storage):  # one mechanism for every re-run on a database
        # Optuna 4.9 renamed get_failed_trial_callback (kept, with a warning, until 6.0).
        get = getattr(storage, "get_heartbeat_stale_trial_callback", None)
        retry = (get or storage.get_failed_trial_callback)()  # type: ignore[attr-defined]
        if retry is not None:
            retry(study, storage.get_trial(trial_id(storage, study, number)))
            return
    params = storage.get_trial(trial_id(storage, study, number)).params
    study.enqueue_trial(params, user_attrs={RETRY_OF: number})


def _open_lock_file(path: str) -> BinaryIO:
    """The slot lock's file, held open for the sweep: created if need be, never through a link
    (O_NOFOLLOW), never a FIFO (O_NONBLOCK: opening one would wait for a reader)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a+b")


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
            self._file = _open_lock_file(f"{path}.slots.lock")
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
    storage: BaseStorage, study: optuna.Study, number: int, label: Status, reason: str
) -> bool:
    """Mark a RUNNING trial failed with a reason; False if another process finished it first."""
    tid = trial_id(storage, study, number)
    try:
        storage.set_trial_user_attr(tid, STATE, label.value)
        storage.set_trial_user_attr(tid, ERROR, reason)
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def complete_trial(
    storage: BaseStorage, study: optuna.Study, number: int, values: list[float], epoch: int | None
) -> bool:
    """Mark a RUNNING trial complete with its values; False if another process finished it."""
    tid = trial_id(storage, study, number)
    try:
        storage.set_trial_user_attr(tid, STATE, Status.COMPLETE.value)
        if epoch is not None:
            storage.set_trial_user_attr(tid, EPOCH, epoch)
        storage.set_trial_state_values(tid, TrialState.COMPLETE, values)
    except UpdateFinishedTrialError:
        return False
    return True


def reap_abandoned(
    storage: BaseStorage,
    study: optuna.Study,
    stale_after_s: float,
    locked: bool = True,
    finished: Callable[[FrozenTrial], tuple[list[float], int | None] | None] | None = None,
) -> list[FrozenTrial]:
    """Fail RUNNING trials whose sweep process is gone, and queue their parameters again; a
    trial whose run had finished (`finished`: its values and epoch, from its folder) is
    completed with them instead, and not re-run.

    Call it holding the slot lock (`locked`): then a RUNNING trial without an owner was asked by
    a worker that died before recording itself, and is reaped at once. Without a lock, such a
    trial may be another worker's between the two steps: it gets `stale_after_s` from its start.
    On a database, a trial of another host is judged by Optuna's heartbeat (`fail_stale_trials`).
    """
    optuna_beats = uses_optuna_heartbeat(storage)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    reaped = []
    if optuna_beats:
        with warnings.catch_warnings():  # as Optuna's own optimize loop calls it
            warnings.filterwarnings("ignore", category=ExperimentalWarning)
            fail_stale_trials(study)  # its callback (RetryStale) queues each re-run
        now = {t.number: t for t in study.get_trials(deepcopy=False)}
        reaped = [now[t.number] for t in running if now[t.number].state == TrialState.FAIL]
        running = [t for t in running if now[t.number].state == TrialState.RUNNING]
    for trial in running:
        owner = trial.user_attrs.get(OWNER)
        here = alive_here(owner) if owner else None
        if here is True or (here is None and owner is not None and optuna_beats):
            continue  # alive here, or another host's: Optuna's heartbeat judges it
        if here is None:
            heartbeat = trial.user_attrs.get(HEARTBEAT)
            if owner is None and heartbeat is None and not locked and trial.datetime_start:
                heartbeat = trial.datetime_start.timestamp()
            if heartbeat is not None and time.time() - heartbeat <= stale_after_s:
                continue
        if owner:
            who = f"the sweep process running it (pid {owner['pid']} on {owner['host']}) is gone"
        else:
            who = "the sweep process that asked for it died before recording itself as its owner"
        done = finished(trial) if finished is not None else None
        if done is not None:
            complete_trial(storage, study, trial.number, *done)
            continue
        reason = f"interrupted: {who}; its slot is re-run"
        if fail_trial(storage, study, trial.number, Status.INTERRUPTED, reason):
            requeue(storage, study, trial.number)
            reaped.append(trial)
    return reaped
