"""A stalled trial does not stall the sweep: named in the log, ended after trial_timeout.

A trial process (or a population's) stopped with SIGSTOP reports no epoch; the sweep says so,
ends it once `hydra.sweeper.trial_timeout` seconds have passed without a report, records it
`timeout` (a failure), and goes on to end with exactly n_trials, on both executors. The trial
server stopped with SIGSTOP is continued, in one warning line.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import time
from pathlib import Path

import pytest

from linesweep.sweep.coordination import slot_holders
from linesweep.sweep.stalls import StallWatch
from tests.test_faults import SLOW, SPACE, assert_consistent, running_trial, start, wait_for


class Reports:
    """A study as StallWatch reads it: RUNNING trials and how many epochs each has reported."""

    def __init__(self, **reports: int) -> None:
        self.reports = {int(name.removeprefix("trial")): n for name, n in reports.items()}

    def get_trials(self, deepcopy: bool, states: object) -> list[object]:
        return [
            type("Trial", (), {"number": n, "intermediate_values": dict.fromkeys(range(k))})
            for n, k in self.reports.items()
        ]


def test_a_trial_first_seen_with_reports_is_silent_from_then_not_from_its_start(caplog):
    """Seen for the first time after it has reported epochs (a check comes at most every
    trial_timeout/2), a trial has been heard from: its silence starts there."""
    watch = StallWatch(timeout_s=10.0)
    long_ago = time.monotonic() - 8.0  # its process started 8 s ago, over warn_after_s (5 s)
    assert watch.check(Reports(trial1=3, trial2=0), {1: long_ago, 2: long_ago}) == {}
    said = [r.getMessage() for r in caplog.records if "reported no epoch" in r.getMessage()]
    assert said == [
        "trial 2 has reported no epoch for 8 s (hydra.sweeper.trial_timeout=10 ends it)"
    ]  # trial 1, seen with 3 epochs, is not in it


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "stopped", "n_trials"),
    [
        (["hydra.sweeper.executor=process"], [0], 2),  # one stalls, one after it completes
        (  # two trials a population: the first population stalls whole
            [
                "hydra.sweeper.executor=population", "hydra.sweeper.population_size=2",
                "hydra.sweeper.n_jobs=1", "model.out_1=2",
            ],
            [0, 1],
            4,  # two stall, two complete after them (a failure rate of 0.5 at most)
        ),
    ],
    ids=["process", "population"],
)  # fmt: skip
def test_a_stopped_trial_times_out_and_the_sweep_ends_exact(tmp_path, executor, stopped, n_trials):
    folder = tmp_path / "sweep"
    base = [a for a in SLOW if not a.startswith("hydra.sweeper.executor=")]
    args = [
        *base,
        *SPACE,
        *executor,
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.trial_timeout=4",
    ]
    sweep = start(folder, *args)
    pid = wait_for(lambda: running_trial(folder, 0), what="trial 0 to train")["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive, silent: a hung data loader, a stuck filesystem
    try:
        output, _ = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert sweep.returncode == 0, output
    assert "Traceback" not in output
    study = assert_consistent(folder, n_trials, lost=tuple(stopped))
    rows = {int(r["number"]): r for r in csv.DictReader((folder / "trials.csv").open())}
    for number in stopped:
        assert rows[number]["state"] == "timeout", rows[number]
        assert "no epoch reported for" in rows[number]["error"]
        assert "hydra.sweeper.trial_timeout=4" in rows[number]["error"]
    others = [t for t in slot_holders(study.trials) if t.number not in stopped]
    assert [t.state.name for t in others] == ["COMPLETE"] * (n_trials - len(stopped))
    assert "reported no epoch for" in output  # said before it was ended


def _trial_server_of(sweep_pid: int) -> int:
    """The trial server the sweep started: its child running multiprocessing's forkserver."""
    children = Path(f"/proc/{sweep_pid}/task/{sweep_pid}/children").read_text().split()
    for child in map(int, children):
        with contextlib.suppress(OSError):
            if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    raise AssertionError(f"no trial server among {children}")


@pytest.mark.slow
def test_a_stopped_trial_server_is_continued_and_the_population_sweep_ends_exact(tmp_path):
    """The server reports every trial's end: stopped (`kill -STOP`) while a population trains,
    it would leave the sweep waiting for ever. (A start meeting it: test_trial_server.py.)"""
    folder = tmp_path / "sweep"
    base = [a for a in SLOW if not a.startswith("hydra.sweeper.executor=")]
    population = ["hydra.sweeper.executor=population", "hydra.sweeper.population_size=2"]
    sweep = start(folder, *base, *SPACE, *population, "hydra.sweeper.n_jobs=1", "model.out_1=2",
                  "hydra.sweeper.n_trials=4")  # fmt: skip
    wait_for(lambda: running_trial(folder, 0), what="trial 0 to train")
    server = _trial_server_of(sweep.pid)
    os.kill(server, signal.SIGSTOP)
    try:
        output, _ = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGCONT)
    assert sweep.returncode == 0, output
    assert f"the trial server (pid {server}) was stopped by a signal; continued it" in output
    assert "Traceback" not in output
    assert_consistent(folder, 4)
