"""The command that runs a sweep again with more replicates, for the answer's "no spread" line.

The sweep's end (linesweep/sweep/results.py) and compare (linesweep/compare/answer.py) both show
it, from the overrides the sweep was typed with: the sweep's `hydra.overrides`, which compare
reads back from the sweep folder's multirun.yaml. One function, so that both say the same.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

DROPPED = ("replicates", "hydra.sweeper.study_name", "hydra.sweep.dir", "hydra.mode")


def rerun_command(task: Sequence[str], hydra: Sequence[str], study_name: str) -> str:
    """The sweep's command as typed, ready for more replicates: its own `replicates=` dropped
    (the hint adds `replicates=3`), and a study of its own, since the same study would resume
    with every trial already run: `hydra.sweeper.study_name=<name>_replicates`, in its own
    folder (a `hydra.sweep.dir=` typed is dropped: it holds the first study's trials)."""
    kept = [o for o in (*task, *hydra) if o.split("=", 1)[0].lstrip("+~") not in DROPPED]
    kept.append(f"hydra.sweeper.study_name={study_name}_replicates")
    return " ".join(["python -m linesweep.train -m", *(shlex.quote(o) for o in kept)])


def multirun_command(task: Sequence[str]) -> str:
    """A `-m` multirun's command as typed (Hydra's basic sweeper: no study), its own
    `replicates=` dropped, for the hint to add `replicates=3`."""
    kept = [o for o in task if o.split("=", 1)[0].lstrip("+~") != "replicates"]
    return " ".join(["python -m linesweep.train -m", *(shlex.quote(o) for o in kept)])
