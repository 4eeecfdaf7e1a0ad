"""Faults a sweep must survive, injected for real: kills, signals, races, broken files.

Each test drives `python -m linesweep.train -m ...` as a separate process (the thing a user
runs), breaks something at a chosen moment, and checks that nothing was lost: the study, the
trial folders, trials.csv and optimization_results.yaml all agree, and re-running the same
command finishes the job with exactly n_trials trials.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from linesweep.compare.runs import read_run
from linesweep.core.storage import JOURNAL_NAME, open_storage
from linesweep.sweep.coordination import RETRY_OF, holds_slot

pytestmark = pytest.mark.slow

FAST = ["hydra/sweeper=linesweep", "experiment=smoke", "plots=none", "hydra.sweeper.sampler.seed=0"]
# About two seconds per trial: time to kill one in the middle.
SLOW = [*FAST, "data.N_images=2000", "trainer.batch_size=10", "trainer.epochs=25"]
SPACE = ["model.out_1=int(interval(1,4))"]


def sweep_command(folder: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "linesweep.train", "-m", *overrides, f"hydra.sweep.dir={folder}"]


def start(folder: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        sweep_command(folder, *overrides),
        cwd=folder.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(folder: Path, *overrides: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(folder, *overrides),
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_trial(folder: Path, number: int) -> dict | None:
    """The trial's summary once it has started training (metrics.csv has a row)."""
    try:
        summary = json.loads((folder / str(number) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    started = (folder / str(number) / "metrics.csv").exists()
    return summary if summary["status"] == "running" and started else None


def study_of(folder: Path, name: str = "linesweep") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(folder / JOURNAL_NAME)))


