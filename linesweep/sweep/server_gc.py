"""Imported first by the trial server (`trial_server.warm`): its imports and its trials, outside
Python's cyclic garbage collector.

torch, Optuna, Hydra and matplotlib leave some 230,000 objects that live as long as the server.
While they are imported, the collector runs every few hundred new objects and every so often
walks all of them: 0.3 s of the server's 1.85 s of imports. Each trial forked from it inherits
them, and its own full collections would walk them again, to find nothing to free. So, as
Python's documentation advises for a process that forks without exec (`gc.freeze`): no
collections in the server, whose only work after its imports is to fork; before its first fork
one collection (the garbage the imports left, an app's cycles, is freed rather than kept), and
before each fork everything it holds moved to the permanent generation; collections enabled
again in each trial, where they see only the trial's own objects. A 4-trial sweep took 18% less
CPU (benchmarks/README.md, "The suite").

Only in a fork server: imported anywhere else (a documentation tool, a doctest run), it does
nothing.
"""

import gc
import os

from linesweep.core.processes import IN_A_FORK_SERVER  # imported by that `main`, before a fork

SERVER = os.getpid()

_collected = False


def _before_fork() -> None:
    """In the server only: the imports' garbage freed once, then what it holds frozen. Not in a
    trial that forks (it inherits the hook): its garbage is its own to collect."""
    global _collected
    if os.getpid() != SERVER:
        return
    if not _collected:
        gc.collect()
        _collected = True
    gc.freeze()


def _in_child() -> None:
    """Collections on again in a trial, the server's child; a trial's own children keep what
    the trial had set."""
    if os.getppid() == SERVER:
        gc.enable()


if IN_A_FORK_SERVER:
    gc.disable()
    os.register_at_fork(before=_before_fork, after_in_child=_in_child)
