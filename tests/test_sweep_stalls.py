"""A stalled trial does not stall the sweep: named in the log, ended after trial_timeout.

A trial process (or a population's) stopped with SIGSTOP reports no epoch; the sweep says so,
ends it once `hydra.sweeper.trial_timeout` seconds have passed without a report, records it
`timeout` (a failure), and goes on to end with exactly n_trials, on both executors.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal

import pytest

from linesweep.sweep.coordination import slot_holders
from tests.test_faults import SLOW, SPACE, assert_consistent, running_trial, start, wait_for

pytestmark = pytest.mark.slow


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
