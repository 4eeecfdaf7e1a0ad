"""The server that trial processes fork from, started as early as a sweep knows it will need it.

A sweep's trials need torch, Optuna and the app, about 2.5 s of imports, and the sweep process
itself needs none of torch: it composes configs and asks the study. So the trials fork from a
server (multiprocessing's forkserver) that imports all of it once, on the other core, while the
sweep process starts Hydra, composes the sweep and asks its first trials; a trial then starts
in milliseconds with everything loaded. linesweep's command starts it before Hydra composes
(`linesweep.train.cli`); any other app's sweep starts it when its executor is made.

Only the standard library is imported here: the command calls this before it imports Hydra.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

# Where the server exists: Linux and macOS. (Windows spawns a fresh interpreter per trial.)
AVAILABLE = sys.platform != "win32" and "forkserver" in multiprocessing.get_all_start_methods()

SERVER_IGNORES = {signal.SIGINT, signal.SIGTERM}

# What every trial of linesweep's own app imports: the population's entry point, the training
# (torch), the pictures (matplotlib) and the study's link (Optuna). Not the task's own module,
# `python -m linesweep.train`: a trial runs that afresh as its `__main__` (as multiprocessing
# does), and finding it imported already would only make runpy warn.
LINESWEEP_APP = (
    "linesweep.run.native",  # loads the C step in the server (its docstring says why)
    "linesweep.sweep.study",
    "linesweep.run.batch",
    "linesweep.run.task",
    "linesweep.run.plots",
)


SERVER_GC = "linesweep.sweep.server_gc"

_started_with: list[str] | None = None  # what `warm` imported: a restarted server does too


def warm(modules: Sequence[str]) -> None:
    """Start the server now, importing `modules` there (once started, a later call changes
    nothing: the server keeps what it imported; one that died is started again).

    It starts with SIGINT and SIGTERM ignored, and so stays: Ctrl-C, or a SIGTERM to the whole
    process group (a terminal, systemd, docker stop, Slurm's scancel), reaches the sweep and its
    trials, which decide what it stops, and not the server, which would print a traceback while
    it imports, or die under its running trials and have them taken for killed. It ends when
    the sweep process does. (A trial sets its own: `interrupts.reset_in_child`.) Here, the two
    are held meanwhile, and one that comes is delivered after: the command calls this before
    it has any other thread, which the signal could reach while it is ignored. (The resource
    tracker of multiprocessing starts first, on its own: it lifts the hold as it starts.)
    Signals can only be set from the main thread: from another one, the server starts with
    the first trial instead.
    """
    if not AVAILABLE or threading.current_thread() is not threading.main_thread():
        return
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    if _alive(multiprocessing.forkserver._forkserver._forkserver_pid):
        return  # nothing to start: and no moment with the signals ignored here
    global _started_with
    _started_with = list(modules)
    preload = [SERVER_GC, *modules]  # the collector off first (server_gc says why)
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    multiprocessing.resource_tracker.ensure_running()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_IGNORES)
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in SERVER_IGNORES}
    try:
        multiprocessing.forkserver.ensure_running()  # the server inherits what is ignored
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    _watch()


WATCH_S = 0.5  # how soon a stopped server is continued
_watching = False


def _watch() -> None:
    """From now on, a server stopped by a signal is continued within `WATCH_S`, by a thread of
    its own: wherever the sweep waits on it (a start, a trial's end, an interrupted sweep
    stopping its trials), and once more as this process exits, so that none is left stopped."""
    global _watching
    if _watching:
        return
    _watching = True
    threading.Thread(target=_continue_while_running, name="trial-server-watch", daemon=True).start()
    atexit.register(continue_if_stopped, say=False)  # the log's handlers may be closed by then


def _continue_while_running() -> None:
    # Signals are the main thread's: it holds SIGINT and SIGTERM while a trial starts
    # (`workers.start`), and one delivered to this thread would be handled there at once.
    signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_IGNORES)
    while True:
        time.sleep(WATCH_S)
        continue_if_stopped()


def _alive(pid: int | None) -> bool:
    """Whether the server `pid` still runs (not reaped here: multiprocessing reaps it)."""
    if pid is None:
        return False
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


def ensure_running() -> None:
    """Before a trial starts: the server as `warm` started it, started again if it died (left
    to multiprocessing, it would come back without its ignored signals), or continued."""
    if _started_with is not None:
        continue_if_stopped()
        warm(_started_with)


def replace_broken(wait_s: float = 5.0) -> None:
    """After a start whose connection to the server broke (the server killed as the job was
    sent): once that server has gone, a new one (`ensure_running`)."""
    import multiprocessing.forkserver

    server = multiprocessing.forkserver._forkserver._forkserver_pid
    deadline = time.monotonic() + wait_s
    while _alive(server) and time.monotonic() < deadline:  # its socket closes as it dies
        time.sleep(0.01)
    ensure_running()


def continue_if_stopped(say: bool = True) -> None:
    """The server continued if a signal stopped it (`kill -STOP`, one line says so). Stopped,
    it would hold the sweep for ever: no trial starts (the start waits for the server's answer,
    with the sweep's Ctrl-C held: `workers.start`) and no trial is seen to end (the server
    reports each one's exit status). Asked before each start, and every `WATCH_S` (`_watch`)."""
    if _started_with is None:
        return
    import multiprocessing.forkserver

    from linesweep.core.processes import stopped

    server = multiprocessing.forkserver._forkserver._forkserver_pid
    if server is not None and _alive(server) and stopped(server):
        os.kill(server, signal.SIGCONT)
        if say:
            import logging

            logging.getLogger(__name__).warning(
                "the trial server (pid %d) was stopped by a signal; continued it (SIGCONT)",
                server,
            )
