"""A command's imports, made outside Python's cyclic garbage collector.

torch, Hydra, Optuna and matplotlib leave a few hundred thousand objects that live as long as
the process. While they are imported the collector runs every few hundred new objects, and
every so often it walks all of them to find nothing to free: about a sixth of a command's
imports. The command imports with the collector paused, then moves what it holds to the
permanent generation (`gc.freeze`), so that its later collections walk only what it makes
afterwards. The trial server does the same for every trial (`linesweep.sweep.server_gc`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collections inside (imports); the collector as it was afterwards."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
