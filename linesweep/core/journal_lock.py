"""The journal file's lock, naming its holder: a lock left by a dead writer is broken at once.

Optuna's `JournalFileSymlinkLock` is a symlink next to the journal, made for the milliseconds of
one append. A writer killed while holding it leaves it behind, and every other writer waits out a
grace period (30 s) before breaking it on its age alone: a resume, or a Ctrl-C that must record
the trials it stops, stalls for that long. This lock is the same symlink (so it excludes Optuna's
own locks, and theirs exclude it), pointing at a name that says who holds it:

    optuna_journal.log.lock -> linesweep-writer:{"host": "node1", "pid": 4242, "pid_start": "91"}

A writer that finds the lock taken reads the holder. Gone from this host (its pid has died, or
belongs to another process now): the lock is broken at once. Alive: it waits, however old the lock
(a live writer's lock is never broken). On another host, or not linesweep's (Optuna's own lock
points at the journal): it waits out the grace period, as Optuna would. Writers that break locks
take turns (an advisory lock on the journal itself), so none removes a lock another has just
taken in its place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from optuna.storages.journal import JournalFileSymlinkLock

from linesweep.core.processes import alive_here, this_process

try:
    import fcntl
except ImportError:  # Windows: breakers do not take turns
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PREFIX = "linesweep-writer:"
_identity: tuple[int, str] | None = None  # (pid, link text): a forked child makes its own


def holder_text() -> str:
    """What this process's lock points at: host, pid and pid start time."""
    global _identity
    if _identity is None or _identity[0] != os.getpid():
        _identity = (os.getpid(), PREFIX + json.dumps(this_process(), sort_keys=True))
    return _identity[1]


def holder_of(text: str | None) -> dict[str, Any] | None:
    """The holder a lock names, or None for a lock that is not linesweep's."""
    if not text or not text.startswith(PREFIX):
        return None
    try:
        holder = json.loads(text[len(PREFIX) :])
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


class OwnedSymlinkLock(JournalFileSymlinkLock):
    """Optuna's JournalFileSymlinkLock, made to name its holder and break a dead one's at once."""

    def __init__(self, filepath: str, grace_period: float | None = 30) -> None:
        super().__init__(filepath, grace_period=None)  # the same lock file name as Optuna's
        self._journal = filepath
        self.grace_period = grace_period

    def acquire(self) -> bool:
        sleep_s = 0.001
        unchanged_since: tuple[float, float] | None = None  # (lock mtime, when first seen)
        while True:
            try:
                os.symlink(holder_text(), self._lock_file)
                return True
            except FileExistsError:
                pass
            seen = self._look()
            if seen is None:  # released meanwhile
                continue
            text, mtime = seen
            if unchanged_since is None or unchanged_since[0] != mtime:
                unchanged_since = (mtime, time.monotonic())
            why = self._abandoned(text, mtime, time.monotonic() - unchanged_since[1])
            if why is not None and self._break(text, mtime):
                log.warning("%s: removed a stale lock: %s", self._lock_file, why)
                sleep_s = 0.001
                continue
            time.sleep(sleep_s)
            sleep_s = min(sleep_s * 2, 0.05)

    def release(self) -> None:
        moved = f"{self._lock_file}{uuid.uuid4().hex}.rename"
        try:  # renamed first, as Optuna does: unlinking a name another writer re-created is worse
            os.rename(self._lock_file, moved)
        except OSError:
            raise RuntimeError(f"{self._lock_file}: released, but not held") from None
        os.unlink(moved)

    def _look(self) -> tuple[str | None, float] | None:
        """The lock's text (None: not a symlink) and its own mtime; None when there is none."""
        try:
            mtime = os.lstat(self._lock_file).st_mtime
            return os.readlink(self._lock_file), mtime
        except FileNotFoundError:
            return None
        except OSError:  # a regular file: Optuna's JournalFileOpenLock
            return None, mtime

    def _abandoned(self, text: str | None, mtime: float, watched_s: float) -> str | None:
        """Why the lock seen may be broken now, or None if it must be waited for."""
        holder = holder_of(text)
        if holder is not None:
            alive = alive_here(holder)
            if alive is False:
                return f"its writer, pid {holder.get('pid')} on this host, is gone"
            if alive:
                return None
        if self.grace_period is None:
            return None
        age = max(time.time() - mtime, watched_s)  # the watch alone if clocks disagree (NFS)
        if age < self.grace_period:
            return None
        who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "an unknown writer"
        return f"held by {who} for {age:.0f} s (a writer holds it for milliseconds)"

    def _break(self, text: str | None, mtime: float) -> bool:
        """Remove the lock if it is still the one judged abandoned; True if it is gone."""
        with self._breakers_take_turns():
            seen = self._look()
            if seen is None:
                return True
            if seen != (text, mtime):  # released and taken again: judge it afresh
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._lock_file)
            return True

    @contextlib.contextmanager
    def _breakers_take_turns(self) -> Iterator[None]:
        if fcntl is None or not os.path.exists(self._journal):
            yield
            return
        with open(self._journal, "rb") as journal:  # Optuna never flocks it: ours alone
            fcntl.flock(journal, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(journal, fcntl.LOCK_UN)
