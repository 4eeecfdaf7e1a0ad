"""How a run ended: one vocabulary for the trainer, the sweeper, trials.csv, compare and report."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """How a run ended: the one vocabulary of summary.json, trials.csv, compare and the report.

    The trainer writes the first seven into summary.json. A sweeper says the same words of its
    trials (and `duplicate` of a proposal it replaced before running it, which has no folder).
    `killed` is also what compare calls a `running` record whose process is gone; the last two are
    compare's words for folders it could not read in full.
    """

    WAITING = "waiting"  # a sweep's trial queued (a re-run of an interrupted one), not started
    RUNNING = "running"  # training now (or its process died without a word: see KILLED)
    COMPLETE = "complete"  # trained every epoch
    PRUNED = "pruned"  # stopped early by a sweep's pruner; its value is from that epoch
    DIVERGED = "diverged"  # the loss became NaN or infinite
    INFEASIBLE = "infeasible"  # the architecture cannot be built (refused before training)
    REFUSED = "refused"  # a config value outside what linesweep accepts (before training)
    FAILED = "failed"  # an error while running: a bug, a full disk, a lost database
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; a sweep re-runs it when resumed
    KILLED = "killed"  # its process died without recording an end (SIGKILL, out of memory)
    TIMEOUT = "timeout"  # ended by its sweep: no epoch reported within hydra.sweeper.trial_timeout
    DUPLICATE = "duplicate"  # a sweep's proposal that repeated a trial's parameters: never run
    INCOMPLETE = "incomplete"  # compare: no readable summary.json, but other files
    UNREADABLE = "unreadable"  # compare: nothing in the folder could be read

    def __str__(self) -> str:
        return self.value

    @property
    def written(self) -> bool:
        """Whether a run writes it into summary.json (the others are a sweep's or compare's)."""
        sweeps_or_compares = (Status.WAITING, Status.KILLED, Status.TIMEOUT, Status.DUPLICATE)
        return self not in (*sweeps_or_compares, Status.INCOMPLETE, Status.UNREADABLE)

    @property
    def trained(self) -> bool:
        """Whether the run trained epochs whose metrics mean something."""
        return self in (Status.COMPLETE, Status.PRUNED, Status.DIVERGED)

    @property
    def counts_as_failure(self) -> bool:
        """Whether a sweep counts it against its failure budget (an infeasible point does not)."""
        return self in (
            Status.FAILED,
            Status.DIVERGED,
            Status.KILLED,
            Status.REFUSED,
            Status.TIMEOUT,
        )


STATUSES = tuple(s.value for s in Status)