def assert_consistent(
    folder: Path, n_trials: int, name: str = "linesweep", lost: tuple[int, ...] = ()
) -> optuna.Study:
    """Exactly n_trials hold a slot; every finished trial's folder says what the study says.

    `lost`: trials whose last journal record was cut away on purpose: the study no longer
    knows they finished (it re-runs them), while their folders still do.
    """
    study = study_of(folder, name)
    counted = [t for t in study.trials if holds_slot(t)]
    assert len(counted) == n_trials, [(t.number, t.state.name) for t in study.trials]
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    rows = {int(r["number"]): r for r in csv.DictReader((folder / "trials.csv").open())}
    assert set(rows) == {t.number for t in study.trials}
    for trial in study.trials:
        summary = json.loads((folder / str(trial.number) / "summary.json").read_text())
        # The folder, read as compare reads it, says what the study says.
        if trial.number not in lost:
            assert read_run(folder / str(trial.number)).state == rows[trial.number]["state"]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert summary["status"] == "complete"
            assert summary["objective"]["values"] == list(trial.values)
            assert summary["trial"]["number"] == trial.number
    return study


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigkill_of_the_sweep_mid_trial_then_the_same_command_resumes(tmp_path):
    folder = tmp_path / "sweep"
    args = [*SLOW, *SPACE, "hydra.sweeper.n_trials=3"]
    sweep = start(folder, *args)
    wait_for(lambda: running_trial(folder, 1), what="trial 1 to train")
    trial_pid = running_trial(folder, 1)["pid"]
    first = (folder / "0" / "summary.json").read_text()
    sweep.kill()  # SIGKILL: no clean-up at all
    sweep.wait(timeout=10)
    wait_for(lambda: process_gone(trial_pid), timeout=10, what="the orphaned trial to exit")

    done = run(folder, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial 1 was left RUNNING by a sweep process that died" in done.stdout + done.stderr
    study = assert_consistent(folder, 3)
    assert (folder / "0" / "summary.json").read_text() == first  # completed work kept as it was
    interrupted = study.trials[1]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["linesweep.state"] == "interrupted"
    assert "is gone" in interrupted.user_attrs["linesweep.error"]
    assert json.loads((folder / "1" / "summary.json").read_text())["status"] == "interrupted"
    rerun = next(t for t in study.trials if t.user_attrs.get(RETRY_OF) == 1)
    assert rerun.number == 2 and rerun.params == interrupted.params  # its slot, re-run first


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_sigint_stop_promptly_and_record_what_finished(tmp_path, signum, code):
    folder = tmp_path / "sweep"
    args = [*SLOW, *SPACE, "hydra.sweeper.n_trials=3"]
    sweep = start(folder, *args)
    wait_for(lambda: running_trial(folder, 1), what="trial 1 to train")
    sent = time.monotonic()
    sweep.send_signal(signum)
    output, _ = sweep.communicate(timeout=30)
    assert sweep.returncode == code
    assert time.monotonic() - sent < 20  # prompt: the trial is not allowed to finish first
    assert f"sweep interrupted by {signal.Signals(signum).name}" in output
    rows = {r["number"]: r for r in csv.DictReader((folder / "trials.csv").open())}
    assert rows["0"]["state"] == "complete" and rows["1"]["state"] == "interrupted"
    assert (folder / "optimization_results.yaml").exists()
    assert json.loads((folder / "1" / "summary.json").read_text())["status"] == "interrupted"
    assert study_of(folder).trials[0].state == optuna.trial.TrialState.COMPLETE  # reloads cleanly

    done = run(folder, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(folder, 3)


@pytest.mark.parametrize(("workers", "n_trials"), [(2, 8), (4, 12)])
def test_workers_started_in_the_same_instant_share_a_new_study_exactly(tmp_path, workers, n_trials):
    folder = tmp_path / "sweep"
    args = [
        *FAST,
        *SPACE,
        f"hydra.sweeper.n_trials={n_trials}",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
    ]
    sweeps = [start(folder, *args) for _ in range(workers)]
    outputs = [s.communicate(timeout=300)[0] for s in sweeps]
    assert [s.returncode for s in sweeps] == [0] * workers, outputs
    study = assert_consistent(folder, n_trials)
    assert len(study.trials) == n_trials  # none lost, none duplicated, none extra


def test_a_trial_process_killed_on_its_own_is_failed_and_the_sweep_goes_on(tmp_path):
    folder = tmp_path / "sweep"
    sweep = start(folder, *SLOW, *SPACE, "hydra.sweeper.n_trials=3")
    os.kill(
        wait_for(lambda: running_trial(folder, 0), what="trial 0 to train")["pid"], signal.SIGKILL
    )
    output, _ = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, output
    study = assert_consistent(folder, 3)
    killed = study.trials[0]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert killed.user_attrs["linesweep.state"] == "killed"
    assert "killed by SIGKILL" in killed.user_attrs["linesweep.error"]
    assert read_run(folder / "0").note.endswith("is gone")  # compare sees the same death
    assert [t.state.name for t in study.trials[1:]] == ["COMPLETE", "COMPLETE"]


def test_a_stale_journal_lock_is_broken_with_a_warning(tmp_path):
    folder = tmp_path / "sweep"
    assert run(folder, *FAST, "hydra.sweeper.n_trials=1").returncode == 0
    lock = folder / f"{JOURNAL_NAME}.lock"
    os.symlink(folder / JOURNAL_NAME, lock)  # what a writer killed mid-append leaves behind
    old = time.time() - 600
    os.utime(lock, (old, old), follow_symlinks=False)
    started = time.monotonic()
    done = run(folder, *FAST, "hydra.sweeper.n_trials=2", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 25  # not Optuna's 30 s wait for a stale lock
    assert "removed a stale lock" in done.stdout + done.stderr
    assert len(study_of(folder).trials) == 2


def test_a_torn_last_journal_record_is_cut_after_a_backup(tmp_path):
    folder = tmp_path / "sweep"
    assert run(folder, *FAST, "hydra.sweeper.n_trials=1").returncode == 0
    journal = folder / JOURNAL_NAME
    with journal.open("ab") as handle:
        handle.write(
            b'{"op_code": 5, "worker_id": "dead-writer", "trial_id": 0, "par'
        )  # no newline
    done = run(folder, *FAST, "hydra.sweeper.n_trials=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cut a torn last record" in done.stdout + done.stderr
    assert journal.read_bytes().endswith(b"\n")
    assert len(list(folder.glob(f"{JOURNAL_NAME}.backup-*"))) == 1
    assert_consistent(folder, 2)


def test_a_corrupt_journal_record_is_refused_with_the_exact_repair_command(tmp_path):
    folder = tmp_path / "sweep"
    assert run(folder, *FAST, "hydra.sweeper.n_trials=2").returncode == 0
    journal = folder / JOURNAL_NAME
    records = journal.read_bytes().split(b"\n")[:-1]
    keep = len(records) - 1  # garbage before the last record: repairing loses only that record
    journal.write_bytes(b"\n".join([*records[:keep], b"{not json", *records[keep:]]) + b"\n")
    done = run(folder, *FAST, "hydra.sweeper.n_trials=3")
    assert done.returncode == 2
    command = f"python -m linesweep.sweep.journal {journal} --keep {keep}"
    assert command in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    repair = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True)
    assert repair.returncode == 0, repair.stderr
    done = run(folder, *FAST, "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(folder, 3, lost=(1,))  # the cut record was trial 1's last
