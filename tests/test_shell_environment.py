"""What the shell leaves around a command: a current folder deleted under it, a trial variable
left from a sweep; and signals that come while a trial's process starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from linesweep.core.errors import ConfigError
from linesweep.core.trial_link import ENV_VAR, TrialContext


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_deleted_current_folder_is_one_line_and_exit_2(tmp_path, sweep):
    gone = tmp_path / "gone"
    command = [sys.executable, "-m", "linesweep.train", "experiment=smoke", "plots=none"]
    if sweep:
        command += ["-m", "hparams_search=channels_lr", "hydra.sweeper.n_trials=1"]
    script = f"mkdir {gone} && cd {gone} && rmdir {gone} && exec " + " ".join(command)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the current folder: it was deleted" in lines[0], done.stderr


def test_a_malformed_trial_variable_is_refused_naming_it():
    for text in ("garbage", "{}", '{"storage": "x"}'):
        with pytest.raises(ConfigError) as refused:
            TrialContext.from_env(text)
        assert refused.value.key == ENV_VAR and "\n" not in str(refused.value)


@pytest.mark.slow
def test_a_single_run_ignores_a_trial_variable_left_in_the_shell(tmp_path):
    stale = {"storage": str(tmp_path / "nowhere" / "journal.log"), "study_name": "x", "number": 0}
    done = subprocess.run(
        [sys.executable, "-m", "linesweep.train", "experiment=smoke", "plots=none",
         f"hydra.run.dir={tmp_path / 'run'}"],
        env={**os.environ, ENV_VAR: json.dumps(stale)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "complete"
    assert not (tmp_path / "nowhere").exists()  # no study made where the variable pointed


def test_a_signal_while_a_trial_process_starts_is_taken_once_it_has_started():
    # In a process of its own, under the sweep's own handlers.
    code = """
import os, signal
from linesweep.sweep import workers
from linesweep.sweep.interrupts import SweepInterrupted, interruptible
seen = []
class Process:
    def start(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the job is being sent
        for _ in range(10000):  # the handler's chance to run, if nothing held it
            pass
        seen.append("started")
with interruptible():
    try:
        workers.start(Process())
    except SweepInterrupted as stop:
        seen.append(str(stop))
print("seen:", seen)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "seen: ['started', 'SIGINT']" in done.stdout
