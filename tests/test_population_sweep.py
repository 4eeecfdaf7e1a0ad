"""The population executor: a sweep's trials of one architecture trained as one population.

Each trial must still be a run like any other (its folder, record, Optuna trial and pruning
decision), equal to the same trial trained alone, and a sweep interrupted mid-population must
leave no trial RUNNING.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from linesweep.core import trial_link
from linesweep.core.storage import JOURNAL_NAME, open_storage
from linesweep.core.trial_link import TrialContext, TrialLink
from linesweep.run.task import run
from linesweep.sweep.population_executor import PopulationExecutor, _Population
from tests.process_tree import trial_processes

POPULATION = ["hydra.sweeper.executor=population", "hydra/sweeper/pruner=none"]
GRID = ["hydra/sweeper/sampler=grid"]


def load_study(folder: Path) -> optuna.Study:
    return optuna.load_study(
        study_name="linesweep", storage=open_storage(str(folder / JOURNAL_NAME))
    )


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def metrics(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "metrics.csv").open()))


def populations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "train as one population" in r.getMessage()]


def test_every_member_is_a_complete_run_with_its_own_record(sweep_in_process, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    sweep_in_process(
        tmp_path,
        *POPULATION,
        "hydra.sweeper.n_trials=5",
        "hydra.sweeper.population_size=5",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        "seed=choice(3,4)",  # members of two seeds: two data splits in one population
    )
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert populations(caplog) == ["trials 0-4 train as one population (padded to out_1=2 out_2=1)"]
    for trial in study.trials:
        folder = tmp_path / str(trial.number)
        job = summary(folder)
        assert job["status"] == "complete" and job["trial"]["number"] == trial.number
        assert job["objective"]["values"] == [trial.value]
        assert f"optimizer.lr={trial.params['optimizer.lr']}" in job["overrides"]
        assert len(metrics(folder)) == job["epochs_run"] == 2
        assert sorted(trial.intermediate_values) == [1, 2]  # reported every epoch
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        assert config.optimizer.lr == trial.params["optimizer.lr"]
        assert config.seed == trial.params["seed"]
        for name in ("model.pt", "shapes.yaml", "train.log"):
            assert (folder / name).exists(), name
    assert len(list(csv.DictReader((tmp_path / "trials.csv").open()))) == 5


@pytest.mark.parametrize(
    "seeds",
    [
        "seed=choice(4,5)",  # members of two seeds: each its own batches
        "seed=4",  # one seed: every member the same shuffled batches, one shared set of columns
    ],
)
def test_a_member_ends_where_the_same_trial_trained_alone_ends(sweep_in_process, tmp_path, seeds):
    sweep_in_process(
        tmp_path / "sweep",
        *POPULATION,
        *GRID,
        "hydra.sweeper.population_size=4",
        "optimizer.lr=choice(0.001,0.05)",
        "optimizer.weight_decay=choice(0,0.05)",  # members' rules differ beyond the rate
        seeds,
    )
    trials = sorted((tmp_path / "sweep").glob("[0-9]*"))
    assert len(trials) == (8 if "choice" in seeds else 4)
    for folder in trials:
        cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
        alone = tmp_path / "alone" / folder.name
        run(cfg, alone)  # the solo run of the same config: the same seeds
        member, solo = metrics(folder), metrics(alone)
        for key in ("train_loss", "val_loss"):
            assert float(member[0][key]) == pytest.approx(float(solo[0][key]), rel=1e-5), key
        assert float(member[-1]["val_accuracy"]) == float(solo[-1]["val_accuracy"])


def test_a_pruned_member_is_recorded_pruned_while_the_others_complete(sweep_in_process, tmp_path):
    sweep_in_process(
        tmp_path,
        *GRID,
        "hydra.sweeper.executor=population",
        "hydra.sweeper.population_size=3",
        "trainer.epochs=4",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=0.9",  # val_accuracy below 0.9: stop
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "optimizer.lr=choice(0.03,0.000001,0.02)",
    )
    study = load_study(tmp_path)
    states = {t.params["optimizer.lr"]: t.state for t in study.trials}
    assert states == {
        0.03: optuna.trial.TrialState.COMPLETE,
        0.02: optuna.trial.TrialState.COMPLETE,
        0.000001: optuna.trial.TrialState.PRUNED,
    }
    for trial in study.trials:
        folder = tmp_path / str(trial.number)
        job = summary(folder)
        pruned = trial.state == optuna.trial.TrialState.PRUNED
        assert job["status"] == ("pruned" if pruned else "complete")
        assert len(metrics(folder)) == job["epochs_run"] == (1 if pruned else 4)
        assert sorted(trial.intermediate_values) == list(range(1, job["epochs_run"] + 1))
        assert (folder / "model.pt").exists()


def test_trials_of_other_channel_counts_train_together_other_kernels_apart(
    sweep_in_process, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    sweep_in_process(
        tmp_path,
        *POPULATION,
        *GRID,
        "hydra.sweeper.population_size=8",
        "model.out_1=choice(1,3)",  # padded: one population
        "model.conv2.kernel_size=choice(2,3)",  # another geometry: another population
        "hydra.sweeper.n_trials=4",
    )
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    by_kernel: dict[int, list[int]] = {}
    for trial in study.trials:
        by_kernel.setdefault(trial.params["model.conv2.kernel_size"], []).append(trial.number)
        assert summary(tmp_path / str(trial.number))["status"] == "complete"
    expected = sorted(
        f"trials {', '.join(map(str, numbers))} train as one population (padded to out_1=3 out_2=1)"
        for numbers in by_kernel.values()
    )
    assert sorted(populations(caplog)) == expected


def test_an_impossible_architecture_is_refused_alone_while_the_others_train(
    sweep_in_process, tmp_path, caplog
):
    """Its kernel does not fit the image: that trial is recorded infeasible, in a process of
    its own, and the others train; planning populations never reads its shapes."""
    caplog.set_level(logging.INFO)
    sweep_in_process(
        tmp_path,
        *POPULATION,
        *GRID,
        "model.conv2.kernel_size=choice(2,9)",  # 9 is larger than conv2's input
        "hydra.sweeper.n_trials=2",
    )
    study = load_study(tmp_path)
    by_kernel = {t.params["model.conv2.kernel_size"]: t for t in study.trials}
    assert by_kernel[2].state == optuna.trial.TrialState.COMPLETE
    assert by_kernel[9].state == optuna.trial.TrialState.FAIL
    assert summary(tmp_path / str(by_kernel[9].number))["status"] == "infeasible"
    assert not [r.message for r in caplog.records if "plan failed" in r.getMessage()]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "hydra.sweeper.executor=batch",
            "hydra.sweeper.executor=batch is not allowed: auto, process, launcher or population",
        ),
        (
            "hydra.sweeper.population_size=0",
            "hydra.sweeper.population_size=0 is not allowed: an integer >= 1",
        ),
    ],
)
def test_bad_executor_input_exits_2_with_one_line(
    sweep_in_process, tmp_path, caplog, override, message
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path, "hydra.sweeper.executor=population", override)
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not list(tmp_path.glob("[0-9]*"))


def training_population(
    folder: Path, numbers: range = range(3)
) -> tuple[list[str], subprocess.Popen]:
    """A population sweep of 3 trials started as a command, returned once all 3 (`numbers`)
    train."""
    args = [
        "hydra/sweeper=linesweep",
        "experiment=smoke",
        "plots=none",
        "hydra.sweeper.sampler.seed=0",
        *POPULATION,
        "data.N_images=2000",
        "trainer.batch_size=10",
        "trainer.epochs=12",  # a second or two: time to interrupt it mid-training
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.population_size=3",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        f"hydra.sweep.dir={folder}",
    ]
    command = [sys.executable, "-m", "linesweep.train", "-m", *args]
    sweep = subprocess.Popen(
        command, cwd=folder.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while not all((folder / str(n) / "metrics.csv").exists() for n in numbers):
        assert time.monotonic() < deadline, "the population did not start training"
        time.sleep(0.05)
    return command, sweep


@pytest.mark.slow
def test_an_interrupted_population_leaves_no_trial_running(tmp_path):
    """SIGTERM while the population trains; the same command again, and SIGINT while it trains
    the three trials queued for the re-run; then the same command finishes the study."""
    folder = tmp_path / "sweep"
    FAIL, WAITING = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING
    for attempt, (signum, code) in enumerate([(signal.SIGTERM, 143), (signal.SIGINT, 130)]):
        told = range(3 * attempt, 3 * attempt + 3)  # the population's trials: 0-2, then 3-5
        command, sweep = training_population(folder, told)
        sweep.send_signal(signum)
        output, _ = sweep.communicate(timeout=30)
        assert sweep.returncode == code, output.decode()
        study = load_study(folder)
        states = [t.state for t in study.trials]
        assert optuna.trial.TrialState.RUNNING not in states  # every member told
        assert states == [FAIL] * (3 * attempt + 3) + [WAITING] * 3
        for trial in study.trials[told.start : told.stop]:  # each queued again for the re-run
            assert trial.user_attrs["linesweep.state"] == "interrupted"
            record = summary(folder / str(trial.number))
            assert record["status"] == "interrupted"
            assert record["epochs_run"] == len(metrics(folder / str(trial.number)))  # finished
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    states = [t.state for t in load_study(folder).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3  # the re-runs of all three


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the population's process in /proc")
def test_a_population_process_stopped_alone_tells_its_members_interrupted(tmp_path):
    # SIGTERM to the population's process, not the sweep: its members record `interrupted`,
    # the study and trials.csv say so too, and the sweep re-runs their slots to the end.
    folder = tmp_path / "sweep"
    _, sweep = training_population(folder)
    (population,) = trial_processes(sweep.pid)
    os.kill(population, signal.SIGTERM)
    output, _ = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, output.decode()[-3000:]
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert [r["state"] for r in rows[:3]] == ["interrupted"] * 3
    assert [r["state"] for r in rows[3:]] == ["complete"] * 3  # their slots, re-run
    for n in range(3):
        assert summary(folder / str(n))["status"] == "interrupted"


def _two_reports(send) -> None:
    """A population's process: member 0's result, member 1's shortly after, then exit 0."""
    for number in (0, 1):
        ret = JobReturn(status=JobStatus.COMPLETED, _return_value=0.9)
        send.send((number, ret))
        time.sleep(0.05)


