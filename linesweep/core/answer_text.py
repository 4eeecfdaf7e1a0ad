"""The answer's words: its three lines, each number to 4 significant digits.

`linesweep.core.answer.answer` calls `lines` once and stores them in the `Answer` it returns
(`Answer.lines()`); nothing here computes, it only says what `answer` found, so every place that
shows the answer shows the same words.
"""

from __future__ import annotations

import math

from linesweep.core.answer_model import Answer, g
from linesweep.core.metrics import METRIC_RANGES
from linesweep.core.stats import TEST_NAMES, Summary
from linesweep.core.status import Status

NAMES_SHOWN = 3  # configurations named per reason in a line; to_dict names them all
WEAK = 0.1  # a bounded metric's difference that could reach past this share of its range


def lines(a: Answer) -> list[str]:
    """Three lines (best, smallest not distinguishable, what was compared), then warnings."""
    return [_best_line(a), _smallest_line(a), _compared_line(a)] + [
        f"warning: {w}" for w in a.warnings
    ]


def _best_line(a: Answer) -> str:
    if a.best is None:
        return f"best: none: no complete configuration to answer with{_left_out_text(a)}"
    c, s = a.best.configuration, a.best.summary
    if not a.has_spread:
        return (
            f"best (by its single value): {c.name} ({c.n_params:,} parameters): "
            f"{c.metric} {g(s.mean)}, no interval ({s.ci_method})"
        )
    how = f"by its mean, of {a.ranked}" if a.ranked > 1 else "the only one ranked"
    mean = _mean_text(s, c.metric)
    line = f"best ({how}): {c.name} ({c.n_params:,} parameters): {c.metric} {mean}"
    if s.success_rate is not None:
        line += (
            f", success rate {g(s.success_rate)} ({s.successes}/{s.replicates} reach "
            f"{g(c.success_threshold)}; Wilson 95% {_interval(s.success_low, s.success_high)})"
        )
    if a.ranked > 1:
        line += "; the winner of many noisy configurations is optimistic"
    return line


def _smallest_line(a: Answer) -> str:
    head = "smallest not distinguishable from the best"
    if a.best is None:
        return f"{head}: none"
    if not a.has_spread:
        add = f"`{a.command} replicates=3`" if a.command else "`replicates=3`"
        return (
            f"{head}: cannot tell: no spread to judge by (no configuration has 2 or more "
            f"replicates); add replicates to the command: {add}"
        )
    if a.smallest is None:
        return f"{head}: none: every configuration was shown worse than another"
    if a.ranked == 1:
        return f"{head}: the best itself: no other configuration was compared"
    if a.smallest is a.best:
        before = a.tested - 1
        if not before:
            return f"{head}: the best itself: it is the smallest compared"
        return (
            f"{head}: the best itself: the {before} configuration(s) before it in order of "
            f"size were each shown worse than another ({_p_kind(a)} p < {g(a.settings.alpha)})"
        )
    e = a.smallest
    assert e.comparison is not None and e.p_adjusted is not None
    c, k = e.configuration, e.comparison
    mean = _mean_text(e.summary, c.metric)
    line = (
        f"{head}: {c.name} ({c.n_params:,} parameters): {c.metric} {mean}; "
        f"step {e.step} in order of size, not shown worse than {_others(a)}: {_p_kind(a)} "
        f"p={g(e.p_adjusted)} >= alpha={g(a.settings.alpha)}"
    )
    if e.against is not None and e.against_test is not None and a.family_size > 1:
        test = TEST_NAMES[e.against_test]
        line += f" (smallest raw p {g(e.against_p)}, {test} against {e.against.name})"
    width = _width(c.metric)
    low, high = _within(k.ci_low, width), _within(k.ci_high, width)
    line += (
        f"; difference from the best {_signed(k.difference)}, {k.test_name} "
        f"95% CI [{_signed(low)}, {_signed(high)}]"
    )
    if e.corrected_ci is not None:
        low, high, level = e.corrected_ci
        low, high = _within(low, width), _within(high, width)
        line += (
            f", [{_signed(low)}, {_signed(high)}] at the corrected level ({_percent(level)}: "
            f"Bonferroni over the {a.family_size:,} others)"
        )
    if low is None or high is None:
        return line + ": not shown worse"
    worst = max(-low if a.direction == "maximize" else high, 0.0)
    line += f": not shown worse, yet it could be up to {g(worst)} worse"
    if width is not None and worst > WEAK * width:
        line += (
            f"; too few replicates to tell (n={e.summary.n}): a difference this large goes "
            "unseen, more replicates narrow it"
        )
    return line


