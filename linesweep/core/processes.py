"""Is the process that wrote a record still running? Sweeps ask it of a trial's owner, compare
of a run whose summary still says `running`.

A pid alone is not enough: pids are reused. On Linux the process's start time (from /proc) is
recorded with it, and a live pid with another start time is a different process.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

# multiprocessing starts its fork server as `python -c "from multiprocessing.forkserver import
# main; main(...)"`: what the server imports (its preload, `linesweep.sweep.trial_server`) sees
# this true, and may do there what every trial forked from it should inherit.
IN_A_FORK_SERVER = any("multiprocessing.forkserver import main" in a for a in sys.orig_argv)


def _stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (proc(5)), or None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # after the name, which may hold spaces


def process_start_time(pid: int) -> str | None:
    """When `pid` started (Linux: clock ticks since boot), or None where that cannot be read."""
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of proc(5)


def stopped(pid: int) -> bool:
    """Whether `pid` is stopped by a signal (SIGSTOP, SIGTSTP: state T), as far as /proc says.
    Not a debugger's stop (state t): whoever traces the process decides when it goes on."""
    fields = _stat(pid)
    return bool(fields) and fields[0] == "T"


def this_process() -> dict[str, Any]:
    """Host, pid and pid start time of this process, to be written next to what it owns."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start_time(os.getpid()),
    }


def alive_here(record: dict[str, Any]) -> bool | None:
    """Whether the process in `record` (host, pid, pid_start) still runs; None if elsewhere."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and another user's
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):  # dead, not yet reaped by its parent
        return False
    start = record.get("pid_start")
    return start is None or fields is None or fields[19] == start
