"""How sure a replicated configuration's numbers are, and whether one is worse than another.

Three pieces, each from scipy.stats rather than by hand (the Wilson interval a closed formula
held to scipy's numbers), so that the sweep's end, compare and the report show one computation:

- `summarize`: one configuration's replicate values -> mean, its 95% Student t interval, n, the
  sample std, and the success rate with its 95% Wilson score interval.
- `compare` (one pair), `compare_many` (many candidates, one reference: the best),
  `compare_pairs` (many independent pairs): is a candidate worse than a reference? A one-sided
  test in the metric's direction (a maximised metric: lower is worse), and the difference of
  means (candidate - reference, in the metric's units) with its two-sided 95% interval. Rows
  of one shape go to scipy in one vectorised call: 1,000 candidates cost about two calls.
- `row_tests`: the same tests as arrays, for many rows at once (`linesweep.core.pairwise`
  tests every pair of K configurations with it).
- `combine`: one p-value for a family of nulls (Bonferroni, Simes, or none).

Never NaN, never a scipy warning: a missing number is None, and each degenerate input has a
defined answer, stated in the result's `note`:

- a diverged replicate (NaN) has no value: it is left out of the moments (as
  `linesweep.core.metrics.spread` does) and counts as a failure in the success rate;
- fewer than 2 values: no interval (`ci_method` says so), and no test (`p_value` None);
- every value equal within each side (a constant sample): scipy's t statistic is 0/0. The
  difference is then known exactly: its interval is the point, and p is 0 when the candidate
  is worse (the limit as the spread goes to 0) and 1 when it is not (no evidence of worse).
  Values equal to within 1e-9 of their magnitude count as equal (scipy warns of catastrophic
  cancellation below ~2e-15, where its variance means nothing anyway). Mann-Whitney U needs no
  variance: scipy's own answer stands (all values equal: p = 1).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

CONFIDENCE = 0.95
DIRECTIONS = ("maximize", "minimize")
TESTS = ("auto", "welch", "mannwhitney", "paired")  # auto: paired where seeds match, else welch
CORRECTIONS = ("simes", "bonferroni", "none")  # how `combine` joins one family's p-values
TEST_NAMES = {
    "welch": "Welch's t",
    "mannwhitney": "Mann-Whitney U",
    "paired": "paired t",
    "none": "no test",
}
T_METHOD = "Student t, 95%"
WILSON_METHOD = "Wilson score, 95%"
PAIRED_FALLBACK = "paired asked for, but the seeds differ: Welch's t"
EQUAL_WITHIN = 1e-9  # relative spread below which a sample counts as constant (see above)
MWU_EXACT_MOST = 9_999  # scipy's permutation test enumerates every split up to this many


def _scipy_stats() -> Any:
    """scipy.stats, loaded on first use: about a second that a run, which checks its answer
    settings but computes no answer, never needs."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Summary:
    """One configuration's replicates summed up; None where a number does not exist."""

    n: int  # finite values (a diverged replicate's NaN is not one)
    replicates: int  # all values given, finite or not
    mean: float | None  # None: no finite value
    std: float | None  # sample standard deviation (ddof=1); None below 2 values
    ci_low: float | None  # the mean's 95% interval; None below 2 values
    ci_high: float | None
    ci_method: str  # "Student t, 95%", or why there is no interval
    successes: int | None  # replicates reaching the threshold; None without a threshold
    success_rate: float | None
    success_low: float | None  # the success rate's 95% Wilson interval
    success_high: float | None
    success_method: str | None

    @property
    def diverged(self) -> int:
        return self.replicates - self.n


