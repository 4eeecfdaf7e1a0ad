"""How a sweep stops on Ctrl-C or SIGTERM without tearing any trial's record.

SIGINT and SIGTERM raise `SweepInterrupted` in the sweep process, so that a trial training in
this process (Hydra's basic launcher) stops at once too. The few steps that must happen
together (ask a trial and register it; collect a finished trial and tell the study) run inside
`deferred()`, which holds both signals until the step is complete: an interrupted sweep never
leaves a trial asked but unregistered, or finished but untold.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the sweep: stop, record what finished, exit non-zero."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signals whose Python handler ran inside a `deferred()` block (see there), and how deep
# the main thread is in such blocks.
_held: list[int] = []
_depth = 0


def _raise(signum: int, _frame: Any) -> None:
    if _depth:
        _held.append(signum)  # delivered as the block ends
        return
    raise SweepInterrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into SweepInterrupted for the duration of the sweep."""
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_signals() -> None:
    """While a sweep cleans up after a signal, a second one must not cut the clean-up short."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done; they are delivered right after it.

    Two holds, because Python runs a signal's handler some instructions after the signal came:
    the signal mask holds one that comes during the block, and the handler itself holds one
    that came just before the mask was set but whose handler runs inside the block (it cut a
    trial's Hydra composition in half once: a traceback instead of the one line). A block
    that raises ends with its own exception (a signal held in it is dropped with it).
    """
    global _depth
    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield  # Windows, or a helper thread: no signal reaches this code anyway
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    _depth += 1
    try:
        yield
    except BaseException:
        if _depth == 1:
            _held.clear()  # the block's own error ends it; a held signal goes with it
        raise
    finally:
        _depth -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if _held and not _depth:
        signum = _held[0]
        _held.clear()
        raise SweepInterrupted(signum)


def reset_in_child() -> None:
    """A trial process takes its interrupts from the sweep, not from the terminal.

    Forked while the signals were held, it would keep them held, and forked from the trial
    server, ignored: ignore SIGINT (Ctrl-C reaches the whole process group; the sweep decides),
    leave SIGTERM to the task (linesweep's records `interrupted`, then stops; any other task
    dies of it), then unblock them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: one pending is dropped, not raised
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
