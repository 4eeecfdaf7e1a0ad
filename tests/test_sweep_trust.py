"""What a sweep's answer can be trusted for, in-process: no parameters run twice, no trial left
behind by a dead worker, the answer at the end, and bad input refused before any study exists."""

from __future__ import annotations

import csv

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from sqlalchemy import text

from linesweep.core.errors import LinesweepError
from linesweep.core.processes import this_process
from linesweep.core.storage import JOURNAL_NAME, check_study_name, open_storage
from linesweep.sweep.coordination import (
    OWNER,
    RetryStale,
    ask,
    beat,
    reap_abandoned,
    slot_holders,
)
from linesweep.sweep.proposals import Proposals, trial_seed
from linesweep.sweep.space import check_keys, parse_search_space
from linesweep.sweep.study import make_sampler
from tests.conftest import load_study, run_cli

CONTINUOUS = ["model.out_1=int(interval(1,6))", "optimizer.lr=tag(log,interval(1e-3,1e-1))"]
DISCRETE = ["model.out_1=int(interval(1,3))", "model.out_2=choice(1,2)"]  # 6 points


def rows(folder):
    return list(csv.DictReader((folder / "trials.csv").open()))


def points(study):
    """The parameters of every trial that ran or runs (not the replaced duplicates)."""
    return [tuple(sorted(t.params.items())) for t in slot_holders(study.trials)]


# ------------------------------------------------------------------ parameters never run twice


def test_trial_seeds_differ_per_trial_and_repeat_per_number():
    seeds = [trial_seed(0, n) for n in range(1000)]
    assert len(set(seeds)) == 1000 and seeds == [trial_seed(0, n) for n in range(1000)]
    assert trial_seed(0, 5) != trial_seed(1, 5)


@pytest.mark.parametrize(
    "space",
    [pytest.param(CONTINUOUS, marks=pytest.mark.slow), DISCRETE],  # the quick suite: discrete
    ids=["continuous", "discrete"],
)
def test_a_resumed_study_proposes_new_parameters_not_its_first_trials_again(
    sweep_in_process, tmp_path, space
):
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=3", *space)
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=6", *space)  # resumed: 3 more
    study = load_study(tmp_path)
    assert len(points(study)) == 6
    assert len(set(points(study))) == 6  # before: trials 3-5 repeated trials 0-2


@pytest.mark.slow  # 8 trials; test_proposals_replace_a_repeat_... checks the replacement alone
def test_a_finite_space_is_visited_without_repeats_until_it_is_exhausted(
    sweep_in_process, tmp_path
):
    sweep_in_process(
        tmp_path, "hydra.sweeper.n_trials=8", "hydra/sweeper/sampler=random", *DISCRETE
    )
    study = load_study(tmp_path)
    ran = points(study)
    assert len(ran) == 8
    assert len(set(ran[:6])) == 6  # all 6 points before any repeat
    for row in rows(tmp_path):
        if row["state"] == "duplicate":  # a repeated proposal: recorded, never run, no folder
            assert "not run, replaced by trial" in row["error"] and not row["folder"]
            assert not (tmp_path / row["number"]).exists()


def test_proposals_replace_a_repeat_by_an_unvisited_point_drawn_from_the_trial_seed(tmp_path):
    space = parse_search_space({}, ["a=int(interval(1,2))", "b=choice(x,y)"])
    storage = open_storage(str(tmp_path / JOURNAL_NAME))
    study = optuna.create_study(storage=storage, study_name="finite")
    random = {"_target_": "optuna.samplers.RandomSampler"}
    sampler = make_sampler({**random, "seed": 0}, space)
    proposals = Proposals(
        space, 0, lambda seed: make_sampler({**random, "seed": seed}, space), sampler
    )
    first = study.ask(space.distributions)
    study.tell(first, 1.0)
    study.enqueue_trial(first.params)
    twin = study.ask(space.distributions)  # the same point as trial 0, as a sampler may propose
    assert proposals.repeated(study, twin) == first.number
    replacement = proposals.unvisited(study, twin.number)
    assert replacement is not None and replacement != first.params
    assert replacement == proposals.unvisited(study, twin.number)  # the same seed, the same draw


# ------------------------------------------------------------------ trials left by dead workers


