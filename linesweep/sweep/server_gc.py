"""Imported first by the trial server (`trial_server.warm`): its imports and its trials, outside
Python's cyclic garbage collector.

torch, Optuna, Hydra and matplotlib leave some 230,000 objects that live as long as the server.
While they are imported, the collector runs every few hundred new objects and every so often
walks all of them: 0.3 s of the server's 1.85 s of imports. Each trial forked from it inherits
them, and its own full collections would walk them again, to find nothing to free. So, as
Python's documentation advises for a process that forks without exec (`gc.freeze`): no
collections in the server, whose only work after its imports is to fork; everything it holds
moved to the permanent generation right before each fork; collections enabled again in the child,
where they see only the trial's own objects. A 4-trial sweep took 18% less CPU
(benchmarks/README.md, "The suite").
"""

import gc
import os

SERVER = os.getpid()


def _freeze_in_the_server() -> None:
    """Before a fork: the server's objects, not those of a trial that forks (it inherits the
    hook), whose garbage is its own to collect."""
    if os.getpid() == SERVER:
        gc.freeze()


gc.disable()
os.register_at_fork(before=_freeze_in_the_server, after_in_child=gc.enable)
