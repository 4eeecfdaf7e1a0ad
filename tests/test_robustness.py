"""Robustness, in-process: odd objectives, unwritable folders, full disks, determinism, and any
config a user can type either running or being refused with one clear line."""

from __future__ import annotations

import copy
import csv
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from hydra.core.config_store import ConfigStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from linesweep.core.errors import Diverged, LinesweepError
from linesweep.core.files import ensure_writable_folder, write_json
from linesweep.core.storage import JOURNAL_NAME, open_storage
from linesweep.run.task import run
from tests.conftest import ROOT, TINY, load_study
from tests.test_faults import file_size_limit

# ------------------------------------------------------------------ objectives a job may return


@dataclass
class ObjectiveApp:
    value: str = "good"


RETURNS = {
    "nan_value": math.nan,
    "inf_value": math.inf,
    "none_value": None,
    "pair": (0.1, 0.2),
    "text": "abc",
    "good": 0.25,
    "better": 0.75,
}


def objective_task(cfg):
    return RETURNS[cfg.value]


def test_nan_inf_none_or_wrong_arity_objectives_fail_with_a_reason(hydra_sweep_runner, tmp_path):
    ConfigStore.instance().store(name="objective_app", node=ObjectiveApp)
    sweep = hydra_sweep_runner(
        calling_file=__file__,
        calling_module=None,
        task_function=objective_task,
        config_path=None,
        config_name="objective_app",
        overrides=[
            "hydra/sweeper=linesweep",
            "hydra/sweeper/sampler=grid",
            "hydra/sweeper/pruner=none",
            "hydra.sweeper.n_trials=7",
            "hydra.sweeper.max_failure_rate=1.0",
            "hydra.sweeper.direction=maximize",  # an app without objective.metrics minimizes
            "value=choice(" + ",".join(RETURNS) + ")",
        ],
        temp_dir=tmp_path,
    )
    with sweep:
        study = load_study(tmp_path)
        by_value = {t.params["value"]: t for t in study.trials}
        assert by_value["better"].value == 0.75 and by_value["good"].value == 0.25
        for name in ("nan_value", "inf_value", "none_value", "text", "pair"):
            assert by_value[name].state == optuna.trial.TrialState.FAIL, name
        errors = {
            name: by_value[name].user_attrs["linesweep.error"]
            for name in RETURNS
            if name not in ("good", "better")
        }
        assert "non-finite objective: [nan]" in errors["nan_value"]
        assert "non-finite objective: [inf]" in errors["inf_value"]
        assert "returned None, not an objective value" in errors["none_value"]
        assert "returned 'abc', not an objective value" in errors["text"]
        assert "returned 2 value(s) for 1 objective(s)" in errors["pair"]
        results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
        assert results["best_value"] == 0.75 == study.best_value  # never a failed trial


# ------------------------------------------------------------------ folders that cannot be written