def test_a_running_trial_without_owner_is_reaped_at_once_and_the_study_ends_complete(
    sweep_in_process, tmp_path, capfd, caplog
):
    """A worker killed between asking for a trial and recording itself as its owner."""
    storage = open_storage(str(tmp_path / JOURNAL_NAME))
    study = optuna.create_study(storage=storage, study_name="linesweep", direction="maximize")
    orphan = study.ask({"model.out_1": IntDistribution(1, 4)})
    assert OWNER not in orphan.user_attrs
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", "model.out_1=int(interval(1,4))")
    # Until the first job, the log goes to caplog; after it, Hydra's logging owns the console.
    output = caplog.text + "".join(capfd.readouterr())
    assert "trial 0 was left RUNNING by a sweep process that died" in output
    assert "2 of 2 trials finished" in output  # not "1 of 2", waiting 120 s for a dead asker
    study = load_study(tmp_path)
    assert study.trials[0].state == TrialState.FAIL
    assert (
        "died before recording itself as its owner" in study.trials[0].user_attrs["linesweep.error"]
    )
    assert [t.state for t in slot_holders(study.trials)] == [TrialState.COMPLETE] * 2


def test_a_worker_here_that_dies_mid_sweep_has_its_slots_re_run_before_the_sweep_ends(
    sweep_in_process, tmp_path, monkeypatch
):
    """Another sweep process on this host asks a trial while this one runs, then dies (killed:
    its trial stays RUNNING). Once every slot is held, this process looks for dead owners
    before it stops asking, and re-runs the slot; before, the study ended one short, exit 0."""
    from linesweep.sweep.sweeper import Sweep

    record = Sweep._record

    def record_then_a_worker_dies(self, outcome):
        record(self, outcome)
        if outcome.number == 0:  # another worker's trial, RUNNING; its process gone
            dead = ask(self.study, {"model.out_1": IntDistribution(1, 4)})
            dead.set_user_attr(OWNER, {**this_process(), "pid_start": "not-this-process"})
            beat(self.storage, [dead])

    monkeypatch.setattr(Sweep, "_record", record_then_a_worker_dies)
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=3", "model.out_1=int(interval(1,4))")
    study = load_study(tmp_path)
    assert [t.state for t in slot_holders(study.trials)] == [TrialState.COMPLETE] * 3
    dead, rerun = study.trials[1], study.trials[-1]
    assert dead.state == TrialState.FAIL and dead.user_attrs["linesweep.state"] == "interrupted"
    assert rerun.params == dead.params and rerun.state == TrialState.COMPLETE


def test_a_trial_folder_holding_a_run_the_study_never_had_is_refused_and_its_trial_re_run(
    sweep_in_process, tmp_path
):
    """A new study in a folder whose trial folder 0 holds a run: the sweep stops (exit 2)
    before writing into it; the trial it asked never ran, so it holds no slot, and running the
    command again runs its parameters as a new trial and ends with n_trials."""
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "summary.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", "model.out_1=int(interval(1,4))")
    assert stop.value.code == 2
    (trial,) = [t for t in load_study(tmp_path).trials if t.state != TrialState.WAITING]
    assert trial.state == TrialState.FAIL and trial.user_attrs["linesweep.state"] == "interrupted"
    assert trial.user_attrs["linesweep.error"] == f"folder {tmp_path / '0'} holds a run"

    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", "model.out_1=int(interval(1,4))")
    study = load_study(tmp_path)
    assert [t.state for t in slot_holders(study.trials)] == [TrialState.COMPLETE] * 2
    assert study.trials[1].params == trial.params  # the re-run, in folder 1
    assert (tmp_path / "0" / "summary.json").read_text() == "{}"  # untouched throughout


def test_a_database_trial_whose_heartbeat_stopped_is_failed_by_optuna_and_its_slot_re_run(
    sweep_in_process, tmp_path
):
    """A worker on another host died mid-trial, on SQLite: Optuna's heartbeat finds it.

    linesweep does not judge another host's trial on a database: Optuna's `fail_stale_trials`
    does, and its retry callback queues the re-run. The dead worker's last heartbeat is set far
    in the past rather than waited for, so no clock decides the test.
    """
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat=(10, 120, RetryStale()))
    study = optuna.create_study(storage=storage, study_name="linesweep", direction="maximize")
    dead = ask(study, {"model.out_1": IntDistribution(1, 4)})
    dead.set_user_attr(OWNER, {"host": "another-host", "pid": 1, "pid_start": None})
    beat(storage, [dead])
    assert reap_abandoned(storage, study, stale_after_s=120) == []  # a fresh heartbeat: alive
    with storage.engine.begin() as connection:
        connection.execute(text("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'"))

    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={url}",
        "model.out_1=int(interval(1,4))",
    )
    study = load_study(None, storage=url)
    failed, rerun = study.trials[0], study.trials[1]
    assert failed.state == TrialState.FAIL
    assert "linesweep.state" not in failed.user_attrs  # failed by Optuna, not linesweep's reaper
    assert rerun.system_attrs["failed_trial"] == 0 and rerun.params == failed.params
    assert OWNER in rerun.user_attrs and rerun.user_attrs[OWNER]["host"] != "another-host"
    assert [t.state for t in slot_holders(study.trials)] == [TrialState.COMPLETE] * 2
    table = {row["number"]: row for row in rows(tmp_path)}
    assert table["0"]["state"] == "interrupted" and table["1"]["retry_of"] == "0"


