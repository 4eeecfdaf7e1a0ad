"""The sweep process's own machinery, in-process: signals held while a step must not be cut,
and heartbeats sent while a launcher runs a batch."""

from __future__ import annotations

import signal
import threading

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from linesweep.sweep.executors import LauncherExecutor, TrialJob
from linesweep.sweep.interrupts import SweepInterrupted, deferred, interruptible


def signal_this_thread(signum: int) -> None:
    """Send `signum` to the main thread itself: a process-wide one may land in another thread."""
    signal.pthread_kill(threading.main_thread().ident, signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_deferred_is_delivered_right_after_the_block_not_inside(signum):
    steps: list[str] = []
    with interruptible(), pytest.raises(SweepInterrupted) as stop:
        with deferred():
            signal_this_thread(signum)
            steps.append("the block ran to its end")
        steps.append("after the block")  # never: the held signal arrives as the block exits
    assert steps == ["the block ran to its end"]
    assert stop.value.signum == signum


def test_a_handler_that_runs_inside_deferred_for_an_earlier_signal_waits_for_its_end():
    """Python runs a handler some instructions after its signal: one that came just before
    the block may run inside it, past the signal mask. It is held, and raised as the block
    ends, not in the middle of the step (the handler is called as Python would call it)."""
    from linesweep.sweep import interrupts

    steps: list[str] = []
    with interruptible(), pytest.raises(SweepInterrupted) as stop:
        with deferred():
            handler = signal.getsignal(signal.SIGTERM)
            handler(signal.SIGTERM, None)  # the late handler, inside the block
            steps.append("the block ran to its end")
        steps.append("after the block")
    assert steps == ["the block ran to its end"] and stop.value.signum == signal.SIGTERM
    with interruptible(), pytest.raises(ValueError), deferred():  # a failing block: its error
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        raise ValueError("the step's own error")
    assert interrupts._held == []  # nothing left to surface in a later block


def test_without_deferred_the_same_signal_cuts_in_at_once():
    """The control: the step above is whole only because deferred() held the signal."""
    steps: list[str] = []
    with interruptible(), pytest.raises(SweepInterrupted):
        signal_this_thread(signal.SIGTERM)
        steps.append("the block ran to its end")
    assert steps == []


class BlockingLauncher:
    """A launcher whose batch lasts until the sweep has sent `beats` heartbeats meanwhile."""

    def __init__(self, beats: int) -> None:
        self.beats, self.seen = beats, 0
        self.enough = threading.Event()

    def heartbeat(self) -> None:
        self.seen += 1
        if self.seen >= self.beats:
            self.enough.set()

    def launch(self, overrides: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        # A safety net, not a measurement: without heartbeats the test fails instead of hanging.
        assert self.enough.wait(timeout=120), f"only {self.seen} heartbeats during the batch"
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=1.0) for _ in overrides]


def test_the_launcher_executor_sends_heartbeats_while_a_batch_runs():
    """A batch on a SLURM queue may take hours: its trials must not look dead meanwhile."""
    launcher = BlockingLauncher(beats=3)
    hydra = OmegaConf.create({"hydra_logging": None, "verbose": False})
    executor = LauncherExecutor(launcher, 2, launcher.heartbeat, 0.01, hydra)
    executor.submit(TrialJob(0, ("x=1",)))
    executor.submit(TrialJob(1, ("x=2",)))
    outcomes = []
    threads = set(threading.enumerate())
    executor.wait(0.01, outcomes.append)  # returns only once the launcher saw 3 heartbeats
    assert launcher.seen >= 3
    assert set(threading.enumerate()) == threads  # the heartbeat thread ended with the batch
    assert [o.number for o in outcomes] == [0, 1] and executor.running() == []
    assert all(o.job_return.status == JobStatus.COMPLETED for o in outcomes)
