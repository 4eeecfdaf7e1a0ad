"""A sweep ends with its answer (linesweep/core/answer.py), from the study alone: each run tells
its trial its replicates (`TrialLink.record_result`), the sweep turns the trials into
configurations (linesweep/sweep/results.py), and one computation is written under `answer:` in
optimization_results.yaml and said on the console after the closing lines."""

from __future__ import annotations

import logging
import math

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from linesweep.core.answer import AnswerSettings
from linesweep.core.errors import LinesweepError
from linesweep.core.rerun import rerun_command
from linesweep.core.storage import without_password
from linesweep.core.trial_link import RESULT, TrialContext, TrialLink, TrialResult
from linesweep.sweep.coordination import STATE
from linesweep.sweep.results import AnswerSetup, sweep_answer
from tests.conftest import load_study

GRID = ["hydra/sweeper/sampler=grid", "model.out_2=choice(1,4)"]


def answer_lines(capfd, caplog) -> list[str]:
    """The sweep's messages after its closing lines' last ("compare the trials: ..."). After
    an in-process job, Hydra's logging owns the root logger and the console shows them; with
    the population executor, no job ran here and pytest's handler holds them."""
    out = "".join(capfd.readouterr())
    messages = [r.getMessage() for r in caplog.records if r.name == "linesweep.sweep.sweeper"]
    if not any(m.startswith("compare the trials: ") for m in messages):
        messages = [line.split("] ", 1)[-1] for line in out.splitlines() if "][INFO] " in line]
    last = max(i for i, m in enumerate(messages) if m.startswith("compare the trials: "))
    return messages[last + 1 :]


@pytest.mark.parametrize(
    "executor",
    [[], ["hydra.sweeper.executor=population", "hydra/sweeper/pruner=none"]],
    ids=["in-process", "population"],
)
def test_a_sweep_with_replicates_ends_with_its_answer_on_the_console_and_in_the_yaml(
    sweep_in_process, tmp_path, capfd, caplog, executor
):
    caplog.set_level(logging.INFO)
    sweep_in_process(tmp_path, *GRID, *executor, "replicates=3", "hydra.sweeper.n_trials=2")
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    saved = results["answer"]
    assert saved["ranked"] == 2 and saved["best"]["n"] == 3 and saved["best"]["replicates"] == 3
    assert saved["smallest"] is not None and len(saved["comparisons"]) == 1
    assert saved["tests"] == {"paired t": saved["tested"]}  # a sweep's replicates share seeds
    assert answer_lines(capfd, caplog) == saved["lines"]
    # ... and it is the study's answer, as anyone reading the study computes it again.
    study = load_study(tmp_path)
    again = sweep_answer(study, AnswerSetup(AnswerSettings(), "unused"))
    assert again.lines() == saved["lines"]
    members = {t.number: TrialResult.from_attrs(t.user_attrs) for t in study.trials}
    for number, result in members.items():
        summary = yaml.safe_load((tmp_path / str(number) / "summary.json").read_text())
        assert result.values == [m["values"][0] for m in summary["replicates"]["members"]]
        assert result.seeds == [m["seeds"] for m in summary["replicates"]["members"]]
        assert (result.n_params, result.epochs_run) == (summary["n_params"], summary["epochs_run"])
        assert (result.metric, result.direction, result.epoch_rule) == (
            "val_accuracy", "maximize", "last",
        )  # fmt: skip


def test_a_sweep_without_replicates_says_there_is_no_spread_and_the_command_that_adds_it(
    sweep_in_process, tmp_path, capfd, caplog
):
    caplog.set_level(logging.INFO)
    sweep_in_process(tmp_path, *GRID, "hydra.sweeper.n_trials=2")
    best, smallest, compared = answer_lines(capfd, caplog)
    assert best.startswith("best (by its single value): model.out_2=")
    assert "no spread to judge by" in smallest
    # The command as typed (tests/conftest.py's sweep, hydra.* last), in a study of its own.
    assert smallest.endswith(
        "`python -m linesweep.train -m experiment=smoke plots=none 'model.out_2=choice(1,4)' "
        "hydra/sweeper=linesweep hydra.sweeper.executor=launcher hydra.sweeper.sampler.seed=0 "
        "hydra/sweeper/sampler=grid hydra.sweeper.n_trials=2 "
        "hydra.sweeper.study_name=linesweep_replicates replicates=3`"
    ), smallest
    assert compared.startswith("compared: none of 2 configuration(s) on val_accuracy")


