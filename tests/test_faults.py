"""Faults a sweep must survive, injected for real: kills, signals, races, broken files.

Each test drives `python -m linesweep.train -m ...` as a separate process (the thing a user
runs), breaks something at a chosen moment, and checks that nothing was lost: the study, the
trial folders, trials.csv and optimization_results.yaml all agree, and re-running the same
command finishes the job with exactly n_trials trials. The fault always hits a real process;
where what it left is only files (a journal, a lock, a study), the command that resumes runs
through the same cli() in this process (`train_in_process`), which saves a process start of
about 2.5 s of CPU each; the signal test's second round resumes as a process.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from linesweep.compare.runs import read_run
from linesweep.core.storage import JOURNAL_NAME
from linesweep.sweep.coordination import RETRY_OF, slot_holders
from tests.conftest import load_study

pytestmark = pytest.mark.slow

# One process per trial, one at a time: a trial to kill, a sweep to stop between two trials.
FAST = [
    "hydra/sweeper=linesweep", "experiment=smoke", "plots=none", "hydra.sweeper.sampler.seed=0",
    "hydra.sweeper.executor=process",
]  # fmt: skip
# About a second per trial (12 epochs of 200 batches): time to kill one in the middle, where
# a test signals it within a poll (0.05 s) of its first epoch.
SLOW = [*FAST, "data.N_images=2000", "trainer.batch_size=10", "trainer.epochs=12"]
SPACE = ["model.out_1=int(interval(1,4))"]


def sweep_arguments(folder: Path, *overrides: str) -> list[str]:
    """What follows `python -m linesweep.train` (run from `folder.parent`)."""
    return ["-m", *overrides, f"hydra.sweep.dir={folder}"]


def sweep_command(folder: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "linesweep.train", *sweep_arguments(folder, *overrides)]


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


def assert_consistent(
    folder: Path, n_trials: int, name: str = "linesweep", lost: tuple[int, ...] = ()
) -> optuna.Study:
    """Exactly n_trials hold a slot; every finished trial's folder says what the study says.

    `lost`: trials whose last journal record was cut away on purpose: the study no longer
    knows they finished (it re-runs them), while their folders still do.
    """
    study = load_study(folder, name)
    counted = slot_holders(study.trials)
    assert len(counted) == n_trials, [(t.number, t.state.name) for t in study.trials]
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    rows = {int(r["number"]): r for r in csv.DictReader((folder / "trials.csv").open())}
    assert set(rows) == {t.number for t in study.trials}
    for trial in study.trials:
        if trial.user_attrs.get("linesweep.state") == "duplicate":  # replaced before it ran
            assert not (folder / str(trial.number)).exists()
            continue
        if not (folder / str(trial.number)).exists():  # asked, then its sweep died: never ran
            assert trial.user_attrs.get("linesweep.state") == "interrupted"
            continue
        summary = json.loads((folder / str(trial.number) / "summary.json").read_text())
        # The folder, read as compare reads it, says what the study says.
        if trial.number not in lost:
            assert read_run(folder / str(trial.number)).state == rows[trial.number]["state"]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert summary["status"] == "complete"
            assert summary["objective"]["values"] == list(trial.values)
            assert summary["trial"]["number"] == trial.number
    return study


def repeats(study: optuna.Study) -> int:
    """How many trials that ran (or run) repeat the parameters of an earlier one."""
    ran = [tuple(sorted(t.params.items())) for t in slot_holders(study.trials)]
    return len(ran) - len(set(ran))


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigkill_of_the_sweep_mid_trial_then_the_same_command_resumes(tmp_path, train_in_process):
    folder = tmp_path / "sweep"
    args = [*SLOW, *SPACE, "hydra.sweeper.n_trials=2"]  # trial 0 complete, trial 1 killed
    sweep = start(folder, *args)
    wait_for(lambda: running_trial(folder, 1), what="trial 1 to train")
    trial_pid = running_trial(folder, 1)["pid"]
    first = (folder / "0" / "summary.json").read_text()
    sweep.kill()  # SIGKILL: no clean-up at all
    sweep.wait(timeout=10)
    wait_for(lambda: process_gone(trial_pid), timeout=10, what="the orphaned trial to exit")

    # The same command, through cli() in this process: what the dead sweep left is in the files.
    done = train_in_process(*sweep_arguments(folder, *args), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial 1 was left RUNNING by a sweep process that died" in done.stdout + done.stderr
    study = assert_consistent(folder, 2)
    assert (folder / "0" / "summary.json").read_text() == first  # completed work kept as it was
    interrupted = study.trials[1]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["linesweep.state"] == "interrupted"
    assert "is gone" in interrupted.user_attrs["linesweep.error"]
    assert json.loads((folder / "1" / "summary.json").read_text())["status"] == "interrupted"
    rerun = next(t for t in study.trials if t.user_attrs.get(RETRY_OF) == 1)
    assert rerun.number == 2 and rerun.params == interrupted.params  # its slot, re-run first


def test_sigterm_or_sigint_stop_promptly_and_record_what_finished(tmp_path, train_in_process):
    """SIGTERM while trial 1 trains; the same command again, and SIGINT while its first trial
    (trial 1's slot re-run, number 2) trains; then the same command finishes the study."""
    folder = tmp_path / "sweep"
    args = [*SLOW, *SPACE, "hydra.sweeper.n_trials=2"]
    for signum, code, number in [(signal.SIGTERM, 143, 1), (signal.SIGINT, 130, 2)]:
        sweep = start(folder, *args)
        wait_for(lambda n=number: running_trial(folder, n), what=f"trial {number} to train")
        sent = time.monotonic()
        sweep.send_signal(signum)
        output, _ = sweep.communicate(timeout=30)
        assert sweep.returncode == code, output
        assert time.monotonic() - sent < 20  # prompt: the trial is not allowed to finish first
        assert f"sweep interrupted by {signal.Signals(signum).name}" in output
        assert "Traceback" not in output
        interrupted = number  # trials 1, then 1 and 2
        assert (
            f"study 'linesweep': 1 of 2 trials finished (1 complete, {interrupted} interrupted"
            in output
        ), output
        rows = {r["number"]: r for r in csv.DictReader((folder / "trials.csv").open())}
        assert rows["0"]["state"] == "complete" and rows[str(number)]["state"] == "interrupted"
        assert (folder / "optimization_results.yaml").exists()
        summary = json.loads((folder / str(number) / "summary.json").read_text())
        assert summary["status"] == "interrupted"
        study = load_study(folder)  # reloads cleanly
        assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
        assert study.trials[number].params == study.trials[1].params  # the slot re-run first

    # The resume that finishes it in this process: the second round resumed as a process.
    done = train_in_process(*sweep_arguments(folder, *args), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert repeats(assert_consistent(folder, 2)) == 0  # the re-runs of trial 1 are no repeat


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_is_one_line_and_keeps_the_epochs_it_finished(tmp_path, signum, code):
    folder = tmp_path / "run"
    training = ["experiment=smoke", "data.N_images=2000", "trainer.batch_size=10"]
    command = [
        sys.executable, "-m", "linesweep.train", *training, "trainer.epochs=200", "plots=all",
        f"hydra.run.dir={folder}",
    ]  # fmt: skip
    # Its own process group, signalled whole as a terminal's Ctrl-C is: the drawing process too.
    single = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: len(metric_rows(folder)) >= 2 or single.poll() is not None, what="epochs")
    os.killpg(single.pid, signum)
    output, _ = single.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert single.returncode == code, output
    assert "Traceback" not in output
    assert f"interrupted by {name}; recorded in {folder}" in output
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"] == f"interrupted by {name}"
    rows = metric_rows(folder)
    assert summary["epochs_run"] == len(rows) >= 2  # what it finished is in the summary
    assert summary["final"]["epoch"] == float(rows[-1]["epoch"])
    with pytest.raises(ProcessLookupError):  # nothing of the run is left: not its drawing
        os.killpg(single.pid, 0)


def metric_rows(folder: Path) -> list[dict[str, str]]:
    try:
        return list(csv.DictReader((folder / "metrics.csv").open()))
    except FileNotFoundError:
        return []


CONTINUOUS = ["model.out_1=int(interval(1,4))", "optimizer.lr=tag(log,interval(1e-3,1e-1))"]
DISCRETE = ["model.out_1=int(interval(1,4))", "model.out_2=choice(1,2,3)"]  # 12 points


@pytest.mark.parametrize(
    ("workers", "n_trials", "space"),
    [(4, 12, CONTINUOUS), (3, 9, DISCRETE)],
    ids=["4-12-continuous", "3-9-discrete"],
)
def test_workers_started_in_the_same_instant_share_a_new_study_exactly_without_repeats(
    tmp_path, workers, n_trials, space
):
    """Every worker sets the same seed (each used to draw the same parameters), and every one
    starts at once on a study that does not exist yet."""
    folder = tmp_path / "sweep"
    args = [*FAST, *space, f"hydra.sweeper.n_trials={n_trials}"]
    sweeps = [start(folder, *args) for _ in range(workers)]
    outputs = [s.communicate(timeout=300)[0] for s in sweeps]
    assert [s.returncode for s in sweeps] == [0] * workers, outputs
    study = assert_consistent(folder, n_trials)
    replaced = sum(t.user_attrs.get("linesweep.state") == "duplicate" for t in study.trials)
    print(f"{space}: {repeats(study)} repeats in {n_trials} trials, {replaced} proposals replaced")
    assert repeats(study) == 0
    if space is CONTINUOUS:  # no proposal repeats another: none lost, duplicated or extra
        assert len(study.trials) == n_trials


def test_a_trial_process_killed_on_its_own_is_failed_and_the_sweep_goes_on(tmp_path):
    folder = tmp_path / "sweep"
    sweep = start(folder, *SLOW, *SPACE, "hydra.sweeper.n_trials=2")  # one killed, one after
    os.kill(
        wait_for(lambda: running_trial(folder, 0), what="trial 0 to train")["pid"], signal.SIGKILL
    )
    output, _ = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, output
    study = assert_consistent(folder, 2)
    killed = study.trials[0]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert killed.user_attrs["linesweep.state"] == "killed"
    assert "killed by SIGKILL" in killed.user_attrs["linesweep.error"]
    assert read_run(folder / "0").note.endswith("is gone")  # compare sees the same death
    assert [t.state.name for t in study.trials[1:]] == ["COMPLETE"]


def test_a_stale_journal_lock_is_broken_with_a_warning(tmp_path, prepared_sweep, train_in_process):
    folder = tmp_path / "sweep"
    prepared_sweep(folder, *FAST, "hydra.sweeper.n_trials=1")  # run(folder, ...), run once
    lock = folder / f"{JOURNAL_NAME}.lock"
    os.symlink(folder / JOURNAL_NAME, lock)  # what a writer killed mid-append leaves behind
    old = time.time() - 600
    os.utime(lock, (old, old), follow_symlinks=False)
    started = time.monotonic()
    # The resume in this process (what is left behind is a file, not a process).
    done = train_in_process(
        *sweep_arguments(folder, *FAST, "hydra.sweeper.n_trials=2"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 25  # not Optuna's 30 s wait for a stale lock
    assert "removed a stale lock" in done.stdout + done.stderr
    assert len(load_study(folder).trials) == 2


def test_a_lock_left_by_a_killed_writer_does_not_stall_the_resume(
    tmp_path, prepared_sweep, train_in_process
):
    folder = tmp_path / "sweep"
    prepared_sweep(folder, *FAST, "hydra.sweeper.n_trials=1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder / JOURNAL_NAME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # dies holding the lock: a fresh lock, that age alone would respect for 30 s
    holder.wait()
    assert (folder / f"{JOURNAL_NAME}.lock").is_symlink()
    began = time.monotonic()
    # The resume in this process: the writer that died is the process of its own here.
    done = train_in_process(
        *sweep_arguments(folder, *FAST, "hydra.sweeper.n_trials=2"), cwd=tmp_path
    )
    print(f"resume with a dead writer's lock: {time.monotonic() - began:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"its writer, pid {holder.pid} on this host, is gone" in done.stdout + done.stderr
    assert len(load_study(folder).trials) == 2


HOLD_LOCK = """
import sys, time
from linesweep.core.journal_lock import OwnedSymlinkLock
OwnedSymlinkLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def file_size_limit(size: int):
    """For preexec_fn: no file this process (or its trials) writes may grow past `size` bytes.

    A full disk, for one process tree: a write past the limit fails with EFBIG (Python ignores
    the SIGXFSZ that would otherwise kill it), after writing what fits, as on a full disk.
    """
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_full_disk_mid_sweep_is_one_line_and_the_resume_is_exact(tmp_path, train_in_process):
    folder = tmp_path / "sweep"
    args = [*FAST, *SPACE, "hydra.sweeper.max_failure_rate=1.0"]

    # 1. A trial's figures (about 28 KB) no longer fit; the study's records (1.6 KB a trial) do.
    full = subprocess.run(
        sweep_command(folder, *args, "plots=light", "hydra.sweeper.n_trials=2"),
        cwd=tmp_path, capture_output=True, text=True, preexec_fn=file_size_limit(16_000),
    )  # fmt: skip
    output = full.stdout + full.stderr
    assert full.returncode == 2, output  # every trial failed: the sweep has no result
    assert "sweep ended without a result: all 2 of its trials failed" in output
    assert "Traceback" not in output and "Logging error" not in output
    study = load_study(folder)
    for trial in study.trials:
        reason = trial.user_attrs["linesweep.error"]
        assert trial.user_attrs["linesweep.state"] == "failed" and "File too large" in reason
        assert sum(f"trial {trial.number} failed (" in line for line in output.splitlines()) == 1
        summary = json.loads((folder / str(trial.number) / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["error"] == reason  # in its folder too
        assert "Traceback" not in (folder / str(trial.number) / "train.log").read_text()

    # 2. Then the journal itself fills up: the sweep stops with one line, keeping what it has.
    # Room for the files written once (multirun.yaml is the largest), and about one more trial.
    # (plots=none from now on: a fixed override the study did not start with, on purpose.)
    args = [*args, "hydra.sweeper.resume_changed=true"]
    largest = max((folder / name).stat().st_size for name in (JOURNAL_NAME, "multirun.yaml"))
    limit = largest + 2_000
    stopped = subprocess.run(
        sweep_command(folder, *args, "plots=none", "hydra.sweeper.n_trials=6"),
        cwd=tmp_path, capture_output=True, text=True, preexec_fn=file_size_limit(limit),
    )  # fmt: skip
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 1, output
    assert "Traceback" not in output and "Logging error" not in output
    assert "sweep stopped: the storage or the disk failed" in output

    # 3. Room again: the same command finishes the study, exactly (in this process: no limit).
    arguments = sweep_arguments(folder, *args, "plots=none", "hydra.sweeper.n_trials=6")
    done = train_in_process(*arguments, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 of 6 trials finished" in done.stdout + done.stderr
    study = load_study(folder)
    cut_short = tuple(
        t.number for t in study.trials if t.user_attrs.get("linesweep.state") == "interrupted"
    )  # running when the journal filled up: their folders say why they failed, the study that
    # their sweep died before it could record them; their parameters ran again
    assert_consistent(folder, 6, lost=cut_short)


def test_a_torn_last_journal_record_is_cut_after_a_backup(
    tmp_path, prepared_sweep, train_in_process
):
    folder = tmp_path / "sweep"
    prepared_sweep(folder, *FAST, "hydra.sweeper.n_trials=1")
    journal = folder / JOURNAL_NAME
    with journal.open("ab") as handle:
        handle.write(
            b'{"op_code": 5, "worker_id": "dead-writer", "trial_id": 0, "par'
        )  # no newline
    done = train_in_process(
        *sweep_arguments(folder, *FAST, "hydra.sweeper.n_trials=2"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cut a torn last record" in done.stdout + done.stderr
    assert journal.read_bytes().endswith(b"\n")
    assert len(list(folder.glob(f"{JOURNAL_NAME}.backup-*"))) == 1
    assert_consistent(folder, 2)


def test_a_corrupt_journal_record_is_refused_with_the_exact_repair_command(
    tmp_path, prepared_sweep, train_in_process
):
    folder = tmp_path / "sweep"
    prepared_sweep(folder, *FAST, "hydra.sweeper.n_trials=2")
    journal = folder / JOURNAL_NAME
    records = journal.read_bytes().split(b"\n")[:-1]
    keep = len(records) - 1  # garbage before the last record: the repair drops only the garbage
    journal.write_bytes(b"\n".join([*records[:keep], b"{not json", *records[keep:]]) + b"\n")
    # Refused before any trial: the command in this process says the same lines.
    arguments = sweep_arguments(folder, *FAST, "hydra.sweeper.n_trials=3")
    done = train_in_process(*arguments, cwd=tmp_path)
    assert done.returncode == 2
    command = f"python -m linesweep.sweep.journal {journal} --repair"
    assert command in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    repair = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True)
    assert repair.returncode == 0, repair.stderr
    done = train_in_process(
        *sweep_arguments(folder, *FAST, "hydra.sweeper.n_trials=3"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(folder, 3)  # every record kept: trial 1's last one too


def test_a_journal_overwritten_under_a_running_sweep_stops_it_in_one_line(tmp_path):
    folder = tmp_path / "sweep"
    sweep = start(
        folder, "hydra/sweeper=linesweep", "experiment=smoke", "plots=none",
        "hydra.sweeper.executor=population", "hydra.sweeper.population_size=4",
        "hydra.sweeper.n_trials=4", "trainer.epochs=300", "data.N_images=600",
        "optimizer.lr=tag(log,interval(1e-4,1e-1))",
    )  # fmt: skip
    journal = folder / JOURNAL_NAME
    wait_for(lambda: (folder / "0" / "metrics.csv").exists(), what="the population's epochs")
    # Garbage where the records were (another program's write, a bad disk): wherever the
    # storage left off reading, its next line is no JSON.
    journal.write_bytes(b"x" * journal.stat().st_size + b"\n")
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, out
    assert "sweep stopped: the storage or the disk failed (JSONDecodeError" in out
    assert "Traceback" not in out
