"""Which hyperparameter matters (linesweep/core/importance.py): Optuna's PED-ANOVA on a study's
trials, a stated reason where there are too few, and the seed noise said in numbers."""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from linesweep.core.importance import MIN_TRIALS, importances
from linesweep.core.trial_link import RESULT, TrialResult

DISTRIBUTIONS = {
    "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.out_1": CategoricalDistribution(list(range(1, 9))),
    "unused": FloatDistribution(0, 1),
}


@pytest.fixture(autouse=True)
def no_warnings():
    """Optuna's warnings (too few trials, equal quantiles) are the module's to handle."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def trial(params, values, state=TrialState.COMPLETE, replicates=None):
    attrs = {}
    if replicates is not None:
        result = TrialResult(
            "val_accuracy", "maximize", "last", list(replicates),
            [{"model_init": r, "shuffle": r} for r in range(len(replicates))], 100, 10, 0.9,
        )  # fmt: skip
        attrs[RESULT] = result.to_attr()
    return create_trial(
        state=state,
        values=values if state == TrialState.COMPLETE else None,
        params=params,
        distributions=DISTRIBUTIONS,
        user_attrs=attrs,
        intermediate_values={1: 0.5} if state == TrialState.PRUNED else {},
    )


def lr_study(n: int, direction="maximize", seed=0, noise=0.01, replicates=None, objectives=1):
    """Accuracy rises with log lr, whatever out_1 and `unused` are; `replicates`: each trial's
    value is the mean of that many draws, told as its result."""
    rng = np.random.default_rng(seed)
    directions = [direction] * objectives
    study = optuna.create_study(directions=directions)
    for _ in range(n):
        params = {
            "optimizer.lr": float(10 ** rng.uniform(-4, -1)),
            "model.out_1": int(rng.integers(1, 9)),
            "unused": float(rng.uniform(0, 1)),
        }
        accuracy = 0.6 + 0.1 * (math.log10(params["optimizer.lr"]) + 4)  # 0.6 to 0.9
        draws = accuracy + rng.normal(0, noise, replicates or 1)
        value = float(draws.mean()) if direction == "maximize" else 1 - float(draws.mean())
        study.add_trial(
            trial(params, [value] * objectives, replicates=draws if replicates else None)
        )
    return study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_one_parameter_that_matters_comes_first(direction):
    found = importances(lr_study(60, direction))
    assert (
        next(iter(found.importances)) == "optimizer.lr" and found.importances["optimizer.lr"] > 0.5
    )
    assert sum(found.importances.values()) == pytest.approx(1.0)
    assert found.reason is None and found.trials == 60
    assert found.evaluator.startswith("PED-ANOVA (Optuna's PedAnovaImportanceEvaluator, top 10%")


def test_a_study_of_several_objectives_is_judged_by_its_first():
    found = importances(lr_study(60, objectives=2))
    assert next(iter(found.importances)) == "optimizer.lr"
    assert found.evaluator.endswith("on the trials' first objective")


def test_a_smaller_study_widens_the_top_to_five_trials():
    found = importances(lr_study(20))
    assert "top 25% of 20 complete trials" in found.evaluator
    assert next(iter(found.importances)) == "optimizer.lr"


def test_too_few_complete_trials_give_a_reason_not_numbers():
    study = lr_study(MIN_TRIALS - 1)
    params = {"optimizer.lr": 1e-3, "model.out_1": 2, "unused": 0.5}
    study.add_trial(trial(params, None, state=TrialState.PRUNED))  # pruned: never enters
    found = importances(study)
    assert found.importances == {} and found.trials == MIN_TRIALS - 1
    assert found.reason == (
        "9 complete trial(s): PED-ANOVA compares the best 5 with all, so it needs at least 10"
    )


def test_without_replicates_the_caveat_says_the_seed_noise_is_unknown():
    found = importances(lr_study(30))
    assert found.noise is None and "unknown here (no trial has 2 or more replicates)" in (
        found.caveat
    )


def test_with_replicates_the_caveat_weighs_the_seed_noise_against_the_spread():
    quiet = importances(lr_study(30, replicates=3, noise=0.005))
    noise = statistics.median(
        statistics.stdev(t.user_attrs[RESULT]["values"]) / math.sqrt(3)
        for t in lr_study(30, replicates=3, noise=0.005).trials
    )
    assert quiet.noise == pytest.approx(noise) and quiet.spread > 10 * quiet.noise
    assert "in a mean of 3 replicates" in quiet.caveat
    assert quiet.caveat.endswith("the ranking reflects the parameters more than the seeds")
    loud = importances(lr_study(30, replicates=3, noise=0.3))
    assert loud.caveat.endswith("the best trials are partly chosen by luck, and so are these")
    assert loud.to_dict()["caveat"] == loud.caveat  # plain data for the report
