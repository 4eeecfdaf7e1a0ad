"""The statistics behind every interval and every "worse than the best" (linesweep/core/stats.py).

Intervals agree with textbook numbers; two configurations that truly differ are told apart; the
same configuration against itself is called worse at the stated rate, no more, for each test;
degenerate inputs give defined numbers, never NaN and never a scipy warning.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from linesweep.core.pairwise import CODE_TESTS, UNTESTED, PairwiseTable
from linesweep.core.stats import (
    TESTS,
    Comparison,
    Summary,
    combine,
    compare,
    compare_pairs,
    summarize,
)

ALPHA = 0.05
TRIALS = 2_000  # simulated comparisons per test: the rate's 99.9% binomial bounds are +-0.016


@pytest.fixture(autouse=True)
def no_warnings():
    """Any warning (scipy's catastrophic cancellation, numpy's 0/0) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def numbers(result: Summary | Comparison) -> list[float]:
    return [v for v in vars(result).values() if isinstance(v, float)]


def rate_bounds(trials: int = TRIALS, alpha: float = ALPHA) -> tuple[float, float]:
    """The 99.9% central interval of the share of `trials` that fall below alpha by chance."""
    low, high = sps.binom.interval(0.999, trials, alpha)
    return low / trials, high / trials


# ---------------------------------------------------------------- summaries


def test_mean_interval_is_students_t_as_in_the_textbook():
    s = summarize([1, 2, 3, 4, 5])
    # mean 3, s = 1.5811, sem = 0.7071, t(0.975, 4) = 2.7764: 3 +- 1.9632
    assert s.n == 5 and s.mean == 3 and s.std == pytest.approx(1.5811, abs=1e-4)
    assert (s.ci_low, s.ci_high) == pytest.approx((1.0368, 4.9632), abs=1e-4)
    assert s.ci_method == "Student t, 95%"


def test_mean_interval_agrees_with_scipys_one_sample_t_test():
    values = np.random.default_rng(3).normal(0.9, 0.03, size=7)
    expected = sps.ttest_1samp(values, 0.0).confidence_interval(0.95)
    s = summarize(values)
    assert (s.ci_low, s.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-12)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_success_rate_interval_is_wilsons_as_in_newcombe(successes, trials, low, high):
    values = [0.95] * successes + [0.5] * (trials - successes)
    s = summarize(values, "maximize", success_threshold=0.9)
    assert (s.successes, s.success_rate) == (successes, successes / trials)
    assert (s.success_low, s.success_high) == pytest.approx((low, high), abs=5e-5)
    assert s.success_method == "Wilson score, 95%"


def test_success_follows_the_direction():
    losses = summarize([0.1, 0.2, 0.3, 0.4], "minimize", success_threshold=0.25)
    assert losses.successes == 2  # 0.1 and 0.2 are at most 0.25


def test_a_diverged_replicate_leaves_the_mean_and_fails_the_success_rate():
    s = summarize([0.9, math.nan, 0.92], "maximize", success_threshold=0.8)
    assert (s.n, s.replicates, s.diverged) == (2, 3, 1)
    assert s.mean == pytest.approx(0.91) and s.successes == 2 and s.success_rate == 2 / 3


@pytest.mark.parametrize(
    ("values", "method"),
    [([0.9], "none: one value, no spread"), ([math.nan, math.nan], "none: no finite value")],
)
def test_below_two_values_there_is_no_interval_and_it_says_so(values, method):
    s = summarize(values, success_threshold=0.5)
    assert s.ci_low is None and s.ci_high is None and s.std is None
    assert s.ci_method == method
    assert all(math.isfinite(v) for v in numbers(s))


def test_equal_values_give_a_point_interval_not_nan():
    s = summarize([0.9, 0.9, 0.9])  # scipy would warn of catastrophic cancellation here
    assert (s.mean, s.std, s.ci_low, s.ci_high) == pytest.approx((0.9, 0.0, 0.9, 0.9))
    assert "all 3 values equal" in s.ci_method


# ---------------------------------------------------------------- comparisons


