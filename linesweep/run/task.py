"""One run, start to end, in a folder someone else chose: `run(cfg, folder)`.

    python -m linesweep.train model.out_1=4       # linesweep/train.py calls run() for Hydra
    linesweep.run.task.run(OmegaConf.load("<run>/.hydra/config.yaml"), "<new folder>")

A plain function of a composed config and a folder: it validates, trains and leaves the run
record (`linesweep.core.record`) whatever happens, through the one pipeline every run takes
(`linesweep.run.pipeline`: a single run is a population of one). A run that ends other than
complete raises the typed exception of its status (`linesweep.core.errors`) after recording it,
so the caller decides what that means: an exit code on the command line, a trial state in a
sweep.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from linesweep.core.trial_link import TrialLink
from linesweep.run.pipeline import RunSpec, train_runs
from linesweep.run.recording import RunResult, file_log

__all__ = ["RunResult", "file_log", "run"]


def run(
    cfg: DictConfig,
    run_dir: str | os.PathLike[str],
    trial: TrialLink | None = None,
    overrides: Sequence[str] | None = None,
    plans_seen: Path | None = None,
) -> RunResult:
    """Validate a composed config and train, recording how the run ended in summary.json."""
    ended: list[RunResult | BaseException] = []
    spec = RunSpec(cfg, Path(run_dir), trial, list(overrides or []))
    with _sigterm_interrupts():
        train_runs([spec], lambda _, outcome: ended.append(outcome), plans_seen)
    (outcome,) = ended
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C does, so that its record says `interrupted`."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            yield  # someone else handles SIGTERM here (a sweep running trials in-process)
            return
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a launcher's thread): signals are not ours
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