def test_a_sweep_folder_that_cannot_be_written_is_refused_before_any_trial(
    sweep_in_process, tmp_path, capfd
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(blocker / "sweep", "hydra.sweeper.n_trials=1")
    assert stop.value.code == 2
    error = capfd.readouterr().err.strip()
    assert error == (
        f"error: hydra.sweep.dir={blocker / 'sweep'} is not allowed: "
        "a folder this process can write; Not a directory"
    )


def test_a_storage_path_that_cannot_be_written_is_refused(sweep_in_process, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        sweep_in_process(
            tmp_path / "sweep",
            "hydra.sweeper.n_trials=1",
            f"hydra.sweeper.storage={blocker}/study.log",
        )
    assert (
        f"hydra.sweeper.storage={blocker} is not allowed: a folder this process can write"
        in caplog.text
    )
    assert not (tmp_path / "sweep" / "0").exists()


def refusal_as_a_user_who_cannot_write(folder: Path) -> str:
    """What ensure_writable_folder raises for `folder`, made read-only for the one who asks.

    Root writes through any permission bits, so when the tests run as root the check runs in a
    forked child that has given up root for `nobody`: a real EACCES either way, nothing mocked.
    """
    folder.chmod(0o555)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the refusal through the pipe, never return into pytest
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            ensure_writable_folder(folder, "hydra.sweep.dir")
            os.write(write, b"written")
        except BaseException as err:
            os.write(write, str(err).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def test_permission_denied_is_reported_with_the_folder(tmp_path):
    """A folder the sweep may not write: one line with the key, the folder and the OS's reason.

    (How that line reaches the console, before any trial, is the "Not a directory" test above.)
    """
    folder = Path(tempfile.mkdtemp())  # in /tmp, which `nobody` may enter, unlike tmp_path
    try:
        message = refusal_as_a_user_who_cannot_write(folder)
    finally:
        folder.chmod(0o755)
        folder.rmdir()
    assert message == (
        f"hydra.sweep.dir={folder} is not allowed: a folder this process can write; "
        "Permission denied"
    )


def test_a_write_the_disk_cannot_hold_leaves_the_previous_file_intact(tmp_path):
    """A real write past a file-size limit (EFBIG, as a full disk's ENOSPC) in a child process."""
    target = tmp_path / "summary.json"
    write_json(target, {"status": "complete", "value": 0.9})
    code = (
        "from linesweep.core.files import ensure_writable_folder, write_json; "
        f"write_json({str(target)!r}, {{'status': 'complete', 'padding': 'x' * 100_000}})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, preexec_fn=file_size_limit(10_000),
    )  # fmt: skip
    assert done.returncode == 1 and "OSError: [Errno 27] File too large" in done.stderr
    assert json.loads(target.read_text()) == {"status": "complete", "value": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no torn temporary left


def test_sqlite_with_several_workers_warns_and_points_to_the_alternatives(
    sweep_in_process, tmp_path, caplog
):
    sweep_in_process(
        tmp_path / "sweep",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db",
    )
    assert "SQLite locks the whole database on every write" in caplog.text
    assert "journal file" in caplog.text and "PostgreSQL" in caplog.text


def test_the_slurm_launcher_config_composes_for_a_sweep(compose_config):
    cfg = compose_config("hparams_search=channels_lr", "hydra/launcher=slurm", with_hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.cpus_per_task == 1 and cfg.hydra.launcher.timeout_min > 0
    assert cfg.hydra.sweeper._target_.endswith("LinesweepOptunaSweeper")


# ------------------------------------------------------------------ determinism


@pytest.mark.slow  # a command, then a run in-process from what it left
def test_a_run_is_reproduced_from_its_folder_alone(tmp_path, train_in_process):
    """The folder's .hydra/config.yaml (seeds included) is all it takes to train the same model.

    The one determinism test of a run: the same config gives the same metrics and weights. The
    command runs through cli() in this process (test_cli.py runs it as a process).
    """
    done = train_in_process(*TINY, "seed=11", "model.out_1=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (original,) = (tmp_path / "outputs" / "runs").glob("*/*")
    run(OmegaConf.load(original / ".hydra" / "config.yaml"), tmp_path / "again")
    first, second = (
        json.loads((f / "summary.json").read_text()) for f in (original, tmp_path / "again")
    )
    assert first["seeds"] == second["seeds"] and first["seeds"]["base"] == 11
    metrics = [
        [
            (r["train_cost"], r["val_loss"], r["val_accuracy"])  # not the timings
            for r in csv.DictReader((f / "metrics.csv").open())
        ]
        for f in (original, tmp_path / "again")
    ]
    assert metrics[0] == metrics[1]  # every epoch's loss and accuracy, bit for bit
    a, b = (torch.load(f / "model.pt", weights_only=True) for f in (original, tmp_path / "again"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "space",
    [
        ["model.out_1=int(interval(1,6))", "optimizer.lr=tag(log,interval(1e-3,1e-1))"],
        # 4 points in 5 trials: repeats replaced, then the space exhausted
        ["model.out_1=int(interval(1,2))", "model.out_2=choice(1,2)"],
    ],
    ids=["continuous", "finite"],
)
@pytest.mark.slow  # two sweeps of 5 trials each
def test_a_seeded_sweep_proposes_the_same_parameters_twice(sweep_in_process, tmp_path, space):
    """A seed per trial (see linesweep/sweep/proposals.py) repeats a fresh sweep exactly."""
    args = ["hydra.sweeper.n_trials=5", *space]
    sweep_in_process(tmp_path / "a", *args)
    sweep_in_process(tmp_path / "b", *args)
    a, b = (load_study(tmp_path / n) for n in ("a", "b"))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]
    assert [t.user_attrs.get("linesweep.state") for t in a.trials] == [
        t.user_attrs.get("linesweep.state") for t in b.trials
    ]


# ------------------------------------------------------------ any config: runs, or one clear line

config_values = st.fixed_dictionaries(
    {
        "data.N_images": st.integers(-2, 60),
        "data.image_size": st.integers(1, 16),
        "data.line_length": st.integers(0, 12),
        "data.line_width": st.integers(0, 5),
        "data.offset": st.integers(-1, 4),
        "data.p": st.floats(-0.5, 1.5, allow_nan=False),
        "model.out_1": st.integers(-1, 5),
        "model.conv1.kernel_size": st.integers(0, 8),
        "model.pool1.stride": st.integers(0, 3),
        "model.conv2.padding": st.integers(-1, 3),
        "model.pool2.dilation": st.integers(0, 3),
        "optimizer.lr": st.sampled_from([-1.0, 0.0, 1e-3, 0.1, 1e3, 1e30]),
        "trainer.batch_size": st.integers(0, 40),
    }
)


@functools.cache
def composed_once(compose_config) -> DictConfig:
    """The config every example starts from, composed once per test run: composing it again
    for each of 40 examples was nine tenths of the test's time."""
    return compose_config(*TINY, "data.N_val_images=20", "trainer.epochs=1")


def with_values(base: DictConfig, values: dict) -> DictConfig:
    """`base` composed with `key=value` for each value: Hydra sets a value override on the
    composed config with OmegaConf.update (ConfigLoaderImpl._apply_overrides_to_config)."""
    cfg = copy.deepcopy(base)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


def test_values_set_on_the_composed_config_are_what_hydra_composes(compose_config):
    values = {"data.N_images": 7, "data.p": 0.25, "optimizer.lr": 1e30, "model.out_1": -1}
    typed = compose_config(
        *TINY, "data.N_val_images=20", "trainer.epochs=1", *(f"{k}={v}" for k, v in values.items())
    )
    assert with_values(composed_once(compose_config), values) == typed


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=config_values)
def test_any_config_either_runs_or_is_refused_with_one_line(
    compose_config, tmp_path_factory, values
):
    folder = tmp_path_factory.mktemp("run")
    try:
        run(with_values(composed_once(compose_config), values), folder)
    except Diverged:
        assert json.loads((folder / "summary.json").read_text())["status"] == "diverged"
    except LinesweepError as err:
        message, subject = str(err), str(err).split(":")[0]
        assert "\n" not in message
        assert "=" in subject or subject in (
            "conv1",
            "pool1",
            "conv2",
            "pool2",
        )  # key=value or layer
        status = json.loads((folder / "summary.json").read_text())["status"]
        assert status in ("refused", "infeasible")
    else:
        assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
    text = (folder / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


# ------------------------------------------------------------------ workers on other machines


def test_a_trial_of_another_host_is_reaped_only_once_its_heartbeat_is_stale(tmp_path):
    from linesweep.sweep.coordination import HEARTBEAT, OWNER, RETRY_OF, reap_abandoned

    storage = open_storage(str(tmp_path / JOURNAL_NAME))
    study = optuna.create_study(storage=storage, study_name="remote")
    elsewhere = {"host": "another-machine", "pid": 1, "pid_start": None}
    fresh, stale = study.ask({"x": optuna.distributions.IntDistribution(1, 9)}), study.ask()
    for trial, beat in ((fresh, time.time()), (stale, time.time() - 600)):
        trial.set_user_attr(OWNER, elsewhere)
        trial.set_user_attr(HEARTBEAT, beat)
    reaped = reap_abandoned(storage, study, stale_after_s=120)
    assert [t.number for t in reaped] == [stale.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[fresh.number] == optuna.trial.TrialState.RUNNING  # alive elsewhere: left alone
    assert states[stale.number] == optuna.trial.TrialState.FAIL
    retry = [t for t in study.get_trials() if t.user_attrs.get(RETRY_OF) == stale.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.WAITING
    assert reap_abandoned(storage, study, stale_after_s=120) == []  # reaping is done once


def test_a_trial_whose_sweep_died_after_its_run_finished_is_completed_not_rerun(
    tmp_path, compose_config
):
    """SIGKILL between a population member's record and the sweep's tell: the folder says
    complete, the study says RUNNING. Reaped, it is completed with the recorded value; a folder
    that records another trial, or no completion, is reaped and re-run as before."""
    from linesweep.core.processes import this_process
    from linesweep.sweep.coordination import OWNER, RETRY_OF, reap_abandoned
    from linesweep.sweep.salvage import finished_in

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    storage = open_storage(str(sweep / JOURNAL_NAME))
    study = optuna.create_study(storage=storage, study_name="salvage", direction="maximize")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = {**this_process(), "pid": gone.pid}
    trials = [study.ask({"x": optuna.distributions.IntDistribution(1, 9)}) for _ in range(3)]
    for trial in trials:
        trial.set_user_attr(OWNER, dead)
    for number, as_trial in ((0, 0), (1, 7)):  # trial 1's folder holds another trial's record
        folder = sweep / str(number)
        run(compose_config(*TINY, "trainer.epochs=1"), folder)
        record = json.loads((folder / "summary.json").read_text())
        record["trial"] = {"number": as_trial, "study_name": "salvage"}
        write_json(folder / "summary.json", record)
    (sweep / "2").mkdir()  # trial 2 wrote nothing yet
    recorded = json.loads((sweep / "0" / "summary.json").read_text())["objective"]["values"]

    reaped = reap_abandoned(storage, study, 120, locked=True, finished=finished_in(sweep, study))
    states = {t.number: t for t in study.get_trials()}
    assert states[0].state == optuna.trial.TrialState.COMPLETE and states[0].values == recorded
    assert states[0].user_attrs["linesweep.state"] == "complete"
    assert [t.number for t in reaped] == [1, 2]
    assert [states[n].state for n in (1, 2)] == [optuna.trial.TrialState.FAIL] * 2
    assert sorted(
        t.user_attrs[RETRY_OF] for t in study.get_trials() if RETRY_OF in t.user_attrs
    ) == [1, 2]


def test_a_trial_stopped_after_its_run_recorded_it_complete_is_told_complete(
    tmp_path, compose_config
):
    """Ctrl-C just after a trial's last epoch: the sweep stops its process before the result
    crosses the pipe. The folder says complete, so the study does too (not interrupted, to be
    trained again beside a folder that says `complete`); a folder with no completion: as before."""
    from linesweep.sweep.outcomes import JobOutcome
    from linesweep.sweep.telling import Teller

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    storage = open_storage(str(sweep / JOURNAL_NAME))
    study = optuna.create_study(storage=storage, study_name="stopped", direction="maximize")
    trials = [study.ask({"x": optuna.distributions.IntDistribution(1, 9)}) for _ in range(2)]
    folder = sweep / "0"
    run(compose_config(*TINY, "trainer.epochs=1"), folder)
    record = json.loads((folder / "summary.json").read_text())
    record["trial"] = {"number": 0, "study_name": "stopped"}
    write_json(folder / "summary.json", record)
    (sweep / "1").mkdir()  # trial 1 wrote nothing yet
    teller = Teller(
        study, storage, str(sweep / JOURNAL_NAME), sweep, OmegaConf.create(),
        ["val_accuracy"], 2, None,
    )  # fmt: skip
    for trial in trials:
        teller.tell(trial, JobOutcome(trial.number, None, sweep / str(trial.number), "interrupted"))
    states = {t.number: t for t in study.get_trials()}
    assert states[0].state == optuna.trial.TrialState.COMPLETE
    assert states[0].values == record["objective"]["values"]
    assert states[1].state == optuna.trial.TrialState.FAIL
    assert states[1].user_attrs["linesweep.state"] == "interrupted"


@pytest.mark.slow
def test_trials_run_through_a_hydra_launcher_plugin(sweep_in_process, tmp_path):
    sweep_in_process(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.sweeper.executor=process",  # a launcher plugin takes precedence over it
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "model.out_1=int(interval(1,4))",
    )
    study = load_study(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        summary = json.loads((tmp_path / str(trial.number) / "summary.json").read_text())
        assert summary["trial"]["number"] == trial.number
        assert summary["pid"] != os.getpid()  # trained in joblib's worker processes