@pytest.mark.parametrize("test", ["welch", "mannwhitney", "paired", "auto"])
def test_configurations_that_truly_differ_are_told_apart(test):
    rng = np.random.default_rng(0)
    worse, better = rng.normal(0.70, 0.03, 5), rng.normal(0.90, 0.03, 5)
    seeds = [0, 1, 2, 3, 4]
    k = compare(worse, better, "maximize", test, seeds, seeds)
    assert k.p_value < 0.01  # Mann-Whitney's smallest p for 5 against 5 is 1/252
    assert k.ci_low < -0.2 + 0.05 and k.ci_high < 0 and k.ci_low < k.difference < k.ci_high
    back = compare(better, worse, "maximize", test, seeds, seeds)
    assert back.p_value > 0.99  # the better one is not worse


def test_minimize_turns_the_test_around():
    low_loss, high_loss = [0.10, 0.11, 0.12, 0.10], [0.30, 0.31, 0.29, 0.32]
    assert compare(high_loss, low_loss, "minimize", "welch").p_value < 0.001
    assert compare(low_loss, high_loss, "minimize", "welch").p_value > 0.999


def test_welch_is_scipys_one_sided_ttest_ind():
    x, y = [0.80, 0.85, 0.83, 0.86], [0.88, 0.90, 0.87, 0.93, 0.91]
    k = compare(x, y, "maximize", "welch")
    expected = sps.ttest_ind(x, y, equal_var=False, alternative="less")
    interval = sps.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    assert k.test == "welch" and k.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert (k.ci_low, k.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    assert k.difference == pytest.approx(np.mean(x) - np.mean(y))


def test_auto_pairs_replicates_that_share_seeds_in_any_order():
    x, y = [0.80, 0.86, 0.90], [0.83, 0.88, 0.95]
    k = compare(x, [y[2], y[0], y[1]], "maximize", "auto", ["a", "b", "c"], ["c", "a", "b"])
    expected = sps.ttest_rel(x, y, alternative="less")
    assert k.test == "paired" and k.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert compare(x, y, "maximize", "auto", ["a", "b", "c"], ["a", "b", "d"]).test == "welch"
    assert compare(x, y, "maximize", "auto").test == "welch"  # no seeds: nothing to pair


def test_paired_asked_for_with_different_seeds_falls_back_to_welch_and_says_so():
    k = compare([0.8, 0.9, 0.85], [0.9, 0.95, 0.92], "maximize", "paired", [1, 2, 3], [4, 5, 6])
    assert k.test == "welch" and "seeds differ" in k.note


def test_a_diverged_replicate_drops_its_pair():
    k = compare(
        [0.80, math.nan, 0.85, 0.84],
        [0.9, 0.91, 0.93, 0.92],
        "maximize",
        "paired",
        *[[1, 2, 3, 4]] * 2,
    )
    assert (k.test, k.n_candidate, k.n_reference) == ("paired", 3, 3)


def test_every_value_equal_on_both_sides_has_an_exact_difference():
    same = compare([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "maximize", "welch")
    assert (same.p_value, same.difference, same.ci_low, same.ci_high) == (1.0, 0.0, 0.0, 0.0)
    apart = compare([0.9, 0.9, 0.9], [1.0, 1.0, 1.0], "maximize", "welch")
    assert apart.p_value == 0.0 and apart.ci_low == apart.ci_high == pytest.approx(-0.1)
    assert "exact" in apart.note
    # Mann-Whitney needs no variance: every one of the 20 splits of 6 values is equally likely
    # and the candidate holds the 3 lowest in exactly one.
    assert compare([0.9] * 3, [1.0] * 3, "maximize", "mannwhitney").p_value == pytest.approx(1 / 20)


def test_one_constant_side_is_welchs_t_against_a_known_value():
    """Every replicate at 1.0: Welch's t is then the other side's one-sample t against 1.0."""
    k = compare([0.97, 0.98, 0.99, 0.975], [1.0, 1.0, 1.0], "maximize", "welch")
    expected = sps.ttest_1samp([0.97, 0.98, 0.99, 0.975], 1.0, alternative="less")
    assert k.p_value == pytest.approx(expected.pvalue, rel=1e-9) and k.note is None


def test_constant_paired_differences_are_exact():
    k = compare([0.8, 0.85, 0.9], [0.81, 0.86, 0.91], "maximize", "paired", *[[1, 2, 3]] * 2)
    assert k.p_value == 0.0 and k.ci_low == pytest.approx(-0.01) == k.ci_high


def test_fewer_than_two_values_is_not_tested_and_says_why():
    k = compare([0.9], [0.8, 0.85, 0.9], "maximize", "welch")
    assert k.test == "none" and k.p_value is None and k.ci_low is None
    assert "the candidate has 1 finite value" in k.note
    assert k.difference == pytest.approx(0.9 - 0.85)


def test_mann_whitney_with_ties_is_exact():
    x, y = [0.90, 0.91, 0.91], [0.91, 0.92, 0.93]  # a tie across the two
    k = compare(x, y, "maximize", "mannwhitney")
    exact = sps.permutation_test(
        (x, y),
        lambda a, b: sps.mannwhitneyu(a, b).statistic,
        permutation_type="independent",
        alternative="less",
        n_resamples=np.inf,
    )
    assert k.p_value == pytest.approx(exact.pvalue)


# ---------------------------------------------------------------- false positives


def same_configuration(kind: str, rng: np.random.Generator, paired: bool, n: int = 5):
    """Two samples of one configuration's replicates and their seeds. Paired: the same seeds
    on both sides, so a seed's share of the value is common to both; else different seeds."""
    if kind == "normal":
        seed_effect = rng.normal(0.0, 0.02, size=(2, TRIALS, n))
        if paired:
            seed_effect[1] = seed_effect[0]
        a, b = 0.9 + seed_effect + rng.normal(0.0, 0.01, size=(2, TRIALS, n))
    else:  # accuracies near 1 on 200 validation images: bounded, skewed, often tied
        a, b = rng.binomial(200, 0.985, size=(2, TRIALS, n)) / 200
    seeds_a = [list(range(n))] * TRIALS
    seeds_b = seeds_a if paired else [list(range(n, 2 * n))] * TRIALS
    return a, b, seeds_a, seeds_b


@pytest.mark.parametrize("kind", ["normal", "accuracy"])
@pytest.mark.parametrize(
    ("test", "paired"),
    [("welch", False), ("mannwhitney", False), ("paired", True), ("auto", True), ("auto", False)],
)
def test_the_same_configuration_is_called_worse_at_most_at_rate_alpha(test, paired, kind):
    rng = np.random.default_rng(20 + TESTS.index(test) + 10 * paired)
    a, b, seeds_a, seeds_b = same_configuration(kind, rng, paired)
    results = compare_pairs(a, b, "maximize", test, seeds_a, seeds_b)
    assert {k.test for k in results} == {"paired" if paired else test.replace("auto", "welch")}
    rate = np.mean([k.p_value < ALPHA for k in results])
    low, high = rate_bounds()
    assert rate <= high, f"{test} on {kind}: {rate:.4f} called worse, above {high:.4f}"
    if kind == "normal":  # continuous values: the test also keeps its size (no 0/0 shortcut)
        # Mann-Whitney on 5 against 5 can only reach p = 12/252 = 0.0476 below 0.05.
        assert rate >= low, f"{test} on {kind}: {rate:.4f}, below {low:.4f}: too conservative"


def test_a_one_sided_test_does_not_call_the_better_one_worse():
    rng = np.random.default_rng(5)
    a, b, seeds_a, seeds_b = same_configuration("normal", rng, paired=False)
    results = compare_pairs(a + 0.05, b, "maximize", "welch", seeds_a, seeds_b)
    assert (
        max(k.p_value for k in results) > 0.99
        and np.mean([k.p_value < ALPHA for k in results]) == 0
    )


# ---------------------------------------------------------------- joining a family


def test_bonferroni_is_m_times_the_smallest_capped_at_one():
    assert combine([0.01, 0.04, 0.03, 0.5], "bonferroni") == pytest.approx(0.04)
    assert combine([0.3, 0.9], "bonferroni") == 0.6 and combine([0.6, 0.7], "bonferroni") == 1.0


def test_simes_is_the_smallest_benjamini_hochberg_adjusted_p():
    p = [0.01, 0.04, 0.03, 0.5]  # m * p_(k) / k: 0.04, 0.06, 0.0533, 0.5
    assert combine(p, "simes") == pytest.approx(0.04)
    assert combine(p, "simes") == pytest.approx(sps.false_discovery_control(p).min())
    many_small = [0.02] * 10  # ten tests that agree: Simes sees it, Bonferroni does not
    assert combine(many_small, "simes") == pytest.approx(0.02)
    assert combine(many_small, "bonferroni") == pytest.approx(0.2)


def test_none_is_the_smallest_and_an_empty_family_is_never_rejected():
    assert combine([0.2, 0.01], "none") == 0.01
    assert [combine([], c) for c in ("simes", "bonferroni", "none")] == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="correction='holm'"):
        combine([0.1], "holm")


# ---------------------------------------------------------------- every pair at once


def random_configurations(rng, k: int):
    """k configurations of 2-5 replicates: constant ones, diverged (NaN) ones, tied values,
    seeds shared, other seeds, or none."""
    values, seeds = [], []
    for _ in range(k):
        n = int(rng.integers(2, 6))
        v = rng.normal(0.9, 0.03, n).round(2)
        if rng.random() < 0.2:
            v[:] = 0.9
        if rng.random() < 0.3:
            v[rng.integers(n)] = np.nan
        values.append(list(v))
        kind = rng.random()
        seeds.append(None if kind < 0.2 else list(range(10 * (kind > 0.8), 10 * (kind > 0.8) + n)))
    return values, seeds


@pytest.mark.parametrize("test", TESTS)
def test_the_pairwise_table_gives_compare_pairs_numbers_for_every_pair(test):
    rng = np.random.default_rng(3 + TESTS.index(test))
    for _ in range(5):
        values, seeds = random_configurations(rng, 12)
        table = PairwiseTable(values, seeds, "maximize", test)
        p_all, tests_all = table.rows(range(12))
        for i in range(12):
            others = [j for j in range(12) if j != i]
            expected = compare_pairs(
                [values[i]] * 11, [values[j] for j in others], "maximize", test,
                [seeds[i]] * 11, [seeds[j] for j in others],
            )  # fmt: skip
            p, used = table.row(i)
            assert np.array_equal(p, p_all[i]) and np.array_equal(used, tests_all[i])
            assert p[i] == 1.0 and used[i] == UNTESTED
            for j, k in zip(others, expected, strict=True):
                assert p[j] == pytest.approx(1.0 if k.p_value is None else k.p_value, abs=1e-12)
                assert CODE_TESTS[used[j]] == k.test


def test_the_pairwise_table_tests_the_other_way_to_minimize():
    table = PairwiseTable([[0.5, 0.52, 0.51], [0.2, 0.21, 0.23]], [None, None], "minimize")
    assert table.row(0)[0][1] < 0.01 and table.row(1)[0][0] > 0.99  # higher loss: worse


def test_success_rate_interval_is_scipys_wilson_for_every_count_up_to_40():
    for trials in range(1, 41):
        for successes in range(trials + 1):
            values = [0.95] * successes + [0.5] * (trials - successes)
            s = summarize(values, "maximize", success_threshold=0.9)
            ci = sps.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
            assert (s.success_low, s.success_high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_summing_up_unreplicated_values_leaves_scipy_unloaded():
    """A sweep without replicates needs no t interval and no test: its end does not wait for
    scipy.stats to load (about a second)."""
    script = (
        "import sys; from linesweep.core.stats import summarize; "
        "s = summarize([0.95], 'maximize', success_threshold=0.9); "
        "print(s.success_low, s.success_high, 'scipy.stats' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    low, high, loaded = done.stdout.split()
    assert (float(low), float(high), loaded) == (pytest.approx(0.2065, abs=1e-4), 1.0, "False")
