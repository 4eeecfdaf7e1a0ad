"""The answer a sweep was run for: the best configuration, the smallest one not distinguishable
from it, and how many were compared, each number with its uncertainty.

    answer(configurations, AnswerSettings()).lines()   # three lines, then the warnings
    answer(configurations, settings).to_dict()          # optimization_results.yaml's `answer:`

One computation for the sweep's end, compare's terminal, the report and the YAML: each shows
`lines()` or reads `to_dict()`, none recomputes. The records (`AnswerSettings`, `Configuration`,
`Entry`, `Answer`) live in answer_model.py and are imported from here; answer_text.py words
them. The rules, in order (the lines say each one where it changes the answer):

1. Only complete configurations enter. A pruned one stopped early, so its values are from an
   earlier epoch than the others' and never enter as if finished; it, and failed, diverged or
   interrupted ones, are left out and counted by status.
2. One objective: the (metric, direction) that most complete configurations share (the first
   seen on a tie). A configuration judged by another objective is never compared: it is named,
   with its objective.
3. Ranked: the configurations with at least 2 finite values (a spread to test). Those with
   fewer are named and not compared. When none has 2, the answer says there is no spread to
   judge by and shows the command that adds it (`replicates=3`); the best is then the best
   single value.
4. Epochs: the K compared are the ranked configurations that trained the number of epochs, and
   were measured at the epoch, that most ranked ones share (the first seen on a tie: a choice
   that looks at no value). The others are compared not at all: a `Configuration` carries its
   values at one epoch only, so no common epoch can be found honestly.
5. The best: the best mean among the K (ties: fewer parameters, then the input's order).
   Chosen by its mean, it is optimistic: the winner of many noisy configurations is partly the
   luckiest.
6. The smallest not distinguishable from the best, by a fixed sequence ordered by size: the K
   in order of parameters, fewest first (ties by name, then the input's order: nothing the
   values say). Configuration i stands for H0_i "i is among the best: its mean is at least
   every other's". It is tested against each of the K - 1 others (one-sided, "i is worse than
   j", by `settings.test`), their K - 1 p-values joined into one (`settings.correction`, rule
   7), and H0_i is rejected, "i is worse than some configuration", where that p < alpha. The
   sequence goes on while H0_i is rejected; the first configuration not rejected is the
   answer. It may be the best itself, and comes after the best only where the best was shown
   worse than another (its mean is the highest, so only pairs left by diverged replicates can
   do that); when every one is rejected, there is no answer, and a warning says so.
7. Why the chance of calling any configuration that is among the best "worse" stays <= alpha:
   - The selection problem: the best was chosen for its high mean, so testing each against
     the best calls truly equal configurations worse far more often than alpha (with 20 equal
     ones, about a quarter of sweeps), and Holm over those K - 1 tests does not help. Here no
     test is against a chosen configuration: H0_i is tested against every other.
   - One step: under H0_i each pairwise null "i is not worse than j" holds, whichever j is
     truly the best, so joining the K - 1 p-values with Bonferroni (K - 1 times the smallest)
     keeps that step's level at alpha whatever their dependence. Simes (the default: the
     smallest over k of (K - 1) p_(k) / k) keeps it where the tests depend positively on each
     other (Sarkar 1998), as these do: all K - 1 share i's replicates. It is never
     above Bonferroni and much below it when i is worse than many others at once, the usual
     case for a small model (its noise, common to all its tests, makes them agree). A
     simulation of equal configurations keeps both at alpha (tests/test_answer.py).
   - The sequence: a true H0 can only be rejected after the first true H0 met in the order has
     been rejected, a chance of at most alpha, so the whole sequence needs no further
     correction (fixed-sequence testing, Maurer et al. 1995).
   - Each pairwise p-value must be valid: the paired t (replicates that share seeds, as a
     sweep's do) and Mann-Whitney U are; Welch's t is an approximation which, with 3
     replicates and spreads ten times apart, exceeds the small levels a step asks for
     (simulated: 0.10 of sweeps of 20 such configurations call one worse, at alpha 0.05).
   `none` joins the p-values by their minimum, uncorrected: a warning says what that costs.
8. "Not distinguishable" is an absence of evidence, not evidence of equality: the smallest's
   line shows its p (the joined one; the raw p against the configuration it was most nearly
   shown worse than), its difference from the best with a 95% interval, and (K > 3, where it
   is the wider) the interval at 1 - 2 alpha / (K - 1): Bonferroni's over the K - 1 others,
   whose worse ends hold for all of them at once with 1 - alpha, the best among them; so "it
   could be up to this much worse" than any, with the confidence the answer claims (though
   not corrected for which configuration the sequence stopped at). Where the 95% interval
   alone excludes 0, a warning says so: more replicates would tell.
9. What to expect (benchmarks/bench_answer_power.py, a simulated channels_lr_grid): the
   sequence stops at the first small configuration whose replicates spread too widely to show
   it worse. With 3 replicates (a t test of 2 degrees of freedom) a 1-channel model at 0.5-0.8
   accuracy, spread 0.1, often stops it: the answer is then a tiny model that "could be up to
   0.9 worse", which is what 3 replicates can tell. 5 or 10 replicates go much further.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from linesweep.core import answer_text
from linesweep.core.answer_model import (
    COMPLETE,
    Answer,
    AnswerSettings,
    Configuration,
    Entry,
)
from linesweep.core.pairwise import CODE_TESTS, UNTESTED, WELCH_FALLBACK, PairwiseTable
from linesweep.core.stats import (
    CONFIDENCE,
    TEST_NAMES,
    Summary,
    combine,
    compare,
    compare_many,
    summarize,
)

__all__ = ["Answer", "AnswerSettings", "Configuration", "Entry", "answer"]  # the model, re-exported

FEW_REPLICATES = 3  # below this, a warning: too few to tell configurations apart


def answer(
    configurations: Sequence[Configuration],
    settings: AnswerSettings | None = None,
    command: str | None = None,
) -> Answer:
    """Best, smallest not distinguishable from it, and what was compared (rules: see module),
    with its lines worded once (answer_text.py)."""
    found = _answer(configurations, settings or AnswerSettings(), command)
    return replace(found, text=tuple(answer_text.lines(found)))


def _answer(
    configurations: Sequence[Configuration], settings: AnswerSettings, command: str | None
) -> Answer:
    left_out = Counter(str(c.status) for c in configurations if str(c.status) != COMPLETE)
    complete = [c for c in configurations if str(c.status) == COMPLETE]
    if not complete:
        return Answer(settings, None, None, None, None, (), (), dict(left_out), 0, 0, (), command)

    # Rule 2: one objective, the one most complete configurations share.
    objectives = Counter((c.metric, c.direction) for c in complete)
    metric, direction = max(objectives, key=objectives.__getitem__)  # first seen on a tie
    sign = 1.0 if direction == "maximize" else -1.0
    not_compared: list[tuple[str, str]] = []
    pool: list[tuple[Configuration, Summary]] = []
    for c in complete:
        if (c.metric, c.direction) != (metric, direction):
            not_compared.append((c.name, f"judged by {c.objective}, not {metric} ({direction})"))
            continue
        pool.append((c, summarize(c.values, direction, c.success_threshold)))

    # Rule 3: a spread to test needs 2 finite values.
    ranked = [(c, s) for c, s in pool if s.n >= 2]
    if not ranked:
        best_c, best_s = _best_of(pool, sign)
        others = [c.name for c, _ in pool if c is not best_c]
        not_compared += [(name, "with one value each: no spread") for name in others]
        return Answer(
            settings, metric, direction, Entry(best_c, best_s), None, (), tuple(not_compared),
            dict(left_out), len(pool), 0, (), command,
        )  # fmt: skip
    for c, s in pool:
        if s.n < 2:
            not_compared.append((c.name, "with fewer than 2 finite values: no spread to test"))

    # Rule 4: the epochs most ranked configurations share.
    epochs = Counter((c.epochs, c.epoch) for c, _ in ranked)
    trained, at = max(epochs, key=epochs.__getitem__)  # first seen on a tie
    family = []
    for c, s in ranked:
        if c.epochs != trained:
            why = f"trained {c.epochs} epochs, the compared ones {trained}: no common epoch"
            not_compared.append((c.name, why))
        elif c.epoch != at:
            why = f"measured at epoch {c.epoch}, the compared ones at {at}: no common epoch"
            not_compared.append((c.name, why))
        else:
            family.append((c, s))

    # Rule 5: the best mean.
    best_c, best_s = _best_of(family, sign)
    b = next(i for i, (c, _) in enumerate(family) if c is best_c)
    against_best = compare_many(
        [c.values for c, _ in family],
        best_c.values,
        direction,
        settings.test,
        [c.seeds for c, _ in family],
        best_c.seeds,
    )

    # Rules 6 and 7: the fixed sequence, fewest parameters first.
    steps, tests = _sequence(family, b, settings, direction)
    entries = [
        Entry(c, s, None if i == b else k)
        for i, ((c, s), k) in enumerate(zip(family, against_best, strict=True))
    ]
    for n, step in enumerate(steps, start=1):
        entries[step.index] = replace(
            entries[step.index],
            step=n,
            p_adjusted=step.p,
            worse=step.worse,
            against=None if step.against is None else family[step.against][0],
            against_p=step.against_p,
            against_test=step.against_test,
        )
    stop = steps[-1].index if steps and not steps[-1].worse else None
    level = 1 - 2 * settings.alpha / max(len(family) - 1, 1)
    if stop is not None and stop != b and level > CONFIDENCE and settings.correction != "none":
        entries[stop] = _with_corrected_interval(entries[stop], entries[b], direction, level)
    best = entries[b]
    compared = tuple(e for i, e in enumerate(entries) if i != b)
    smallest = None if stop is None else entries[stop]
    warnings = _warnings(settings, best, smallest, steps, pool, len(family), tests)
    return Answer(
        settings, metric, direction, best, smallest, compared, tuple(not_compared),
        dict(left_out), len(pool), len(family), tuple(warnings), command, tests,
    )  # fmt: skip


class Step(NamedTuple):
    """One step of the sequence (rule 6)."""

    index: int  # the configuration tested, in the family's order
    p: float  # its K - 1 p-values joined
    worse: bool  # p < alpha: rejected, the sequence goes on
    against: int | None  # the other its smallest raw p was against (None: none tested)
    against_p: float | None
    against_test: str | None


def _sequence(
    family: list[tuple[Configuration, Summary]], b: int, settings: AnswerSettings, direction: str
) -> tuple[list[Step], dict[str, int]]:
    """Rule 6: the steps, in order, and how many pairs each test tested."""
    table = PairwiseTable(
        [c.values for c, _ in family], [c.seeds for c, _ in family], direction, settings.test
    )
    order = sorted(range(len(family)), key=lambda i: (family[i][0].n_params, family[i][0].name, i))
    steps: list[Step] = []
    codes: Counter[int] = Counter()
    start, chunk = 0, 1
    while start < len(order) and (not steps or steps[-1].worse):
        # The next rows tested together (doubling: at most twice the rows the sequence needs).
        block = order[start : start + chunk]
        ps, useds = table.rows(block)  # (len(block), K) each; p[i] = 1
        for i, p, used in zip(block, ps, useds, strict=True):
            others = np.arange(len(family)) != i
            joined = combine(p[others], settings.correction)
            tested = others & (used != UNTESTED)
            codes.update(used[others].tolist())
            if tested.any():  # ties to the best, so the line reads "against the best"
                low = p[tested].min()
                j = b if tested[b] and p[b] == low else int(np.flatnonzero(tested & (p == low))[0])
                step = Step(i, joined, joined < settings.alpha, j, float(p[j]), CODE_TESTS[used[j]])
            else:
                step = Step(i, joined, joined < settings.alpha, None, None, None)
            steps.append(step)
            if not step.worse:
                break
        start, chunk = start + len(block), chunk * 2
    tests: dict[str, int] = {}
    for code, count in sorted(codes.items()):
        name = TEST_NAMES[CODE_TESTS[code]]
        name += " (paired asked for)" if code == WELCH_FALLBACK else ""
        tests[name] = tests.get(name, 0) + count
    return steps, tests


def _with_corrected_interval(e: Entry, best: Entry, direction: str, level: float) -> Entry:
    """The smallest's difference from the best at 1 - 2 alpha / (K - 1): each worse end fails
    with alpha / (K - 1), so over the K - 1 others Bonferroni's worse ends hold together with
    1 - alpha, the best's among them (rule 8)."""
    assert e.comparison is not None
    c, b = e.configuration, best.configuration
    k = compare(c.values, b.values, direction, e.comparison.test, c.seeds, b.seeds, level)
    return replace(e, corrected_ci=(k.ci_low, k.ci_high, level))


