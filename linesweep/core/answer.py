"""The answer a sweep was run for: the best configuration, the smallest one not distinguishable
from it, and how many were compared, each number with its uncertainty.

    answer(configurations, AnswerSettings()).lines()   # three lines, then the warnings
    answer(configurations, settings).to_dict()          # optimization_results.yaml's `answer:`

One computation for the sweep's end, compare's terminal, the report and the YAML: each shows
`lines()` or reads `to_dict()`, none recomputes. The rules, in order (the lines say each one
where it changes the answer):

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
4. The best: the best mean among the ranked (ties: fewer parameters, then the input's order).
   Chosen by its mean, it is optimistic: the winner of many noisy configurations is partly the
   luckiest.
5. Epochs: a configuration that trained a different number of epochs than the best, or whose
   values were measured at another epoch, is compared not at all. A `Configuration` carries its
   values at one epoch only, so no common epoch can be found honestly.
6. Each remaining ranked configuration is tested against the best (`stats.compare_many`):
   one-sided, "worse than the best" in the objective's direction; the test is `settings.test`.
7. Correction (`holm`): Holm's procedure over every ordered pair (i, j) of the K ranked
   configurations, "i is worse than j": K(K - 1) hypotheses, those not against the best counted
   at p = 1. Not just the K - 1 comparisons with the best: the best was chosen by looking at
   all K, and a one-sided test against the better of two equal configurations says "worse" at
   twice alpha. With p'(i, j) = p(i, best) where j is the best and 1 elsewhere, each p' is a
   valid p-value for its fixed pair, so Holm keeps the chance of any false "worse" at most
   alpha, whatever was chosen. `none` reports raw p-values, and a warning says what that costs.
8. The smallest not distinguishable from the best: the fewest parameters among the best and
   those whose adjusted p >= alpha (ties: the better mean, then the input's order); it may be
   the best itself. "Not distinguishable" is an absence of evidence, not evidence of equality:
   the line always shows the difference and its 95% interval and, with holm, its interval at
   the corrected level (Bonferroni's 1 - 2 alpha / K(K - 1), which holds for every pair at
   once); the worse end of the latter bounds how much worse it could be. A 95% interval that
   excludes 0 beside "not shown worse" is no contradiction: it is one of K(K - 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from linesweep.core import answer_text
from linesweep.core.errors import ConfigError
from linesweep.core.stats import (
    DIRECTIONS,
    PAIRED_FALLBACK,
    TESTS,
    Comparison,
    Summary,
    compare,
    compare_many,
    holm,
    summarize,
)
from linesweep.core.status import Status

CORRECTIONS = ("holm", "none")
FEW_REPLICATES = 3  # below this, a warning: too few to tell configurations apart
COMPLETE = Status.COMPLETE.value


@dataclass(frozen=True)
class AnswerSettings:
    """How the answer tests (the `answer:` block of conf/train.yaml); checked when built."""

    alpha: float = 0.05  # the level of "worse than the best", after correction
    test: str = "auto"  # auto (paired where seeds match, else welch), welch, mannwhitney, paired
    correction: str = "holm"  # holm or none

    def __post_init__(self) -> None:
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ConfigError("answer.alpha", alpha, "a number in (0, 1)", "e.g. answer.alpha=0.05")
        if self.test not in TESTS:
            raise ConfigError("answer.test", self.test, "one of " + ", ".join(TESTS))
        if self.correction not in CORRECTIONS:
            raise ConfigError("answer.correction", self.correction, "one of holm, none")


@dataclass(frozen=True)
class Configuration:
    """One configuration's replicates, as the answer needs them (the caller gathers these)."""

    params: Mapping[str, Any]  # the hyperparameters that make it this configuration
    n_params: int  # trainable parameters: "smallest" means fewest of these
    metric: str  # the objective's metric, e.g. val_accuracy
    direction: str  # maximize or minimize
    values: Sequence[float]  # the metric per replicate; NaN: a diverged replicate
    epoch: int | str  # the epoch the values were measured at, or "best" (each replicate's own)
    epochs: int  # epochs trained
    # Per replicate, for pairing: any value, a dict (summary.json's members[r].seeds) or a list
    # included; None: unknown, so never paired.
    seeds: Sequence[Any] | None = None
    status: str = COMPLETE  # linesweep.core.status.Status, or its value
    success_threshold: float | None = None  # a replicate succeeds reaching it; None: no rate
    label: str | None = None  # how lines name it; None: "key=value, ..." of params

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction={self.direction!r}: one of {', '.join(DIRECTIONS)}")
        if self.seeds is not None and len(self.seeds) != len(self.values):
            raise ValueError(f"{self.name}: {len(self.seeds)} seeds for {len(self.values)} values")

    @property
    def name(self) -> str:
        if self.label is not None:
            return self.label
        shown = (
            f"{k}={answer_text.g(v) if isinstance(v, float) else v}" for k, v in self.params.items()
        )
        return ", ".join(shown) or "(no parameters)"

    @property
    def objective(self) -> str:
        return f"{self.metric} ({self.direction})"


