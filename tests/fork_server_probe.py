"""Preloaded by a trial server in test_trial_server.py: garbage made at import (a cycle, as an
app's module may leave), and a trial that says what it sees of the collector."""

from __future__ import annotations

import gc
import os
import weakref


class _Node:
    pass


_node = _Node()
_node.itself = _node  # a cycle: only the collector frees it
LEFT_AT_IMPORT = weakref.ref(_node)
del _node


def report(results) -> None:
    """The trial: the collector's state here, and in a child this trial forks with it off."""
    seen = {
        "enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "import_garbage_kept": LEFT_AT_IMPORT() is not None,
    }
    gc.disable()  # the trial's own choice, which its children inherit
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, b"on" if gc.isenabled() else b"off")
        os._exit(0)
    os.waitpid(child, 0)
    seen["its_child"] = os.read(read, 3).decode()
    results.send(seen)