def summarize(
    values: Sequence[float], direction: str = "maximize", success_threshold: float | None = None
) -> Summary:
    """A configuration's mean, Student t interval, n, std and Wilson success interval."""
    _check_direction(direction)
    all_values = np.asarray(values, dtype=float).reshape(-1)
    finite = all_values[np.isfinite(all_values)]
    n = int(finite.size)
    mean = float(finite.mean()) if n else None
    std = low = high = None
    if n == 0:
        method = "none: no finite value"
    elif n == 1:
        method = "none: one value, no spread"
    elif _constant(finite):
        std, low, high, method = 0.0, mean, mean, f"{T_METHOD} (all {n} values equal)"
    else:
        std = float(finite.std(ddof=1))
        low, high = (float(x) for x in _t_interval(n - 1, mean, std / math.sqrt(n)))
        method = T_METHOD
    successes = rate = s_low = s_high = s_method = None
    if success_threshold is not None and all_values.size:
        reached = (
            finite >= success_threshold if direction == "maximize" else finite <= success_threshold
        )
        successes = int(reached.sum())
        rate = successes / all_values.size
        s_low, s_high = _wilson(successes, int(all_values.size))
        s_method = WILSON_METHOD
    return Summary(
        n, int(all_values.size), mean, std, low, high, method,
        successes, rate, s_low, s_high, s_method,
    )  # fmt: skip


def _t_interval(df: int, mean: float, sem: float) -> tuple[float, float]:
    low, high = _standard_t_interval(df)
    return mean + sem * low, mean + sem * high


@functools.lru_cache(maxsize=1024)
def _standard_t_interval(df: int) -> tuple[float, float]:
    """scipy's t interval at loc 0, scale 1, shifted and scaled by the caller: the same
    numbers as `t.interval(loc=mean, scale=sem)`, computed once per df, not per configuration."""
    low, high = _scipy_stats().t.interval(CONFIDENCE, df)
    return float(low), float(high)


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson score interval, scipy's `binomtest(...).proportion_ci(method="wilson")`.

    Written out (Newcombe 1998, method 3, as scipy does) because it needs only the normal
    quantile, which the standard library has: a sweep without replicates shows success rates
    but no t interval and no test, and should not wait about a second at its end for
    scipy.stats to load. tests/test_stats.py holds it to scipy's numbers.
    """
    z = statistics.NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    p = successes / trials
    denominator = 2 * (trials + z * z)
    center = (2 * trials * p + z * z) / denominator
    delta = z / denominator * math.sqrt(4 * trials * p * (1 - p) + z * z)
    low = 0.0 if successes == 0 else center - delta
    high = 1.0 if successes == trials else center + delta
    return low, high


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference: is it worse? None where a number does not exist."""

    test: str  # the test used: welch, mannwhitney, paired, or none (untested)
    p_value: float | None  # one-sided: the candidate is worse than the reference
    difference: float | None  # mean(candidate) - mean(reference), in the metric's units
    ci_low: float | None  # the difference's two-sided 95% interval
    ci_high: float | None
    ci_method: str  # which interval, or why there is none
    n_candidate: int  # values (pairs, for the paired test) that entered
    n_reference: int
    note: str | None = None  # a degenerate case or a fallback, in words

    @property
    def test_name(self) -> str:
        return TEST_NAMES[self.test]