def test_a_result_sent_while_the_sweep_records_another_is_not_taken_for_a_death():
    # The sweep records member 0 (the journal, trials.csv: slow under load) while the process
    # sends member 1 and exits: member 1 must still be read, not called dead.
    context = multiprocessing.get_context("fork")
    results, send = context.Pipe(duplex=False)
    _, alive = context.Pipe(duplex=False)
    process = context.Process(target=_two_reports, args=(send,))
    process.start()
    send.close()
    executor = PopulationExecutor.__new__(PopulationExecutor)  # only its collecting is used
    configs = {n: OmegaConf.create({"trainer": {"epochs": 2}}) for n in (0, 1)}
    population = _Population({0: Path("/x/0"), 1: Path("/x/1")}, configs, process, results, alive)
    executor._populations = [population]
    outcomes = []

    def record_slowly(outcome) -> None:
        outcomes.append(outcome)
        process.join()  # the process sent member 1 and exited meanwhile

    multiprocessing.connection.wait([results], timeout=30)
    executor._collect_population(population, record_slowly)
    assert [(o.number, o.died) for o in outcomes] == [(0, None), (1, None)]
    assert [o.job_return.cfg for o in outcomes] == [configs[0], configs[1]]  # attached here
    assert executor._populations == []


def test_the_results_files_wait_for_the_pause_after_a_populations_endings(monkeypatch):
    """A population's members end 0.1-0.2 s apart: while others still run, the results files
    (rebuilt from the whole study) wait for a pause, at most LAG_S after the first ending."""
    from linesweep.sweep import telling

    writes: list[float] = []
    teller = telling.Teller(None, None, "", Path("."), OmegaConf.create(), ["v"], 1, None)  # type: ignore[arg-type]

    def write_results() -> None:
        writes.append(now[0])
        teller.told = False

    monkeypatch.setattr(teller, "write_results", write_results)
    now = [100.0]
    monkeypatch.setattr(telling.time, "monotonic", lambda: now[0])

    def ending() -> None:  # what Teller.tell does with the clock once a trial is told
        teller.last_told_at = now[0]
        if not teller.told:
            teller.told, teller.told_at = True, now[0]

    teller.write_if_told(others_running=False)
    assert writes == []  # nothing told: nothing to write
    first = now[0]
    for _ in range(30):  # endings 0.2 s apart for 6 s, others still running: written at LAG_S
        ending()
        now[0] += 0.2
        teller.write_if_told(others_running=True)
    assert len(writes) == 1 and telling.LAG_S <= writes[0] - first <= telling.LAG_S + 0.2
    writes.clear()
    ending()
    now[0] += telling.QUIET_S  # a pause after the last ending: written
    teller.write_if_told(others_running=True)
    assert len(writes) == 1
    ending()
    teller.write_if_told(others_running=False)  # nothing left running: written at once
    assert len(writes) == 2


