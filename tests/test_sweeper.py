"""linesweep's Optuna sweeper, in-process: records, resume, failures, pruning."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
import yaml

from linesweep.core.storage import JOURNAL_NAME
from tests.conftest import load_study


def trials_csv(folder):
    return list(csv.DictReader((folder / "trials.csv").open()))


def summary(folder, number):
    return json.loads((folder / str(number) / "summary.json").read_text())


def test_a_sweep_records_every_trial_in_its_folder_the_csv_and_the_study(
    sweep_in_process, tmp_path
):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "model.out_1=int(interval(1,4))",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
    )
    study = load_study(tmp_path)
    assert len(study.trials) == 4
    rows = trials_csv(tmp_path)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    for trial, row in zip(study.trials, rows, strict=True):
        job = summary(tmp_path, trial.number)
        assert job["trial"] == {"number": trial.number, "study_name": "linesweep"}
        assert row["state"] == "complete" == job["status"]
        assert float(row["values.val_accuracy"]) == trial.value == job["objective"]["values"][0]
        assert int(row["params.model.out_1"]) == trial.params["model.out_1"]
        assert f"model.out_1={trial.params['model.out_1']}" in job["overrides"]
        assert row["folder"] == str(tmp_path / str(trial.number))
        assert (tmp_path / str(trial.number) / ".hydra" / "config.yaml").exists()
        assert (tmp_path / str(trial.number) / "shapes.yaml").exists()
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["best_params"] == study.best_params
    assert results["counts"] == {"complete": 4}


def test_rerunning_the_same_command_resumes_up_to_n_trials_in_total(sweep_in_process, tmp_path):
    args = ["model.out_1=int(interval(1,4))"]
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", *args)
    first = (tmp_path / "0" / "summary.json").read_text()
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", *args)  # nothing left to do
    assert len(load_study(tmp_path).trials) == 2
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=3", *args)  # one more, numbered 2
    study = load_study(tmp_path)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert (tmp_path / "0" / "summary.json").read_text() == first  # nothing overwritten
    assert summary(tmp_path, 2)["trial"]["number"] == 2


def test_failed_infeasible_and_diverged_trials_are_recorded_and_the_sweep_goes_on(
    sweep_in_process, tmp_path
):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.max_failure_rate=1.0",
        "optimizer=sgd",
        "model.conv2.kernel_size=choice(2,12)",  # 12 cannot fit: infeasible
        "optimizer.lr=choice(0.01,1e30)",  # 1e30 diverges
    )
    rows = {
        (r["params.model.conv2.kernel_size"], r["params.optimizer.lr"]): r
        for r in trials_csv(tmp_path)
    }
    assert rows[("2", "0.01")]["state"] == "complete"
    assert rows[("2", "1e+30")]["state"] == "diverged"
    assert "loss became" in rows[("2", "1e+30")]["error"]
    for lr in ("0.01", "1e+30"):
        infeasible = rows[("12", lr)]
        assert infeasible["state"] == "infeasible"
        assert infeasible["error"].startswith("conv2: input 9x9 is smaller than the kernel 12x12")
        assert summary(tmp_path, infeasible["number"])["status"] == "infeasible"
        assert not (tmp_path / infeasible["number"] / "metrics.csv").exists()  # no training at all
    study = load_study(tmp_path)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 1


def test_a_refused_trial_gets_its_one_line_reason_and_no_traceback(sweep_in_process, tmp_path):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.max_failure_rate=1.0",
        "data.p=choice(0.9,1.5)",
    )
    rows = {r["params.data.p"]: r for r in trials_csv(tmp_path)}
    assert rows["0.9"]["state"] == "complete"
    assert rows["1.5"]["state"] == "refused"
    # The run's own one-line reason (its text is tests/test_config.py's), in the study too.
    reason = summary(tmp_path, rows["1.5"]["number"])["error"]
    assert (
        rows["1.5"]["error"] == reason and reason.startswith("data.p=1.5 ") and "\n" not in reason
    )
    log = (tmp_path / rows["1.5"]["number"] / "train.log").read_text()
    assert reason in log and "Traceback" not in log  # the user's, not a bug


def test_the_sweep_stops_past_the_failure_rate_with_a_clear_message(
    sweep_in_process, tmp_path, capfd
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(
            tmp_path,
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.max_failure_rate=0.3",
            "data.p=choice(1.5,2.5)",
        )
    assert stop.value.code == 2
    output = "".join(capfd.readouterr())  # after a job, Hydra's logging owns the root logger
    assert (
        "sweep stopped: 2 of 6 trials failed, more than hydra.sweeper.max_failure_rate=0.3 allows"
        in output
    )
    ran = [r for r in trials_csv(tmp_path) if r["state"] != "duplicate"]
    assert [r["state"] for r in ran] == ["refused", "refused"]  # results written for what ran
    assert "2 of 6 trials finished" in output  # the answer so far, before the reason to stop


def test_pruning_stops_a_bad_trial_early_and_records_it(sweep_in_process, tmp_path):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=6",
        "trainer.epochs=6",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "optimizer.lr=choice(0.03,0.000001)",
        "model.out_1=choice(4)",
    )
    study = load_study(tmp_path)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [t.params for t in study.trials]
    for trial in pruned:
        job = summary(tmp_path, trial.number)
        assert job["status"] == "pruned" and job["epochs_run"] < 6
        assert (
            len(list(csv.DictReader((tmp_path / str(trial.number) / "metrics.csv").open())))
            == job["epochs_run"]
        )
        assert sorted(trial.intermediate_values) == list(range(1, job["epochs_run"] + 1))
        assert trial.params["optimizer.lr"] == 0.000001


def test_a_two_objective_sweep_writes_the_pareto_set(sweep_in_process, tmp_path, capfd):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=4",
        "objective.metrics=[val_accuracy,n_params]",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra/sweeper/pruner=none",
        "hydra/sweeper/sampler=nsgaii",
        "model.out_1=int(interval(1,6))",
    )
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    study = load_study(tmp_path)
    assert {s["number"] for s in results["solutions"]} == {t.number for t in study.best_trials}
    assert (
        "values.val_accuracy" in trials_csv(tmp_path)[0]
        and "values.n_params" in trials_csv(tmp_path)[0]
    )
    assert {r["epoch"] for r in trials_csv(tmp_path) if r["state"] == "complete"} == {"2"}
    assert (
        f"Pareto set: {len(study.best_trials)} trials, listed under `solutions` in "
        f"{tmp_path / 'optimization_results.yaml'}"
    ) in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            "hydra.sweeper.sampler._target_=optuna.samplers.TPESamplr",
            "hydra.sweeper.sampler._target_=optuna.samplers.TPESamplr is not allowed: an Optuna "
            "sampler class",
        ),
        (
            "hydra/sweeper/pruner=percentile hydra.sweeper.pruner.percentile=150",
            "hydra.sweeper.pruner={'n_startup_trials': 5, 'n_warmup_steps': 2, 'percentile': "
            "150.0} is not allowed: arguments PercentilePruner accepts (ValueError: ",
        ),
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is not allowed: an integer >= 1"),
        (  # Optuna itself takes it, as if it were 0
            "hydra.sweeper.sampler.n_startup_trials=-3",
            "hydra.sweeper.sampler.n_startup_trials=-3 is not allowed: a count, 0 or more",
        ),
        ("model.out_1=int(interval(5,2))", "model.out_1=int(interval(5,2)) is not allowed"),
        ("optimizer.lr=tag(log,interval(0,1))", "a log scale needs low > 0"),
        (
            "objective.metrics=[val_accuracy,n_params] hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner=optuna.pruners.MedianPruner is not allowed: none for a study "
            "with 2 objectives",
        ),
        (
            "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/none",
            "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/none is not allowed",
        ),
    ],
)
def test_bad_sweeper_input_exits_2_with_one_line_before_any_trial(
    sweep_in_process, tmp_path, caplog, overrides, message
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path, *overrides.split())
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not list(tmp_path.glob("[0-9]*"))  # no trial folder: nothing ran


def test_directions_must_match_an_existing_study(sweep_in_process, tmp_path, capfd):
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=1")
    with pytest.raises(SystemExit):
        sweep_in_process(
            tmp_path,
            "hydra.sweeper.n_trials=2",
            "objective.metrics=[val_loss]",
            "hydra.sweeper.direction=minimize",
        )
    output = "".join(capfd.readouterr())  # after a job, Hydra's logging owns the root logger
    assert "the directions of the existing study 'linesweep': ['maximize']" in output


def test_an_objective_running_against_the_study_direction_is_refused_before_any_trial(
    sweep_in_process, tmp_path, caplog
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(
            tmp_path,
            "hydra.sweeper.n_trials=3",
            "objective.metrics=[val_loss]",
            "hydra.sweeper.direction=maximize",
        )
    assert stop.value.code == 2
    # The logged line, as test_bad_sweeper_input_exits_2_with_one_line_before_any_trial reads
    # it: refused before any job, no handler of Hydra's here prints it (which handler an earlier
    # test left on the root logger decided what stderr showed).
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert (
        len(errors) == 1
        and (
            "hydra.sweeper.direction=[maximize] is not allowed: the directions of "
            "objective.metrics=['val_loss']: ['minimize']; leave hydra.sweeper.direction unset (it "
            "follows objective.metrics), or set hydra.sweeper.direction=minimize"
        )
        in errors[0]
    )
    assert not (tmp_path / JOURNAL_NAME).exists() and not list(tmp_path.glob("[0-9]*"))