def _compared_line(a: Answer) -> str:
    if a.best is None:
        return f"compared: none{_not_compared_text(a)}"
    c = a.best.configuration
    if not a.has_spread:
        return (
            f"compared: none of {a.entered} configuration(s) on "
            f"{c.objective}: none has 2 or more finite replicate values"
            + _left_out_text(a)
            + _not_compared_text(a)
        )
    at = f"epoch {c.epoch} of {c.epochs}" if c.epoch != "best" else "each replicate's best epoch"
    line = f"compared {a.ranked} configuration(s) on {c.objective} at {at}"
    if a.ranked > 1:
        used = ", ".join(f"{name} x{count:,}" for name, count in a.tests.items())
        others = _others(a)
        line += (
            f", in order of size (fewest parameters first): each tested against {others} "
            f"({used}; one-sided, alpha={g(a.settings.alpha)})"
        )
        if a.family_size > 1:
            line += {
                "simes": f", its {a.family_size:,} p-values joined by Simes",
                "bonferroni": f", its {a.family_size:,} p-values joined by Bonferroni "
                f"({a.family_size:,} x the smallest)",
                "none": f", its {a.family_size:,} p-values not corrected (answer.correction=none)",
            }[a.settings.correction]
        line += (
            f"; a fixed sequence, stopped at the first not shown worse, so no further "
            f"correction: {a.tested} tested"
        )
    return line + _left_out_text(a) + _not_compared_text(a)


def _others(a: Answer) -> str:
    return "the other" if a.family_size == 1 else f"the {a.family_size:,} others"


def _p_kind(a: Answer) -> str:
    return {"simes": "Simes", "bonferroni": "Bonferroni-adjusted", "none": "uncorrected"}[
        a.settings.correction
    ]


def _left_out_text(a: Answer) -> str:
    if not a.left_out:
        return ""
    counts = ", ".join(f"{n} {status}" for status, n in a.left_out.items())
    why = "only complete configurations are compared"
    if Status.PRUNED.value in a.left_out:
        why += ": a pruned run's value is from an earlier epoch, not final"
    return f"; left out: {counts} ({why})"


def _not_compared_text(a: Answer) -> str:
    if not a.not_compared:
        return ""
    by_why: dict[str, list[str]] = {}
    for name, why in a.not_compared:
        by_why.setdefault(why, []).append(name)
    parts = []
    for why, names in by_why.items():
        shown = "; ".join(names[:NAMES_SHOWN])
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        parts.append(f"{len(names)} {why} ({shown}{more})")
    return "; not compared: " + "; ".join(parts)


def _percent(level: float) -> str:
    """95%, 96.7%, 99.921%, 99.99999%: the distance to 100% to 2 significant digits."""
    tail = (1 - level) * 100
    decimals = max(0, 1 - math.floor(math.log10(tail))) if tail > 0 else 0
    return f"{level * 100:.{decimals}f}".rstrip("0").rstrip(".") + "%"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4g}"


def _interval(low: float | None, high: float | None) -> str:
    return f"[{g(low)}, {g(high)}]"


def _mean_text(s: Summary, metric: str) -> str:
    if s.ci_low is None:
        return f"{g(s.mean)} (n={s.n}; {s.ci_method})"
    low, high = s.ci_low, s.ci_high
    bounds = METRIC_RANGES.get(metric)
    cut = ""
    if bounds is not None and (low < bounds[0] or high > bounds[1]):  # type: ignore[operator]
        low, high = max(low, bounds[0]), min(high, bounds[1])  # type: ignore[type-var]
        cut = f", cut to [{g(bounds[0])}, {g(bounds[1])}]"
    return f"{g(s.mean)}, 95% CI {_interval(low, high)} (Student t, n={s.n}{cut})"


def _width(metric: str) -> float | None:
    """How far two values of a bounded metric can differ; None for an unbounded one."""
    bounds = METRIC_RANGES.get(metric)
    return None if bounds is None else bounds[1] - bounds[0]


def _within(x: float | None, width: float | None) -> float | None:
    """A difference cut to what a bounded metric allows (a t interval can reach past it)."""
    if x is None or width is None:
        return x
    return max(-width, min(width, x))