def test_a_population_of_six_writes_its_results_files_once_or_twice(
    sweep_in_process, tmp_path, monkeypatch
):
    """Before: once per wait that ended a trial, a population's members each rewrote them."""
    from linesweep.sweep.telling import Teller

    writes = []
    original = Teller.write_results
    monkeypatch.setattr(Teller, "write_results", lambda self: writes.append(original(self)))
    sweep_in_process(
        tmp_path, *POPULATION, "plots=light", "hydra.sweeper.n_trials=6",
        "hydra.sweeper.population_size=6", "optimizer.lr=tag(log,interval(1e-3,1e-1))",
    )  # fmt: skip
    assert len(list(csv.DictReader((tmp_path / "trials.csv").open()))) == 6
    assert 1 <= len(writes) <= 3, len(writes)  # the loop's, when none runs, and the end's


def test_a_sigterm_while_the_population_process_starts_ends_it_quietly(monkeypatch, capfd):
    """The sweep stops on Ctrl-C by sending SIGTERM to its populations: one that arrives while a
    population's process is still setting up (here: as it sets Hydra's globals) ends it with
    no traceback on the terminal; before, multiprocessing printed one, exit 1."""
    from linesweep.sweep import population_executor

    monkeypatch.setattr(
        population_executor, "setup_globals", lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    fork = multiprocessing.get_context("fork")
    results, child_results = fork.Pipe(duplex=False)
    alive, _keep_alive = fork.Pipe(duplex=False)
    job = ([], {}, dict(os.environ), "linesweep.run.batch", None, None)
    process = fork.Process(
        target=population_executor._population_main, args=(child_results, alive, job)
    )
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err
    assert not results.poll()  # no member reported: the sweep records them interrupted


def test_the_trials_of_a_population_share_one_storage(tmp_path, monkeypatch):
    """Opening a journal replays the whole file: a population's trials open it once."""
    url = str(tmp_path / JOURNAL_NAME)
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for _ in range(3):
        study.ask()
    opened = []
    real_open = trial_link.open_storage
    monkeypatch.setattr(trial_link, "open_storage", lambda u: opened.append(u) or real_open(u))
    storages: dict = {}  # what `batch.run` hands every job of its population
    for number in range(3):
        link = TrialLink(TrialContext(storage=url, study_name="s", number=number), storages)
        link.report(1, 0.25 * number)
    assert opened == [url]
    reported = optuna.load_study(study_name="s", storage=open_storage(url)).trials
    assert [t.intermediate_values for t in reported] == [{1: 0.0}, {1: 0.25}, {1: 0.5}]