@dataclass(frozen=True)
class Entry:
    """A configuration in the answer: its summary and, unless it is the best, its test."""

    configuration: Configuration
    summary: Summary
    comparison: Comparison | None = None  # against the best; None for the best itself
    p_adjusted: float | None = None  # after the correction (= p_value with correction=none)
    worse: bool | None = None  # adjusted p < alpha; None: not tested
    # The difference's interval at the level the corrected test holds (see `answer`, rule 8):
    # (low, high, confidence); None where it is the 95% one's or was not needed.
    corrected_ci: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        c, s = self.configuration, self.summary
        out: dict[str, Any] = {
            "label": c.name,
            "params": {str(k): _plain(v) for k, v in c.params.items()},
            "n_params": int(c.n_params),
            "n": s.n,
            "replicates": s.replicates,
            "mean": s.mean,
            "std": s.std,
            "ci": _pair(s.ci_low, s.ci_high),
            "ci_method": s.ci_method,
        }
        if s.success_rate is not None:
            out.update(
                success_rate=s.success_rate,
                successes=s.successes,
                success_threshold=c.success_threshold,
                success_ci=_pair(s.success_low, s.success_high),
                success_method=s.success_method,
            )
        if self.comparison is not None:
            k = self.comparison
            out.update(
                test=k.test,
                p_value=k.p_value,
                p_adjusted=self.p_adjusted,
                worse=self.worse,
                difference=k.difference,
                difference_ci=_pair(k.ci_low, k.ci_high),
                difference_ci_method=k.ci_method,
                note=k.note,
            )
            if self.corrected_ci is not None:
                low, high, level = self.corrected_ci
                out.update(difference_ci_corrected=[low, high], corrected_confidence=level)
        return out