# ------------------------------------------------------------------ the answer


def test_every_sweep_ends_with_its_answer_and_a_finished_one_repeats_it(
    sweep_in_process, tmp_path, capfd
):
    args = ["hydra.sweeper.n_trials=3", "model.out_1=int(interval(1,4))"]
    sweep_in_process(tmp_path, *args)
    first = "".join(capfd.readouterr())
    study = load_study(tmp_path)
    best = study.best_trial
    expected = [
        "study 'linesweep': 3 of 3 trials finished (3 complete)",
        f"best single trial: val_accuracy={best.value:.4g} (trial {best.number}, epoch 2): "
        f"model.out_1={best.params['model.out_1']}",
        f"results: {tmp_path / 'optimization_results.yaml'} and {tmp_path / 'trials.csv'}",
        f"compare the trials: python -m linesweep.compare {tmp_path}",
    ]
    for line in expected:
        assert line in first
    sweep_in_process(tmp_path, *args)  # nothing left to do: the same answer
    again = "".join(capfd.readouterr())
    for line in expected:
        assert line in again
    assert "trial 3" not in again


def test_trials_csv_gives_the_epoch_each_value_was_measured_at(sweep_in_process, tmp_path):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=6",
        "trainer.epochs=6",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "optimizer.lr=choice(0.03,0.000001)",
    )
    study = load_study(tmp_path)
    by_number = {int(r["number"]): r for r in rows(tmp_path)}
    states = set()
    for trial in study.trials:
        row = by_number[trial.number]
        states.add(row["state"])
        if trial.state == TrialState.PRUNED:  # its value is its last report's
            assert int(row["epoch"]) == trial.last_step < 6
            assert float(row["values.val_accuracy"]) == trial.intermediate_values[trial.last_step]
        elif trial.state == TrialState.COMPLETE:
            assert int(row["epoch"]) == 6
        else:
            assert row["epoch"] == ""
    assert {"complete", "pruned"} <= states


@pytest.mark.parametrize("executor", ["process", "population"])
def test_a_sampled_value_hydra_cannot_compose_refuses_its_trial_alone(
    sweep_in_process, tmp_path, executor
):
    # trainer.batch_size=abc passes the search space (a choice of anything) but not Hydra's
    # typed config: that trial is refused, the others train, the study ends.
    sweep_in_process(
        tmp_path,
        "hydra/sweeper/sampler=grid",
        f"hydra.sweeper.executor={executor}",
        "trainer.batch_size=choice(20,abc)",
        "optimizer.lr=choice(0.01,0.1)",
    )
    study = load_study(tmp_path)
    assert (
        sorted(t.state for t in study.trials) == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    )
    by_state = {}
    for row in rows(tmp_path):
        by_state.setdefault(row["state"], []).append(row)
    assert [r["params.trainer.batch_size"] for r in by_state["refused"]] == ["abc", "abc"]
    for row in by_state["refused"]:
        assert row["error"].startswith("trainer.batch_size=abc is not allowed: a value Hydra can")
        assert "\n" not in row["error"]


def test_config_groups_on_the_commands_search_path_are_options_like_any_other(
    sweep_in_process, tmp_path
):
    extra = tmp_path / "extra"
    (extra / "experiment").mkdir(parents=True)
    (extra / "experiment" / "extra.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /experiment/smoke\ntrainer:\n  epochs: 1\n"
    )
    sweep_in_process(
        tmp_path / "sweep",
        f"hydra.searchpath=[file://{extra}]",
        "experiment=extra",  # found only through hydra.searchpath
        "hydra/sweeper/sampler=grid",
        "optimizer.lr=choice(0.1,0.2)",
    )
    assert [r["epoch"] for r in rows(tmp_path / "sweep")] == ["1", "1"]


# ------------------------------------------------------------------ bad input, before any study