def _best_of(
    among: list[tuple[Configuration, Summary]], sign: float
) -> tuple[Configuration, Summary]:
    """The best mean (None: last); then fewer parameters; then the input's order."""

    def key(item: tuple[int, tuple[Configuration, Summary]]) -> tuple[float, int, int]:
        i, (c, s) = item
        return (-sign * s.mean if s.mean is not None else float("inf"), c.n_params, i)

    return min(enumerate(among), key=key)[1]


def _warnings(
    settings: AnswerSettings,
    best: Entry,
    smallest: Entry | None,
    steps: list[Step],
    pool: list[tuple[Configuration, Summary]],
    k: int,
    tests: Mapping[str, int],
) -> list[str]:
    out = []
    few = [c for c, s in pool if s.n < FEW_REPLICATES]
    if few:
        among = " (the best among them)" if best.summary.n < FEW_REPLICATES else ""
        out.append(
            f"{len(few)} of {len(pool)} configurations have fewer than {FEW_REPLICATES} finite "
            f"replicate values{among}: too few to tell configurations apart; run replicates=3 "
            "or more"
        )
    if k > 2 and settings.correction == "none":
        out.append(
            f"each step's {k - 1} tests are not corrected (answer.correction=none): a "
            "configuration among the best is called worse than some other by chance, far "
            "more often than alpha says; answer.correction=simes or bonferroni keeps it at alpha"
        )
    d = smallest.comparison if smallest is not None else None
    if smallest is not None and d is not None and d.ci_low is not None and d.ci_high is not None:
        maximize = best.configuration.direction == "maximize"
        if (d.ci_high < 0) if maximize else (d.ci_low > 0):
            out.append(
                f"{smallest.configuration.name} is worse than the best by its 95% interval "
                f"alone ([{d.ci_low:+.4g}, {d.ci_high:+.4g}]); it is not called worse because "
                f"each step joins its {k - 1} tests: more replicates would tell"
            )
    if smallest is None and steps:
        out.append(
            "every configuration was shown worse than another, which only pairs left by "
            "diverged replicates can do: no smallest configuration to name"
        )
    fallback = sum(n for name, n in tests.items() if name.endswith("(paired asked for)"))
    if fallback:
        out.append(
            f"answer.test=paired, but {fallback} pair(s) of configurations do not share seeds: "
            "Welch's t for them"
        )
    diverged = [c for c, s in pool if s.diverged]
    if diverged:
        out.append(
            f"{len(diverged)} configuration(s) have diverged replicates, left out of their means "
            "(counted as failures in their success rates): those means are optimistic"
        )
    if best.configuration.epoch == "best":
        out.append(
            "the values are each replicate's best epoch (objective.epoch=best): every mean is "
            "optimistic, the best's most"
        )
    return out