@dataclass(frozen=True)
class Answer:
    """The answer, computed once; `lines()` and `to_dict()` show it."""

    settings: AnswerSettings
    metric: str | None  # the objective compared (None: no complete configuration)
    direction: str | None
    best: Entry | None
    smallest: Entry | None  # None without a spread (no replicates), or without a best
    compared: tuple[Entry, ...]  # tested against the best, in the input's order
    not_compared: tuple[tuple[str, str], ...]  # (name, why): complete, but not compared
    left_out: Mapping[str, int]  # status -> configurations that did not complete
    entered: int  # complete configurations judged by the objective compared
    ranked: int  # K: those with a spread, the best chosen among them
    family_size: int  # hypotheses the correction counted (K(K - 1) with holm; else tests)
    warnings: tuple[str, ...]
    command: str | None = None  # the command that made these runs, for the replicates hint

    @property
    def has_spread(self) -> bool:
        return self.ranked > 0

    def lines(self) -> list[str]:
        """Three lines (best, smallest not distinguishable, what was compared), then warnings."""
        return answer_text.lines(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only: for optimization_results.yaml's `answer:` and the report."""
        return {
            "lines": self.lines(),
            "metric": self.metric,
            "direction": self.direction,
            "alpha": self.settings.alpha,
            "test": self.settings.test,
            "correction": self.settings.correction,
            "entered": self.entered,
            "ranked": self.ranked,
            "family_size": self.family_size,
            "best": self.best.to_dict() if self.best else None,
            "smallest": self.smallest.to_dict() if self.smallest else None,
            "smallest_is_best": self.smallest is not None and self.smallest is self.best,
            "compared": len(self.compared),
            "comparisons": [e.to_dict() for e in self.compared],
            "not_compared": [{"label": n, "why": why} for n, why in self.not_compared],
            "left_out": dict(self.left_out),
            "warnings": list(self.warnings),
        }


def answer(
    configurations: Sequence[Configuration],
    settings: AnswerSettings | None = None,
    command: str | None = None,
) -> Answer:
    """Best, smallest not distinguishable from it, and what was compared (rules: see module)."""
    settings = settings or AnswerSettings()
    left_out = Counter(str(c.status) for c in configurations if str(c.status) != COMPLETE)
    complete = [c for c in configurations if str(c.status) == COMPLETE]
    if not complete:
        return Answer(
            settings, None, None, None, None, (), (), dict(left_out), 0, 0, 0, (), command
        )

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
            dict(left_out), len(pool), 0, 0, (), command,
        )  # fmt: skip
    for c, s in pool:
        if s.n < 2:
            not_compared.append((c.name, "with fewer than 2 finite values: no spread to test"))

    # Rule 4: the best mean.
    best_c, best_s = _best_of(ranked, sign)
    best = Entry(best_c, best_s)

    # Rule 5: the same epochs, measured at the same epoch.
    rivals = []
    for c, s in ranked:
        if c is best_c:
            continue
        if c.epochs != best_c.epochs:
            why = f"trained {c.epochs} epochs, the best {best_c.epochs}: no common epoch"
            not_compared.append((c.name, why))
        elif c.epoch != best_c.epoch:
            why = f"measured at epoch {c.epoch}, the best at {best_c.epoch}: no common epoch"
            not_compared.append((c.name, why))
        else:
            rivals.append((c, s))

    # Rules 6 and 7: each rival against the best, corrected for the choice of the best.
    comparisons = compare_many(
        [c.values for c, _ in rivals],
        best_c.values,
        direction,
        settings.test,
        [c.seeds for c, _ in rivals],
        best_c.seeds,
    )
    tested = [i for i, k in enumerate(comparisons) if k.p_value is not None]
    k_ranked = len(ranked)
    if settings.correction == "holm":
        family = k_ranked * (k_ranked - 1)
        adjusted = holm([comparisons[i].p_value for i in tested], family_size=family)
    else:
        family = len(tested)
        adjusted = [comparisons[i].p_value for i in tested]
    p_of = dict(zip(tested, adjusted, strict=True))
    compared = tuple(
        Entry(c, s, k, p_of.get(i), None if i not in p_of else p_of[i] < settings.alpha)
        for i, ((c, s), k) in enumerate(zip(rivals, comparisons, strict=True))
    )

    # Rule 8: the fewest parameters among the best and those not shown worse.
    candidates = [best] + [e for e in compared if e.worse is False]
    order = {id(c): i for i, c in enumerate(configurations)}
    smallest = min(
        candidates,
        key=lambda e: (
            e.configuration.n_params,
            -sign * e.summary.mean,
            order[id(e.configuration)],
        ),
    )
    if smallest is not best and settings.correction == "holm":
        smallest = _with_corrected_interval(
            smallest, best, direction, 1 - 2 * settings.alpha / family
        )
    warnings = _warnings(settings, best, compared, pool, k_ranked, family)
    return Answer(
        settings, metric, direction, best, smallest, compared, tuple(not_compared),
        dict(left_out), len(pool), k_ranked, family, tuple(warnings), command,
    )  # fmt: skip


def _with_corrected_interval(e: Entry, best: Entry, direction: str, level: float) -> Entry:
    """The smallest's difference interval at the level its corrected test holds: two-sided
    1 - 2 alpha / M, Bonferroni's over the M pairs (Holm rejects at least what Bonferroni
    does, so a configuration Holm does not call worse has 0 in this interval). It bounds how
    much worse the configuration could be with the confidence the answer claims, where the
    95% interval, one of M, would understate it."""
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
    compared: tuple[Entry, ...],
    pool: list[tuple[Configuration, Summary]],
    ranked: int,
    family: int,
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
    tests = len([e for e in compared if e.comparison and e.comparison.p_value is not None])
    if tests > 1 and settings.correction == "none":
        out.append(
            f"{tests} comparisons, not corrected (answer.correction=none): truly equal "
            "configurations are called worse by chance, more often than alpha says, and "
            "choosing the best by its mean adds to it; answer.correction=holm corrects for both"
        )
    elif tests > 1:
        out.append(
            f"{tests} comparisons: each p-value is Holm-adjusted over {family:,} ordered pairs "
            f"of the {ranked} ranked configurations, so with few replicates only large "
            "differences are told apart; a raw p-value below alpha alone would be chance"
        )
    fallback = [
        e for e in compared if e.comparison and PAIRED_FALLBACK in (e.comparison.note or "")
    ]
    if fallback:
        out.append(
            f"answer.test=paired, but {len(fallback)} configuration(s) do not share the best's "
            "seeds: Welch's t for them"
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


def _pair(low: float | None, high: float | None) -> list[float] | None:
    return None if low is None or high is None else [low, high]


def _plain(value: Any) -> Any:
    """A parameter's value as YAML's plain types (numpy scalars, enums and the like as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
