"""Keep Optuna's journal file readable after a crash: torn records, damage, stale locks.

A writer killed in the middle of an append leaves half a record with no newline. Optuna skips it
on read, but the next append glues a new record onto it and the whole study becomes unreadable.
(A writer killed while holding the lock leaves the lock file behind: linesweep's lock names its
writer, and the next writer breaks it at once; see linesweep/core/journal_lock.py.) The journal
is checked before a sweep touches the study: a torn last record is cut (after a backup, with a
warning); any other damage (a glued record, garbage appended or in the middle) refuses the sweep,
changing nothing, and names the repair, which keeps every whole record, glued ones included, so
every trial stays as it was (see linesweep/core/journal_records.py):

    python -m linesweep.sweep.journal PATH             # check; cut a torn last record
    python -m linesweep.sweep.journal PATH --repair    # keep every whole record (after a backup)
    python -m linesweep.sweep.journal PATH --keep N    # keep the first N records (after a backup)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from linesweep.core.errors import LinesweepError
from linesweep.core.files import atomic_write_bytes
from linesweep.core.journal_lock import OwnedSymlinkLock
from linesweep.core.journal_records import Scan, scan

log = logging.getLogger(__name__)
T = TypeVar("T")


class CorruptJournal(LinesweepError):
    """A record before the last one is damaged; the message names the repair."""


def _read(path: Path) -> bytes:
    """The journal's bytes, never through a link (O_NOFOLLOW) nor from a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _backup(path: Path, data: bytes) -> Path:
    """A copy of the journal beside it, in a new file (never over an existing path or link)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        backup = path.with_name(f"{path.name}.backup-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return backup
    raise FileExistsError(f"{path}: no free backup name")


def _damage(path: Path, found: Scan) -> str:
    lines = ", ".join(map(str, found.damaged[:5])) + (", ..." if len(found.damaged) > 5 else "")
    return f"{path}: line {lines} of {found.lines} is not a whole record"


def repair(path: Path) -> str | None:
    """Cut a torn last record off `path` (after a backup); return what was done, or None.

    Call it while no process writes the journal (linesweep holds the journal's lock). Damage
    before the last record is not repaired here: CorruptJournal names the command that does,
    and nothing is changed.
    """
    if not path.exists():
        return None
    data = _read(path)
    found = scan(data)
    if found.damaged:
        how = (
            f"every whole record ({len(found.records)}, {found.trials()} trials) is kept by: "
            f"python -m linesweep.sweep.journal {path} --repair"
        )
        shifted = found.shifted()
        if shifted:  # a lost record created a trial: the records after it cannot be trusted
            how = (
                f"{shifted}; keep the records before line {found.damaged[0]} with: python -m "
                f"linesweep.sweep.journal {path} --keep {_whole_before(data, found.damaged[0])}"
            )
        raise CorruptJournal(f"{_damage(path, found)}; {how}")
    if not found.torn:
        return None
    backup = _backup(path, data)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, len(data) - len(found.torn))
    finally:
        os.close(fd)
    return (
        f"{path}: cut a torn last record ({len(found.torn)} bytes, a writer killed mid-append); "
        f"the original is kept as {backup.name}"
    )


def _whole_before(data: bytes, line: int) -> int:
    return len(scan(b"\n".join(data.split(b"\n")[: line - 1]) + b"\n").records) if line > 1 else 0


def repair_all(path: Path) -> str:
    """Keep every whole record of the journal, glued ones included, and drop the rest (after a
    backup); CorruptJournal where that would misplace trials (a lost record created one)."""
    data = _read(path)
    found = scan(data)
    if found.clean:
        return f"{path}: every record is complete"
    shifted = found.shifted()
    if shifted:
        raise CorruptJournal(
            f"{_damage(path, found)}, and {shifted}: repairing would misplace trials; keep the "
            f"records before line {found.damaged[0]} with: python -m linesweep.sweep.journal "
            f"{path} --keep {_whole_before(data, found.damaged[0])}"
        )
    backup = _backup(path, data)
    atomic_write_bytes(path, b"".join(record + b"\n" for record in found.records))
    dropped = len(found.damaged) + bool(found.torn)
    return (
        f"{path}: kept {len(found.records)} whole records ({found.trials()} trials), dropped "
        f"{dropped} damaged line{'s' if dropped != 1 else ''}; the original is kept as "
        f"{backup.name}"
    )


def keep_records(path: Path, count: int) -> Path:
    """Keep only the first `count` records of the journal; returns the backup's path."""
    data = _read(path)
    records = [line for line in data.split(b"\n") if line]
    if not 0 <= count <= len(records):
        raise CorruptJournal(f"--keep {count}: {path} holds {len(records)} records")
    backup = _backup(path, data)
    atomic_write_bytes(path, b"".join(record + b"\n" for record in records[:count]))
    return backup


def check_journal(path: Path, grace_s: float = 30) -> list[str]:
    """Before a sweep uses the journal: cut a torn last record, refuse any other damage.

    The check runs while holding the journal's own lock (which breaks a dead writer's lock at
    once, and an unknown one after `grace_s`), so no live writer is mid-append.
    """
    notes = []
    if path.exists():
        lock = OwnedSymlinkLock(str(path), grace_period=grace_s)
        lock.acquire()
        try:
            note = repair(path)
        finally:
            lock.release()
        if note:
            notes.append(note)
    return notes


def _under_lock(path: Path, action: Callable[[], T]) -> T:
    """Run `action()` holding the journal's lock: no sweep appends while it is rewritten."""
    if not path.exists():
        return action()
    lock = OwnedSymlinkLock(str(path), grace_period=30)
    lock.acquire()
    try:
        return action()
    finally:
        lock.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or repair an Optuna journal file.")
    parser.add_argument("path", type=Path)
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--repair", action="store_true", help="keep every whole record (after a backup)"
    )
    what.add_argument("--keep", type=int, help="keep only the first N records (after a backup)")
    args = parser.parse_args(argv)
    try:
        if args.keep is not None:
            backup = _under_lock(args.path, lambda: keep_records(args.path, args.keep))
            print(f"kept {args.keep} records; backup at {backup}")
        elif args.repair:
            print(_under_lock(args.path, lambda: repair_all(args.path)))
        else:
            note = _under_lock(args.path, lambda: repair(args.path))
            print(note or f"{args.path}: every record is complete")
    except CorruptJournal as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {args.path}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