def compare(
    candidate: Sequence[float],
    reference: Sequence[float],
    direction: str,
    test: str = "auto",
    candidate_seeds: Sequence[Hashable] | None = None,
    reference_seeds: Sequence[Hashable] | None = None,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Whether `candidate` is worse than `reference`: a one-sided test and the difference."""
    (result,) = compare_many(
        [candidate], reference, direction, test, [candidate_seeds], reference_seeds, confidence
    )
    return result


def compare_many(
    candidates: Sequence[Sequence[float]],
    reference: Sequence[float],
    direction: str,
    test: str = "auto",
    candidate_seeds: Sequence[Sequence[Hashable] | None] | None = None,
    reference_seeds: Sequence[Hashable] | None = None,
    confidence: float = CONFIDENCE,
) -> list[Comparison]:
    """`compare` for many candidates against one reference (the best), batched."""
    return compare_pairs(
        candidates,
        [reference] * len(candidates),
        direction,
        test,
        candidate_seeds,
        [reference_seeds] * len(candidates),
        confidence,
    )


def compare_pairs(
    candidates: Sequence[Sequence[float]],
    references: Sequence[Sequence[float]],
    direction: str,
    test: str = "auto",
    candidate_seeds: Sequence[Sequence[Hashable] | None] | None = None,
    reference_seeds: Sequence[Sequence[Hashable] | None] | None = None,
    confidence: float = CONFIDENCE,
) -> list[Comparison]:
    """`compare` for each (candidate, reference) pair, in one scipy call per test and shape.

    test: welch (Welch's t, `ttest_ind(equal_var=False)`), mannwhitney (Mann-Whitney U, exact
    where scipy can enumerate it, ties included), paired (`ttest_rel` on the replicates that
    share a seed), or auto: paired where the candidate's seeds are the reference's (the same
    seed list, in any order) and at least 2 pairs are finite, Welch otherwise. A paired test
    asked for where the seeds differ falls back to Welch and says so in `note`. NaN values
    (diverged replicates) are dropped, with their pair in the paired test. The interval is the
    t test's (Welch's for Mann-Whitney, which has none in scipy), two-sided at `confidence`
    (95% unless a caller needs another level, e.g. one that holds over a family), from
    scipy's `confidence_interval`.
    """
    _check_direction(direction)
    if test not in TESTS:
        raise ValueError(f"test={test!r}: one of {', '.join(TESTS)}")
    none = [None] * len(candidates)
    results: list[Comparison | None] = list(none)
    # Rows that share a test and a shape go to scipy together: (test, n, m) -> rows.
    batches: dict[tuple[str, int, int], list[tuple[int, np.ndarray, np.ndarray, str | None]]] = {}
    rows = zip(
        candidates, references, candidate_seeds or none, reference_seeds or none, strict=True
    )
    for i, (values, reference, seeds, ref_seeds) in enumerate(rows):
        cand = np.asarray(values, dtype=float).reshape(-1)
        ref = np.asarray(reference, dtype=float).reshape(-1)
        chosen, note = test, None
        pairs = _pairs(cand, ref, seeds, ref_seeds) if test in ("auto", "paired") else None
        if pairs is not None and pairs[0].size < 2 and test == "auto":
            pairs = None  # diverged replicates left fewer than 2 pairs: unpaired can still test
        if test == "auto":
            chosen = "paired" if pairs is not None else "welch"
        elif test == "paired" and pairs is None:
            chosen, note = "welch", PAIRED_FALLBACK
        if chosen == "paired":
            x, y = pairs
        else:
            x, y = cand[np.isfinite(cand)], ref[np.isfinite(ref)]
        if min(x.size, y.size) < 2:
            results[i] = _untested(chosen, x, y)
            continue
        batches.setdefault((chosen, x.size, y.size), []).append((i, x, y, note))
    for (chosen, _, _), batch in batches.items():
        x = np.stack([r[1] for r in batch])  # (rows, n_candidate)
        y = np.stack([r[2] for r in batch])  # (rows, n_reference): a reference, or its pairs
        for (i, *_, note), result in zip(
            batch, _batch(chosen, x, y, direction, confidence), strict=True
        ):
            results[i] = result if note is None else _with_note(result, note)
    return results  # type: ignore[return-value]


def _pairs(
    cand: np.ndarray,
    ref: np.ndarray,
    cand_seeds: Sequence[Hashable] | None,
    ref_seeds: Sequence[Hashable] | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The candidate's and the reference's values of each seed both hold, when both ran the
    same seed list (no seed twice); pairs with a NaN on either side are dropped. None: the
    seeds differ (or are unknown), so the replicates cannot be paired."""
    if cand_seeds is None or ref_seeds is None:
        return None
    if len(cand_seeds) != cand.size or len(ref_seeds) != ref.size:
        raise ValueError("each value needs its seed: seeds and values differ in length")
    cand_keys, ref_keys = (
        [hashable_seed(s) for s in cand_seeds],
        [hashable_seed(s) for s in ref_seeds],
    )
    if len(set(cand_keys)) != len(cand_keys) or set(cand_keys) != set(ref_keys):
        return None
    ref_by_seed = dict(zip(ref_keys, ref, strict=True))
    x = cand
    y = np.array([ref_by_seed[s] for s in cand_keys], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def hashable_seed(seed: Any) -> Hashable:
    """A seed as a key: summary.json's {"model_init": ..., "shuffle": ...} or a list as is."""
    if isinstance(seed, Mapping):
        return tuple(sorted((str(k), hashable_seed(v)) for k, v in seed.items()))
    if isinstance(seed, (list, tuple)):
        return tuple(hashable_seed(v) for v in seed)
    return seed


def _untested(test: str, x: np.ndarray, y: np.ndarray) -> Comparison:
    """Fewer than 2 values (or pairs) on a side: no variance, so no test and no interval."""
    if test == "paired":
        why = f"{x.size} finite pair(s) share a seed, a test needs 2"
    else:
        side, count = ("the candidate", x.size) if x.size < 2 else ("the reference", y.size)
        why = f"{side} has {count} finite value(s), a test needs 2"
    difference = float(x.mean() - y.mean()) if x.size and y.size else None
    return Comparison("none", None, difference, None, None, f"none: {why}", x.size, y.size, why)


def _with_note(result: Comparison, note: str) -> Comparison:
    joined = note if result.note is None else f"{note}; {result.note}"
    return Comparison(**{**result.__dict__, "note": joined})


class RowTests(NamedTuple):
    """One test over rows of equal shape, as arrays: what `Comparison` holds, row by row."""

    p: np.ndarray  # (rows,) one-sided: the candidate is worse
    difference: np.ndarray  # (rows,) mean(candidate) - mean(reference)
    low: np.ndarray | None  # (rows,) the difference's two-sided interval; None: not asked for
    high: np.ndarray | None
    exact: np.ndarray  # (rows,) bool: no spread, so the difference is exact (see the module)


def row_tests(
    test: str, x: np.ndarray, y: np.ndarray, direction: str, confidence: float | None
) -> RowTests:
    """One test (welch, paired or mannwhitney) over rows: x (rows, n) candidates, y (rows, m)
    references. The one implementation of each test: `compare_pairs` and
    `linesweep.core.pairwise` both call it. `confidence` None: no interval (it costs a second
    scipy call)."""
    worse = "less" if direction == "maximize" else "greater"
    difference = x.mean(axis=1) - y.mean(axis=1)  # (rows,)
    # Rows whose t statistic is 0/0: the differences (paired) or both sides (else) are constant.
    exact = _constant_rows(x - y) if test == "paired" else _constant_rows(x) & _constant_rows(y)
    live = ~exact
    p = np.where(_is_worse(difference, direction), 0.0, 1.0)  # exact rows: the limit
    low = high = None
    if confidence is not None:
        low, high = difference.copy(), difference.copy()  # exact rows: the point
    if live.any():
        xs, ys = _shifted(x[live], y[live], test)
        if test == "paired":
            t_test = _scipy_stats().ttest_rel
        else:
            t_test = functools.partial(_scipy_stats().ttest_ind, equal_var=False)
        if confidence is not None:
            ci = t_test(xs, ys, axis=1).confidence_interval(confidence)
            low[live], high[live] = ci.low, ci.high
        if test != "mannwhitney":
            p[live] = t_test(xs, ys, axis=1, alternative=worse).pvalue
    if test == "mannwhitney":  # no variance in U: scipy's answer holds for constant rows too
        p = _mann_whitney(x, y, worse)
    return RowTests(np.clip(p, 0.0, 1.0), difference, low, high, exact)


def _batch(
    test: str, x: np.ndarray, y: np.ndarray, direction: str, confidence: float
) -> list[Comparison]:
    """`row_tests` as one `Comparison` per row."""
    r = row_tests(test, x, y, direction, confidence)
    assert r.low is not None and r.high is not None
    name = "paired t" if test == "paired" else "Welch's t"
    method = f"{name}, {confidence * 100:.6g}%"
    if test == "paired":
        exact_note = "the paired differences do not vary: the difference is exact"
    else:
        exact_note = "every value equal within each side: the difference is exact"
    return [
        Comparison(
            test,
            float(r.p[k]),
            float(r.difference[k]),
            float(r.low[k]),
            float(r.high[k]),
            f"{method} (exact: no spread)" if r.exact[k] else method,
            x.shape[1],
            y.shape[1],
            exact_note if r.exact[k] else None,
        )
        for k in range(len(x))
    ]


def _shifted(x: np.ndarray, y: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y less a common shift per row, which changes neither test nor interval (a
    difference of means) but turns a constant side into exact zeros: scipy warns of
    catastrophic cancellation for any constant sample whose mean is not 0."""
    if test == "paired":
        return x, y  # ttest_rel's variance is the differences', which vary in these rows
    constant_x, constant_y = _constant_rows(x), _constant_rows(y)
    shift = np.where(constant_x, x[:, 0], np.where(constant_y, y[:, 0], 0.0))[:, None]  # (rows, 1)
    xs = np.where(constant_x[:, None], 0.0, x - shift)
    ys = np.where(constant_y[:, None], 0.0, y - shift)
    return xs, ys


def _mann_whitney(x: np.ndarray, y: np.ndarray, worse: str) -> np.ndarray:
    """One-sided Mann-Whitney U p-values, exact wherever scipy can enumerate every split.

    Without ties scipy's "auto" is exact for small samples. With ties (accuracies on a grid
    of 1/N_val_images often tie) its "auto" switches to the normal approximation, which on
    3-5 replicates can report p-values no split of the data reaches (0.023 where the exact
    answer is 0.05); a permutation test over every split is exact there and stays cheap.
    """
    p = np.empty(len(x))
    both = np.concatenate([x, y], axis=1)  # (rows, n + m)
    ordered = np.sort(both, axis=1)
    tied = (np.diff(ordered, axis=1) == 0).any(axis=1)
    splits = math.comb(x.shape[1] + y.shape[1], x.shape[1])
    permute = tied & (splits <= MWU_EXACT_MOST)
    if (~permute).any():
        p[~permute] = (
            _scipy_stats().mannwhitneyu(x[~permute], y[~permute], axis=1, alternative=worse).pvalue
        )
    if permute.any():
        method = _scipy_stats().PermutationMethod(
            n_resamples=MWU_EXACT_MOST
        )  # every split: no sampling
        p[permute] = (
            _scipy_stats()
            .mannwhitneyu(x[permute], y[permute], axis=1, alternative=worse, method=method)
            .pvalue
        )
    return p


def _is_worse(difference: np.ndarray, direction: str) -> np.ndarray:
    return difference < 0 if direction == "maximize" else difference > 0


def _constant(values: np.ndarray) -> bool:
    return bool(_constant_rows(values[None, :])[0])


def _constant_rows(a: np.ndarray) -> np.ndarray:
    """Rows whose values are equal to within EQUAL_WITHIN of their magnitude."""
    spread = a.max(axis=1) - a.min(axis=1)
    scale = np.abs(a).max(axis=1)
    return spread <= EQUAL_WITHIN * scale


def combine(p_values: Sequence[float] | np.ndarray, correction: str) -> float:
    """One p-value for "at least one of these nulls is false", from one p-value for each.

    bonferroni: m * min p (valid whatever the dependence); simes: min over k of m * p_(k) / k
    (Simes 1986; the smallest of Benjamini-Hochberg's adjusted p-values), valid where the tests
    depend positively on each other (Sarkar 1998), as tests that share one side's replicates
    do, and never above Bonferroni's; none: min p, no correction. An empty family is never
    rejected: p = 1.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction={correction!r}: one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float).reshape(-1)
    if p.size == 0:
        return 1.0
    if correction == "bonferroni":
        return float(min(1.0, p.size * p.min()))
    if correction == "simes":  # scipy's false_discovery_control(p).min(), without its checks
        return float(min(1.0, (np.sort(p) * p.size / np.arange(1, p.size + 1)).min()))
    return float(p.min())


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}: one of {', '.join(DIRECTIONS)}")
