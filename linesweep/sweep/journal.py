"""Keep Optuna's journal file readable after a crash: torn records and stale locks.

A writer killed in the middle of an append leaves half a record with no newline. Optuna skips it
on read, but the next append glues a new record onto it and the whole study becomes unreadable.
(A writer killed while holding the lock leaves the lock file behind: linesweep's lock names its
writer, and the next writer breaks it at once; see linesweep/core/journal_lock.py.) The last
record is checked before a sweep touches the study:

    python -m linesweep.sweep.journal PATH             # check; repair a torn last record
    python -m linesweep.sweep.journal PATH --keep N    # keep the first N records (after a backup)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from linesweep.core.errors import LinesweepError
from linesweep.core.files import atomic_write_bytes
from linesweep.core.journal_lock import OwnedSymlinkLock

log = logging.getLogger(__name__)


class CorruptJournal(LinesweepError):
    """A record in the middle of the journal is not valid JSON."""


def _backup(path: Path) -> Path:
    backup = path.with_name(f"{path.name}.backup-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(path, backup)
    return backup


def repair(path: Path) -> str | None:
    """Cut a torn last record off `path` (after a backup); return what was done, or None.

    Call it while no process writes the journal (linesweep holds the journal's lock). A corrupt
    record before the last one is not guessed at: CorruptJournal names the repair command.
    """
    if not path.exists():
        return None
    data = path.read_bytes()
    lines = data.split(b"\n")  # the last item is b"" when the file ends with a newline
    for index, line in enumerate(lines[:-1]):
        try:
            json.loads(line)
        except ValueError:
            raise CorruptJournal(
                f"{path}: record {index + 1} of {len(lines) - 1} is not valid JSON; keep the "
                f"{index} records before it with: python -m linesweep.sweep.journal {path} "
                f"--keep {index}"
            ) from None
    if not lines[-1]:
        return None
    backup = _backup(path)
    with path.open("r+b") as handle:
        handle.truncate(len(data) - len(lines[-1]))
    return (
        f"{path}: cut a torn last record ({len(lines[-1])} bytes, a writer killed mid-append); "
        f"the original is kept as {backup.name}"
    )


def keep_records(path: Path, count: int) -> Path:
    """Keep only the first `count` records of the journal; returns the backup's path."""
    records = [line for line in path.read_bytes().split(b"\n") if line]
    if not 0 <= count <= len(records):
        raise CorruptJournal(f"--keep {count}: {path} holds {len(records)} records")
    backup = _backup(path)
    atomic_write_bytes(path, b"".join(record + b"\n" for record in records[:count]))
    return backup


def check_journal(path: Path, grace_s: float = 30) -> list[str]:
    """Before a sweep uses the journal: cut a torn last record.

    The repair runs while holding the journal's own lock (which breaks a dead writer's lock at
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or repair an Optuna journal file.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--keep", type=int, help="keep only the first N records (after a backup)")
    args = parser.parse_args(argv)
    try:
        if args.keep is not None:
            print(f"kept {args.keep} records; backup at {keep_records(args.path, args.keep)}")
        else:
            print(repair(args.path) or f"{args.path}: every record is complete")
    except CorruptJournal as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
