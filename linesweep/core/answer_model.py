"""What the answer is made of: its settings, the configurations it judges, and the answer
itself (`Answer`: the best, the smallest not distinguishable from it, what was compared).

Plain records, no computation: `linesweep.core.answer` computes an `Answer` and
`linesweep.core.answer_text` words it, both from these types, so that neither imports the
other's module for them. `Answer.lines()` are the words `answer` stored in it; `to_dict()` the
same answer as plain types, for optimization_results.yaml's `answer:` and the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from linesweep.core.errors import ConfigError
from linesweep.core.stats import CORRECTIONS, DIRECTIONS, TESTS, Comparison, Summary
from linesweep.core.status import Status

COMPLETE = Status.COMPLETE.value


def g(x: float | None) -> str:
    """4 significant digits; n/a for a number that does not exist."""
    return "n/a" if x is None else f"{x:.4g}"


@dataclass(frozen=True)
class AnswerSettings:
    """How the answer tests (the `answer:` block of conf/train.yaml); checked when built."""

    alpha: float = 0.05  # the chance of calling any configuration among the best "worse"
    test: str = "auto"  # auto (paired where seeds match, else welch), welch, mannwhitney, paired
    correction: str = "simes"  # how a step joins its K - 1 tests: simes, bonferroni or none

    def __post_init__(self) -> None:
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ConfigError("answer.alpha", alpha, "a number in (0, 1)", "e.g. answer.alpha=0.05")
        if self.test not in TESTS:
            raise ConfigError("answer.test", self.test, "one of " + ", ".join(TESTS))
        if self.correction not in CORRECTIONS:
            raise ConfigError(
                "answer.correction", self.correction, "one of " + ", ".join(CORRECTIONS)
            )


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
        shown = (f"{k}={g(v) if isinstance(v, float) else v}" for k, v in self.params.items())
        return ", ".join(shown) or "(no parameters)"

    @property
    def objective(self) -> str:
        return f"{self.metric} ({self.direction})"


@dataclass(frozen=True)
class Entry:
    """A configuration in the answer: its summary, its difference from the best, and its step
    in the sequence (rule 6), if the sequence reached it."""

    configuration: Configuration
    summary: Summary
    comparison: Comparison | None = None  # against the best (95%); None for the best itself
    step: int | None = None  # its place in the sequence, 1 = tested first; None: not reached
    p_adjusted: float | None = None  # its K - 1 tests joined (`settings.correction`)
    worse: bool | None = None  # p_adjusted < alpha: worse than some other; None: not reached
    against: Configuration | None = None  # the other its smallest raw p was against
    against_p: float | None = None  # that raw p
    against_test: str | None = None  # and its test: paired, welch or mannwhitney
    # The difference from the best at 1 - 2 alpha / (K - 1) (rule 8): (low, high, confidence);
    # None where it is the 95% one's or was not needed.
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
                p_value=k.p_value,  # against the best, raw
                difference=k.difference,
                difference_ci=_pair(k.ci_low, k.ci_high),
                difference_ci_method=k.ci_method,
                note=k.note,
            )
            if self.corrected_ci is not None:
                low, high, level = self.corrected_ci
                out.update(difference_ci_corrected=[low, high], corrected_confidence=level)
        out.update(step=self.step, p_adjusted=self.p_adjusted, worse=self.worse)
        if self.against is not None:
            out.update(
                against=self.against.name, against_test=self.against_test, against_p=self.against_p
            )
        return out


@dataclass(frozen=True)
class Answer:
    """The answer, computed once; `lines()` and `to_dict()` show it."""

    settings: AnswerSettings
    metric: str | None  # the objective compared (None: no complete configuration)
    direction: str | None
    best: Entry | None
    smallest: Entry | None  # None without a spread, without a best, or if every one was worse
    compared: tuple[Entry, ...]  # the K - 1 others, in the input's order
    not_compared: tuple[tuple[str, str], ...]  # (name, why): complete, but not compared
    left_out: Mapping[str, int]  # status -> configurations that did not complete
    entered: int  # complete configurations judged by the objective compared
    ranked: int  # K: those compared, the best chosen among them
    warnings: tuple[str, ...]
    command: str | None = None  # the command that made these runs, for the replicates hint
    tests: Mapping[str, int] = field(default_factory=dict)  # test name -> pairs it tested
    text: tuple[str, ...] = ()  # its lines, as answer_text words them (`answer` fills it in)

    @property
    def has_spread(self) -> bool:
        return self.ranked > 0

    @property
    def family_size(self) -> int:
        """The tests each step joins: one against each of the K - 1 others."""
        return max(self.ranked - 1, 0)

    @property
    def tested(self) -> int:
        """Steps the sequence took: configurations tested, the last the answer (if any)."""
        return sum(e.step is not None for e in (self.best, *self.compared) if e is not None)

    def lines(self) -> list[str]:
        """Three lines (best, smallest not distinguishable, what was compared), then warnings."""
        return list(self.text)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only: for optimization_results.yaml's `answer:` and the report."""
        return {
            "lines": self.lines(),
            "metric": self.metric,
            "direction": self.direction,
            "alpha": self.settings.alpha,
            "test": self.settings.test,
            "correction": self.settings.correction,
            "procedure": "fixed sequence by size, each step against the K - 1 others",
            "entered": self.entered,
            "ranked": self.ranked,
            "family_size": self.family_size,
            "tested": self.tested,
            "tests": dict(self.tests),
            "best": self.best.to_dict() if self.best else None,
            "smallest": self.smallest.to_dict() if self.smallest else None,
            "smallest_is_best": self.smallest is not None and self.smallest is self.best,
            "compared": len(self.compared),
            "comparisons": [e.to_dict() for e in self.compared],
            "not_compared": [{"label": n, "why": why} for n, why in self.not_compared],
            "left_out": dict(self.left_out),
            "warnings": list(self.warnings),
        }


def _pair(low: float | None, high: float | None) -> list[float] | None:
    return None if low is None or high is None else [low, high]


def _plain(value: Any) -> Any:
    """A parameter's value as YAML's plain types (numpy scalars, enums and the like as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
