"""The journal's lock, with real processes: a dead writer's lock is broken at once, a live
writer's never, however old it looks."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from linesweep.core.journal_lock import OwnedSymlinkLock, holder_of, holder_text

LOCK_LOG = "linesweep.core.journal_lock"


def hold(journal: str, held, release) -> None:
    """A writer: take the lock, say so, keep it until told (or killed)."""
    lock = OwnedSymlinkLock(journal, grace_period=3600)
    lock.acquire()
    held.set()
    release.wait(600)
    lock.release()


@pytest.fixture
def writer(tmp_path: Path):
    """writer() -> (process, release): a forked process holding the journal's lock."""
    journal = tmp_path / "optuna_journal.log"
    journal.write_bytes(b"")
    context = multiprocessing.get_context("fork")
    started = []

    def start():
        held, release = context.Event(), context.Event()
        process = context.Process(target=hold, args=(str(journal), held, release))
        process.start()
        started.append(process)
        assert held.wait(60), "the writer did not take the lock"
        return process, release

    yield journal, start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join()


def holder_pid(journal: Path) -> int | None:
    holder = holder_of(os.readlink(f"{journal}.lock"))
    return holder["pid"] if holder else None


def test_a_lock_left_by_a_killed_writer_is_broken_at_once(writer, caplog):
    journal, start = writer
    process, _ = start()
    os.kill(process.pid, signal.SIGKILL)  # dies holding the lock: no release
    process.join()
    assert holder_pid(journal) == process.pid  # left behind, fresh: age alone would wait 1 h
    caplog.set_level(logging.WARNING, logger=LOCK_LOG)
    lock = OwnedSymlinkLock(str(journal), grace_period=3600)
    began = time.monotonic()
    lock.acquire()
    print(f"dead writer's lock broken in {time.monotonic() - began:.4f} s")
    assert os.readlink(f"{journal}.lock") == holder_text()
    lock.release()
    assert f"its writer, pid {process.pid} on this host, is gone" in caplog.text


def test_a_live_writers_lock_is_never_broken_however_old(writer):
    journal, start = writer
    process, release = start()
    long_ago = time.time() - 3600
    os.utime(f"{journal}.lock", (long_ago, long_ago), follow_symlinks=False)
    waiting = OwnedSymlinkLock(str(journal), grace_period=1)  # an unknown lock: broken after 1 s
    taken = threading.Event()
    threading.Thread(target=lambda: (waiting.acquire(), taken.set()), daemon=True).start()
    assert not taken.wait(3)  # an hour old, grace 1 s, yet its writer lives: it waits
    assert holder_pid(journal) == process.pid
    release.set()  # the writer lets go: the waiter gets the lock
    process.join(60)
    assert taken.wait(60)
    assert os.readlink(f"{journal}.lock") == holder_text()
    waiting.release()


def test_an_unknown_writers_lock_is_broken_after_the_grace_period(tmp_path, caplog):
    journal = tmp_path / "optuna_journal.log"
    journal.write_bytes(b"")
    os.symlink(journal, f"{journal}.lock")  # Optuna's own lock: it names no writer
    long_ago = time.time() - 600
    os.utime(f"{journal}.lock", (long_ago, long_ago), follow_symlinks=False)
    caplog.set_level(logging.WARNING, logger=LOCK_LOG)
    lock = OwnedSymlinkLock(str(journal), grace_period=30)
    lock.acquire()
    lock.release()
    assert "held by an unknown writer for 600 s" in caplog.text