def refused(sweep_in_process, folder, caplog, *overrides) -> str:
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(folder, *overrides)
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert not folder.exists()  # nothing written, not even the folder made to check it
    return errors[0]


def test_a_typo_in_a_search_space_key_names_the_nearest_keys_before_any_study(
    sweep_in_process, tmp_path, caplog
):
    error = refused(sweep_in_process, tmp_path, caplog, "model.out1=int(interval(1,8))")
    assert error.startswith("search-space key model.out1 is not in the composed config")
    assert "the nearest: model.out_1, model.out_2" in error


@pytest.mark.parametrize(
    "value",
    ["hydra.sweeper.sampler=grid", "hydra.sweeper.sampler=null", "hydra.sweeper.pruner=median"],
)
def test_a_sampler_or_pruner_set_as_a_value_names_its_config_group(
    sweep_in_process, tmp_path, caplog, value
):
    error = refused(sweep_in_process, tmp_path, caplog, "optimizer.lr=choice(0.1,0.2)", value)
    group = "hydra/sweeper/" + value.split(".")[2].split("=")[0]
    assert error.startswith(f"{value} is not allowed: a `_target_` config, chosen with {group}=")


def test_a_typo_in_a_config_groups_option_is_refused_before_any_study(
    sweep_in_process, tmp_path, caplog
):
    error = refused(sweep_in_process, tmp_path, caplog, "optimizer=choice(adam,sgdd)")
    assert error.startswith("search-space key optimizer: 'sgdd' is not an option of the config")
    assert error.endswith("the nearest: sgd")


@pytest.mark.parametrize(
    "argument",
    [
        "optimizer=choice(adam,sgd)",  # a config group
        "experiment=choice(smoke)",  # a config group whose package is global
        "+model.extra=choice(1,2)",  # a new key, by intent
        "model.conv1.kernel_size=range(1,3)",
        "~plots",
    ],
)
def test_search_space_keys_may_be_config_keys_groups_or_additions(compose_config, argument):
    check_keys(
        parse_search_space({}, [argument]), compose_config("experiment=smoke", with_hydra=True)
    )


def test_a_typo_in_hydra_sweeper_params_is_caught_too(compose_config):
    space = parse_search_space({"optimizer.lrr": "interval(0.1,0.2)"}, [])
    with pytest.raises(LinesweepError, match=r"the nearest: optimizer\.lr"):
        check_keys(space, compose_config(with_hydra=True))


def test_an_unimportable_preload_module_is_one_line(sweep_in_process, tmp_path, caplog):
    error = refused(
        sweep_in_process,
        tmp_path,
        caplog,
        "hydra.sweeper.executor=process",
        "hydra.sweeper.preload=[no.such.module]",
    )
    assert error.startswith("hydra.sweeper.preload=[no.such.module] is not allowed")


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "''", "x..y"])
def test_a_study_name_that_would_leave_its_folder_is_refused(
    sweep_in_process, tmp_path, capfd, name
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path / "sweep", f"hydra.sweeper.study_name={name}")
    assert stop.value.code == 2
    error = capfd.readouterr().err.strip()
    assert error.startswith(f"error: hydra.sweeper.study_name={name.strip(chr(39))} is not allowed")
    assert "\n" not in error and not (tmp_path / "sweep").exists()


def test_the_sweeper_refuses_such_names_too_for_apps_without_linesweep_callbacks():
    for name in ("../escape", "a/b", ".hidden", "", "x..y", None, "a" * 201, "é" * 101):
        with pytest.raises(LinesweepError, match=r"hydra\.sweeper\.study_name="):
            check_study_name(name)
    check_study_name("channels_lr-2.v3")
    check_study_name("é" * 100)  # 200 bytes: a folder name with room for the lock's suffix


# The command line, end to end (the first as a process, the second through the same cli() in
# this process); test_a_study_name_that_would_leave_its_folder_is_refused checks the same
# refusal through the sweeper alone.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "process"), [("../escape", True), ("../runs/inside-a-run", False)]
)
def test_a_study_name_outside_outputs_sweeps_is_refused_before_any_folder(
    tmp_path, train_in_process, name, process
):
    args = ["-m", "hydra/sweeper=linesweep", "experiment=smoke", f"hydra.sweeper.study_name={name}"]
    if process:
        done = run_cli("linesweep.train", *args, cwd=tmp_path)
    else:
        done = train_in_process(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: hydra.sweeper.study_name={name} is not allowed")
    assert "\n" not in done.stderr.strip() and "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # not outputs/escape, not outputs/sweeps/..