def test_the_rerun_command_keeps_what_was_typed_and_names_a_study_of_its_own():
    command = rerun_command(
        ["hparams_search=channels_lr_grid", "replicates=1", "optimizer.lr=choice(1e-3,1e-2)"],
        ["hydra.sweeper.n_jobs=2", "hydra.sweep.dir=/tmp/s", "hydra.sweeper.study_name=mine"],
        "mine",
    )
    assert command == (
        "python -m linesweep.train -m hparams_search=channels_lr_grid "
        "'optimizer.lr=choice(1e-3,1e-2)' hydra.sweeper.n_jobs=2 "
        "hydra.sweeper.study_name=mine_replicates"
    )


def finished(state, values, out_2, epochs=10, status=None):
    """A trial as a linesweep run leaves it: its result attribute, its state."""
    result = TrialResult(
        metric="val_accuracy", direction="maximize", epoch_rule="last", values=values,
        seeds=[{"model_init": r, "shuffle": 10 + r} for r in range(len(values))],
        n_params=100 * out_2, epochs_run=epochs, success_threshold=0.9,
    )  # fmt: skip
    attrs = {RESULT: result.to_attr(), STATE: status or state.name.lower()}
    finite = [v for v in values if v is not None]
    return create_trial(
        state=state,
        value=sum(finite) / len(finite) if state == TrialState.COMPLETE else None,
        params={"model.out_2": out_2},
        distributions={"model.out_2": CategoricalDistribution([1, 2, 4, 8])},
        user_attrs=attrs,
        intermediate_values={epochs: 0.5} if state == TrialState.PRUNED else {},
    )


def test_pruned_and_diverged_trials_are_left_out_of_the_answer_and_counted():
    study = optuna.create_study(direction="maximize")
    study.add_trial(finished(TrialState.PRUNED, [0.5, 0.52, 0.51], 1, epochs=3))
    study.add_trial(finished(TrialState.FAIL, [None, None, None], 2, status="diverged"))
    study.add_trial(finished(TrialState.COMPLETE, [0.90, 0.91, 0.92], 4))
    study.add_trial(finished(TrialState.COMPLETE, [0.93, 0.95, 0.94], 8))
    a = sweep_answer(study, AnswerSetup(AnswerSettings(), "python -m linesweep.train -m"))
    assert a.left_out == {"pruned": 1, "diverged": 1} and a.ranked == 2
    assert (
        "left out: 1 pruned, 1 diverged (only complete configurations are compared"
        in (a.lines()[2])
    )
    assert "a pruned run's value is from an earlier epoch, not final" in a.lines()[2]


def test_a_diverged_replicate_enters_as_a_missing_value():
    study = optuna.create_study(direction="maximize")
    study.add_trial(finished(TrialState.COMPLETE, [0.90, None, 0.92], 4))
    study.add_trial(finished(TrialState.COMPLETE, [0.93, 0.95, 0.94], 8))
    a = sweep_answer(study, AnswerSetup(AnswerSettings(), "x"))
    (four,) = [e for e in (a.best, *a.compared) if e.configuration.n_params == 400]
    assert four.summary.n == 2 and four.summary.replicates == 3
    assert math.isnan(four.configuration.values[1])


def test_an_app_without_an_answer_block_gets_no_answer():
    study = optuna.create_study()
    assert sweep_answer(study, None) is None


def test_recording_a_result_to_a_storage_that_is_gone_fails_in_one_line():
    link = TrialLink(
        TrialContext(
            storage=without_password("postgresql://u@127.0.0.1:1/x"), study_name="s", number=0
        )
    )
    result = TrialResult("val_accuracy", "maximize", "last", [0.9], [{}], 10, 1, 0.9)
    with pytest.raises(LinesweepError) as failed:
        link.record_result(result)
    assert str(failed.value).startswith("the study's storage failed recording the run's result: ")
    assert "\n" not in str(failed.value)
