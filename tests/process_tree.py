"""A sweep's processes as /proc shows them (Linux): the sweep, the server its trials fork from,
and the trial or population processes under that server."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def trial_server(sweep: int) -> int:
    """The sweep's trial server: its child that runs multiprocessing's forkserver."""
    (server,) = [p for p in children(sweep) if b"forkserver" in _cmdline(p)]
    return server


def trial_processes(sweep: int) -> list[int]:
    """The sweep's trial (or population) processes: the children of its trial server."""
    return children(trial_server(sweep))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
