"""The answer a sweep ends with (linesweep/core/answer.py): the best configuration, the smallest
one not distinguishable from it (a fixed sequence in order of size), and what was compared, by
the rules its docstring states.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from linesweep.core.answer import Answer, AnswerSettings, Configuration, answer
from linesweep.core.errors import ConfigError
from linesweep.core.stats import compare_many
from linesweep.run.validation import to_train_config
from tests import answer_grid

ALPHA = 0.05


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def config(
    out_2: int,
    values,
    *,
    n_params: int | None = None,
    metric: str = "val_accuracy",
    direction: str = "maximize",
    status: str = "complete",
    epochs: int = 10,
    epoch: int | str | None = None,
    seeds=None,
    **params,
) -> Configuration:
    return Configuration(
        params={"out_2": out_2, **params},
        n_params=n_params if n_params is not None else 100 * out_2,
        metric=metric,
        direction=direction,
        values=list(values),
        epoch=epochs if epoch is None else epoch,
        epochs=epochs,
        seeds=seeds,
        status=status,
        success_threshold=0.9 if metric == "val_accuracy" else None,
    )


def replicates(mean: float, n: int = 5, sd: float = 0.01, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def walk(value):
    """Every leaf of a nested dict/list."""
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    else:
        yield value


# ---------------------------------------------------------------- the answer


def test_the_smallest_configuration_as_good_as_the_best_is_named_with_its_test():
    configs = [
        config(1, replicates(0.70, seed=1)),  # clearly worse, and smallest
        config(2, replicates(0.935, seed=2)),  # about as good as the best
        config(8, replicates(0.94, seed=3)),
    ]
    a = answer(configs)
    assert a.best.configuration is configs[2]
    assert a.smallest.configuration is configs[1]
    steps = {e.configuration.params["out_2"]: (e.step, e.worse) for e in (a.best, *a.compared)}
    assert steps == {1: (1, True), 2: (2, False), 8: (None, None)}  # the sequence stopped at 2
    best, smallest, compared = a.lines()[:3]
    assert best.startswith("best (by its mean, of 3): out_2=8 (800 parameters): val_accuracy 0.9")
    assert "95% CI [" in best and "Student t, n=5" in best and "optimistic" in best
    assert smallest.startswith("smallest not distinguishable from the best: out_2=2 (200 param")
    assert "step 2 in order of size, not shown worse than the 2 others: Simes p=" in smallest
    assert "(smallest raw p " in smallest and "Welch's t against out_2=8)" in smallest
    assert "difference from the best -0.0" in smallest and "Welch's t 95% CI [" in smallest
    assert "corrected level" not in smallest  # 3: the 95% interval is Bonferroni's over 2
    assert "could be up to" in smallest
    assert compared.startswith("compared 3 configuration(s) on val_accuracy (maximize) at epoch")
    assert (
        "in order of size (fewest parameters first): each tested against the 2 others" in compared
    )
    assert "its 2 p-values joined by Simes" in compared and compared.endswith("2 tested")


def test_the_smallest_may_be_the_best_itself():
    a = answer([config(1, replicates(0.70, seed=1)), config(8, replicates(0.94, seed=3))])
    assert a.smallest is a.best
    assert (
        "the best itself: the 1 configuration(s) before it in order of size were each shown "
        "worse than another" in a.lines()[1]
    )
    assert a.to_dict()["smallest_is_best"] is True


def test_not_distinguishable_always_shows_how_much_worse_it_could_be():
    # Two noisy replicates each: nothing can be told apart, and the interval says how little
    # that means: the t interval reaches past what two accuracies can differ by, and is cut
    # to it (1), with a line that more replicates would tell.
    a = answer([config(1, [0.5, 0.9]), config(8, [0.92, 0.95])])
    assert a.smallest.configuration.params["out_2"] == 1
    k = a.smallest.comparison
    line = a.lines()[1]
    assert -k.ci_low > 1 and "could be up to 1 worse" in line
    assert "too few replicates to tell (n=2)" in line
    assert "95% CI [0, 1] (Student t, n=2, cut to [0, 1])" in line  # 0.7 +- 2.5


def test_a_close_call_is_not_called_too_few_replicates():
    a = answer([config(1, [0.93, 0.94, 0.95]), config(8, [0.94, 0.95, 0.96])])
    line = a.lines()[1]
    assert "could be up to" in line and "too few replicates" not in line


def test_the_interval_at_the_corrected_level_holds_for_every_other_at_once():
    configs = [
        config(1, [0.885, 0.895, 0.905, 0.890]),  # raw p 0.02 against the best: not among 3
        config(4, [0.890, 0.900, 0.910, 0.905]),
        config(6, [0.895, 0.905, 0.915, 0.900]),
        config(8, [0.900, 0.910, 0.920, 0.905]),
    ]
    a = answer(configs)
    e = a.smallest
    assert e.configuration is configs[0] and e.comparison.p_value < ALPHA <= e.p_adjusted
    low, high, level = e.corrected_ci
    assert level == pytest.approx(1 - 2 * ALPHA / 3) and low < e.comparison.ci_low and high > 0
    assert "at the corrected level (96.7%: Bonferroni over the 3 others)" in a.lines()[1]
    assert a.lines()[1].endswith(f"could be up to {-low:.4g} worse")


def test_a_difference_the_95_percent_interval_sees_but_the_correction_does_not_is_said():
    configs = [
        config(1, [0.885, 0.895, 0.905, 0.890]),
        config(4, [0.890, 0.900, 0.910, 0.905]),
        config(6, [0.895, 0.905, 0.915, 0.900]),
        config(8, [0.900, 0.910, 0.920, 0.905]),
    ]
    (warning,) = [w for w in answer(configs).lines() if "95% interval alone" in w]
    assert "out_2=1 is worse than the best by its 95% interval alone" in warning
    assert "more replicates" in warning


def test_minimize_picks_the_lowest_loss_and_tests_the_other_way():
    configs = [
        config(1, replicates(0.50, seed=1, sd=0.02), metric="val_loss", direction="minimize"),
        config(2, replicates(0.21, seed=2, sd=0.02), metric="val_loss", direction="minimize"),
        config(8, replicates(0.20, seed=3, sd=0.02), metric="val_loss", direction="minimize"),
    ]
    a = answer(configs)
    assert a.best.configuration is configs[2] and a.smallest.configuration is configs[1]
    assert [e.worse for e in a.compared] == [True, False]
    assert a.compared[0].comparison.difference > 0  # a higher loss is worse


def test_the_best_is_chosen_by_its_mean_and_ties_go_to_fewer_parameters():
    same = [0.90, 0.92, 0.94]
    a = answer([config(8, same), config(4, same), config(2, [0.80, 0.82, 0.84])])
    assert a.best.configuration.params["out_2"] == 4  # equal means: fewer parameters


def test_equally_small_configurations_are_tested_in_the_order_of_their_names_not_their_means():
    configs = [
        config(3, [0.93, 0.935, 0.94], n_params=200, lr=0.01),
        config(2, [0.70, 0.71, 0.72], n_params=200, lr=0.01),  # "out_2=2, ..." comes first
        config(8, [0.93, 0.94, 0.95], n_params=800, lr=0.01),
    ]
    a = answer(configs)
    order = sorted((e.step, e.configuration.params["out_2"]) for e in a.compared if e.step)
    assert order == [(1, 2), (2, 3)] and a.smallest.configuration is configs[0]


def test_the_sequence_stops_at_the_first_configuration_not_shown_worse():
    configs = [
        config(1, replicates(0.60, seed=1)),
        config(2, replicates(0.70, seed=2)),
        config(3, replicates(0.93, seed=3, sd=0.05)),  # noisy: not shown worse
        config(4, replicates(0.80, seed=4)),  # clearly worse, but after the stop: untested
        config(8, replicates(0.94, seed=5)),
    ]
    a = answer(configs)
    by_out_2 = {e.configuration.params["out_2"]: e for e in (a.best, *a.compared)}
    assert [(by_out_2[o].step, by_out_2[o].worse) for o in (1, 2, 3, 4, 8)] == [
        (1, True), (2, True), (3, False), (None, None), (None, None),
    ]  # fmt: skip
    assert a.smallest is by_out_2[3] and a.tested == 3
    assert by_out_2[1].against is configs[4] and by_out_2[1].against_test == "welch"
    assert a.to_dict()["comparisons"][3]["step"] is None  # out_2=4: never tested


def test_every_configuration_shown_worse_than_another_leaves_no_smallest():
    """Diverged replicates can leave each pair different seeds to compare: A is worse than C on
    the seeds they share, C than B, B than A. No H0 survives, so there is no answer to name."""
    nan = math.nan
    seeds = list(range(6))
    a = answer(
        [
            config(1, [0.9, 0.9, 0.1, 0.1, nan, nan], seeds=seeds),
            config(2, [0.8, 0.8, nan, nan, 0.9, 0.9], seeds=seeds),
            config(3, [nan, nan, 0.2, 0.2, 0.8, 0.8], seeds=seeds),
        ]
    )
    assert a.smallest is None and a.tested == 3
    assert all(e.worse for e in (a.best, *a.compared))
    assert a.lines()[1].endswith("none: every configuration was shown worse than another")
    assert any("every configuration was shown worse than another" in w for w in a.warnings)


def test_paired_when_the_replicates_share_seeds():
    seeds = [11, 12, 13, 14]
    configs = [
        config(2, [0.90, 0.91, 0.93, 0.92], seeds=seeds),
        config(8, [0.92, 0.93, 0.95, 0.94], seeds=seeds),
    ]
    a = answer(configs)
    assert a.compared[0].comparison.test == "paired" and a.compared[0].against_test == "paired"
    assert "paired t x2" in a.lines()[2]  # two steps, one pair each


def test_seeds_as_summary_json_holds_them_pair():
    seeds = [{"model_init": 10 + r, "shuffle": 20 + r} for r in range(3)]
    configs = [
        config(2, [0.90, 0.91, 0.93], seeds=seeds),
        config(8, [0.92, 0.93, 0.95], seeds=seeds[::-1]),
    ]
    assert answer(configs).compared[0].comparison.test == "paired"


def test_paired_asked_for_where_seeds_differ_warns():
    configs = [
        config(2, [0.90, 0.91, 0.93], seeds=[1, 2, 3]),
        config(8, [0.92, 0.93, 0.95], seeds=[4, 5, 6]),
    ]
    a = answer(configs, AnswerSettings(test="paired"))
    assert a.compared[0].comparison.test == "welch"
    assert (
        "warning: answer.test=paired, but 1 pair(s) of configurations do not share seeds"
        in "\n".join(a.lines())
    )


# ---------------------------------------------------------------- the rules


def test_pruned_configurations_never_enter_and_are_counted():
    configs = [
        config(1, [0.99, 0.99, 0.99], status="pruned", epochs=3),  # the best value, but unfinished
        config(2, [0.2, 0.3], status="failed"),
        config(4, replicates(0.90, seed=1)),
        config(8, replicates(0.91, seed=2)),
    ]
    a = answer(configs)
    assert a.best.configuration is configs[3]
    assert a.left_out == {"pruned": 1, "failed": 1} and a.ranked == 2
    assert "left out: 1 pruned, 1 failed (only complete configurations are compared" in a.lines()[2]


def test_a_different_objective_is_never_compared_and_is_named():
    configs = [
        config(1, [0.30, 0.31, 0.32], metric="val_loss", direction="minimize"),
        config(4, replicates(0.90, seed=1)),
        config(8, replicates(0.91, seed=2)),
    ]
    a = answer(configs)
    assert (a.metric, a.direction) == ("val_accuracy", "maximize") and len(a.compared) == 1
    assert a.not_compared == (
        ("out_2=1", "judged by val_loss (minimize), not val_accuracy (maximize)"),
    )
    assert (
        "not compared: 1 judged by val_loss (minimize), not val_accuracy (maximize) (out_2=1)"
        in a.lines()[2]
    )


def test_the_epochs_most_configurations_trained_are_compared_the_others_not_at_all():
    configs = [
        config(1, replicates(0.5, seed=1), epochs=20),
        config(4, replicates(0.90, seed=2)),
        config(8, replicates(0.94, seed=3)),
    ]
    a = answer(configs)
    assert a.ranked == 2 and a.best.configuration is configs[2]
    assert a.not_compared == (
        ("out_2=1", "trained 20 epochs, the compared ones 10: no common epoch"),
    )


def test_values_measured_at_another_epoch_are_not_compared():
    configs = [
        config(1, replicates(0.5, seed=1), epoch="best"),
        config(4, replicates(0.90, seed=2)),
        config(8, replicates(0.94, seed=3)),
    ]
    assert "measured at epoch best, the compared ones at 10" in answer(configs).not_compared[0][1]


def test_without_replicates_there_is_no_spread_and_the_command_that_adds_it():
    configs = [config(o, [0.8 + o / 100]) for o in (1, 2, 4)]
    a = answer(configs, command="python -m linesweep.train -m hparams_search=channels_lr")
    best, smallest, compared = a.lines()
    assert a.best.configuration is configs[2] and a.smallest is None and not a.has_spread
    assert best == (
        "best (by its single value): out_2=4 (400 parameters): val_accuracy 0.84, "
        "no interval (none: one value, no spread)"
    )
    assert "no spread to judge by" in smallest
    assert smallest.endswith(
        "`python -m linesweep.train -m hparams_search=channels_lr replicates=3`"
    )
    assert compared.startswith("compared: none of 3 configuration(s) on val_accuracy (maximize)")
    assert "`replicates=3`" in answer(configs).lines()[1]  # no command known: the override alone


def test_fewer_than_three_replicates_warns():
    a = answer([config(2, [0.90, 0.91]), config(8, [0.93, 0.94, 0.95])])
    (warning,) = [w for w in a.lines() if "fewer than 3" in w]
    assert warning.startswith("warning: 1 of 2 configurations have fewer than 3 finite replicate")


def test_a_configuration_with_one_finite_value_is_named_not_ranked():
    a = answer([config(2, [0.99, math.nan, math.nan]), config(8, [0.93, 0.94, 0.95])])
    assert a.best.configuration.params["out_2"] == 8 and a.ranked == 1
    assert a.not_compared == (("out_2=2", "with fewer than 2 finite values: no spread to test"),)
    assert a.lines()[1].endswith("the best itself: no other configuration was compared")


def test_uncorrected_steps_warn():
    configs = [config(o, replicates(0.9, seed=o)) for o in (1, 2, 3, 8)]
    a = answer(configs, AnswerSettings(correction="none"))
    first = min((e for e in (a.best, *a.compared) if e.step), key=lambda e: e.step)
    assert a.family_size == 3 and first.p_adjusted == first.against_p  # the smallest raw p
    assert any("not corrected (answer.correction=none)" in line for line in a.lines())


def test_nothing_complete_is_an_answer_that_says_so():
    a = answer([config(1, [0.9, 0.9], status="pruned")])
    assert a.best is None and a.lines()[0].startswith("best: none: no complete configuration")


# ---------------------------------------------------------------- the level: no false "worse"


def equal_sweeps(k: int, n: int, sweeps: int, seed: int, sd=0.02):
    """`sweeps` simulated sweeps of `k` truly equal configurations, `n` replicates each (`sd`:
    one spread, or one per configuration)."""
    rng = np.random.default_rng(seed)
    sd = np.broadcast_to(np.asarray(sd, dtype=float), (k,))[:, None]  # (k, 1)
    for _ in range(sweeps):
        yield 0.9 + rng.standard_normal((k, n)) * sd  # (k, n)


def false_worse_rate(k, n, sweeps, seed, settings=None, sd=0.02, paired=True):
    """The share of sweeps that call any configuration worse (all are among the best)."""
    seeds = list(range(n)) if paired else None
    falsely = 0
    for values in equal_sweeps(k, n, sweeps, seed, sd):
        configs = [config(i + 1, v, n_params=100, seeds=seeds) for i, v in enumerate(values)]
        a = answer(configs, settings)
        falsely += any(e.worse for e in (a.best, *a.compared))
    return falsely / sweeps


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("k", [2, 5, 20])
def test_with_many_equal_configurations_any_false_worse_stays_within_alpha(k, n):
    """1,000 sweeps of k equal configurations (paired, the default's test in a sweep): the
    share calling any of them worse is below alpha's 99.9% binomial bound (0.073). Measured
    with these seeds: k=2: 0.065 (n=3), 0.051 (n=5); k=5: 0.051, 0.050; k=20: 0.051, 0.056
    (benchmarks/bench_answer_power.py --part level: every correction and Welch too)."""
    rate = false_worse_rate(k, n, 1_000, seed=100 + k + n)
    high = sps.binom.ppf(0.999, 1_000, ALPHA) / 1_000  # 0.073
    assert rate <= high, f"k={k}, n={n}: {rate:.3f} of sweeps called an equal one worse"


@pytest.mark.slow
def test_a_precise_configuration_among_noisy_equal_ones_keeps_the_level():
    """The hardest case for Simes' dependence and the paired t: the first tested has a tenth
    of the others' spread, 3 replicates, 20 configurations (measured 0.039; Welch's t, not
    exact here, calls one worse in 0.10: see answer.py's rule 7)."""
    sd = [0.002] + [0.02] * 19
    rate = false_worse_rate(20, 3, 1_000, seed=7, sd=sd)
    assert rate <= sps.binom.ppf(0.999, 1_000, ALPHA) / 1_000


def test_simes_rejects_whatever_bonferroni_rejects_so_it_goes_at_least_as_far():
    """Simes' p is never above Bonferroni's, so its sequence never stops earlier: a level that
    holds for Simes holds for Bonferroni on the same data."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        k = int(rng.integers(2, 12))
        means = rng.uniform(0.6, 0.95, k)
        configs = [
            config(i + 1, replicates(m, n=3, sd=0.03, seed=int(rng.integers(1e9))))
            for i, m in enumerate(means)
        ]
        simes = answer(configs, AnswerSettings(correction="simes"))
        bonferroni = answer(configs, AnswerSettings(correction="bonferroni"))
        assert simes.tested >= bonferroni.tested
        for e, f in zip(simes.compared, bonferroni.compared, strict=True):
            if e.p_adjusted is not None and f.p_adjusted is not None:
                assert e.p_adjusted <= f.p_adjusted + 1e-15


def test_choosing_the_best_first_is_why_each_step_tests_against_every_other():
    """The selection problem: testing each configuration against the best, the one with the
    highest mean, calls truly equal ones worse far more often than alpha, even with Holm over
    those K - 1 tests (measured 0.23 of 400 sweeps with 20)."""
    sweeps, falsely_worse = 200, 0
    for values in equal_sweeps(k=20, n=5, sweeps=sweeps, seed=7):
        best = int(np.argmax(values.mean(axis=1)))
        rest = [v for i, v in enumerate(values) if i != best]
        p = np.sort([k.p_value for k in compare_many(rest, values[best], "maximize", "welch")])
        holm = np.maximum.accumulate(p * (len(p) - np.arange(len(p))))  # Holm's step-down
        falsely_worse += holm.min() < ALPHA
    assert falsely_worse / sweeps > 0.1


@pytest.mark.slow  # 1,000 simulated answers, as the rate tests above
def test_two_runs_of_one_configuration_are_told_apart_at_rate_alpha():
    """The issue's check: one configuration run twice under different seeds, as two
    configurations. The first in the sequence is called worse than the other at rate alpha."""
    rng = np.random.default_rng(11)
    trials = 1_000
    worse = 0
    for _ in range(trials):
        a, b = rng.normal(0.9, 0.02, size=(2, 5))
        result = answer([config(4, a, seeds=[0, 1, 2, 3, 4]), config(4, b, seeds=[5, 6, 7, 8, 9])])
        worse += any(e.worse for e in (result.best, *result.compared))
    low, high = (x / trials for x in sps.binom.interval(0.999, trials, ALPHA))  # 0.032, 0.071
    assert low <= worse / trials <= high


# ---------------------------------------------------------------- power on a simulated grid


def grid_answers(replicates: int, sweeps: int, seed: int, correction: str = "simes"):
    """(truths, answers) of simulated channels_lr_grid sweeps (tests/answer_grid.py)."""
    truths = answer_grid.grid()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(sweeps):
        configs = answer_grid.draw(truths, replicates, rng)
        truth_of = {id(c): t for c, t in zip(configs, truths, strict=True)}
        out.append((answer(configs, AnswerSettings(correction=correction)), truth_of))
    return truths, out


def test_on_the_simulated_grid_the_truly_best_is_never_called_worse():
    truths, answers = grid_answers(replicates=3, sweeps=20, seed=1)
    top = max(t.mean for t in truths)
    for a, truth_of in answers:
        for e in (a.best, *a.compared):
            if truth_of[id(e.configuration)].mean == top:
                assert not e.worse


def test_on_the_simulated_grid_more_replicates_come_closer_to_the_smallest_as_good():
    """128 configurations with experiment=hard's structure. Measured on 200 sweeps each
    (benchmarks/bench_answer_power.py): the answer's true mean is on median 0.44 below the best
    true mean with 3 replicates (the sequence stops within the first few tiny models, whose
    spread of 0.1 over 3 values hides that they are worse), 0.19 with 5, 0.12 with 10."""
    top = max(t.mean for t in answer_grid.grid())
    deficits = {}
    for n in (3, 10):
        _, answers = grid_answers(replicates=n, sweeps=15, seed=n)
        deficits[n] = np.median(
            [top - truth_of[id(a.smallest.configuration)].mean for a, truth_of in answers]
        )
    assert deficits[3] > 0.3 and deficits[10] < deficits[3] - 0.15, deficits


# ---------------------------------------------------------------- one computation, shown


def test_to_dict_holds_the_lines_in_plain_types_without_nan():
    configs = [
        config(1, [0.5, math.nan, 0.6], status="complete"),
        config(2, [0.9, 0.9, 0.9]),  # constant: exact difference
        config(4, [0.95], metric="val_accuracy"),
        config(8, [0.92, 0.93, 0.95]),
        config(3, [0.1], status="pruned"),
    ]
    a = answer(configs)
    data = a.to_dict()
    assert data["lines"] == a.lines()
    text = yaml.safe_dump({"answer": data})
    assert yaml.safe_load(text)["answer"] == data
    json.dumps(data, allow_nan=False)  # raises on NaN or infinity
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in walk(data))


def test_numbers_are_shown_to_four_significant_digits():
    a = answer([config(8, [0.912345678, 0.92345678, 0.93456789])])
    assert "val_accuracy 0.9235, 95% CI [0.8959, 0.9511]" in a.lines()[0]


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": 1.5}, "answer.alpha=1.5 is not allowed: a number in (0, 1)"),
        ({"alpha": 0}, "answer.alpha=0 is not allowed: a number in (0, 1)"),
        (
            {"test": "bogus"},
            "answer.test=bogus is not allowed: one of auto, welch, mannwhitney, paired",
        ),
        (
            {"correction": "holm"},
            "answer.correction=holm is not allowed: one of simes, bonferroni, none",
        ),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ConfigError) as info:
        AnswerSettings(**settings)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_the_answer_block_is_checked_after_composing(compose_config):
    typed = to_train_config(compose_config())
    assert (typed.answer.alpha, typed.answer.test, typed.answer.correction) == (
        0.05,
        "auto",
        "simes",
    )
    with pytest.raises(ConfigError, match=r"^answer\.alpha=1\.5 is not allowed"):
        to_train_config(compose_config("answer.alpha=1.5"))
    with pytest.raises(ConfigError, match=r"^answer\.test=bogus is not allowed"):
        to_train_config(compose_config("answer.test=bogus"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("answer.alpha=1.5", "answer.alpha=1.5 is not allowed: a number in (0, 1)"),
        ("answer.test=bogus", "answer.test=bogus is not allowed: one of auto, welch, mannwhitney"),
    ],
)
def test_a_bad_answer_setting_exits_2_with_one_line(tmp_path, train_in_process, override, message):
    done = train_in_process("experiment=smoke", "plots=none", override, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in done.stderr + done.stdout


# ---------------------------------------------------------------- a real sweep's question


@pytest.mark.slow
def test_one_channel_against_four_on_the_hard_experiment_is_told_apart(tmp_path, train_in_process):
    """out_2=1 against out_2=4 on experiment=hard, 8 replicates each (about 4 s of one core a
    run). Measured on seeds 0-4: paired p 0.0016, 0.0006, 0.010, 0.0012, 0.024 (two
    configurations: each step has one test, nothing to join); seed 1 is used, 40 times below
    alpha."""
    shrink = ["experiment=hard", "seed=1", "replicates=8", "plots=none"]
    configurations = []
    for out_2 in (1, 4):
        folder = tmp_path / f"out_2_{out_2}"
        done = train_in_process(
            *shrink,
            f"model.out_2={out_2}",
            f"hydra.run.dir={folder}",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads((folder / "summary.json").read_text())
        members = summary["replicates"]["members"]
        configurations.append(
            Configuration(
                params={"out_2": out_2},
                n_params=summary["n_params"],
                metric=summary["objective"]["metrics"][0],
                direction=summary["objective"]["directions"][0],
                values=[m["values"][0] for m in members],
                epoch=summary["epochs_run"],
                epochs=summary["epochs_run"],
                seeds=[m["seeds"] for m in members],  # {"model_init": ..., "shuffle": ...}
                status=summary["status"],
            )
        )
    a = answer(configurations)
    assert a.best.configuration.params == {"out_2": 4}
    (one,) = a.compared
    assert one.comparison.test == "paired"  # the same seed list in both runs
    assert one.worse, "\n".join(a.lines())
    assert isinstance(a, Answer) and a.smallest is a.best
