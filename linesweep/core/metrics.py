"""What a run is judged by: per-epoch metrics, their directions, the objective a sweeper sees."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# Each metric has one sensible direction, so a config names metrics only and cannot contradict it.
METRIC_DIRECTIONS = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "train_loss": "minimize",
    "train_cost": "minimize",
    "n_params": "minimize",
}
# Metrics that cannot leave a range: an interval shown for them is cut to it (a t interval on 3
# replicates of accuracies near 1 reaches past 1), and a difference between two of them to
# the range's width.
METRIC_RANGES = {"val_accuracy": (0.0, 1.0)}


@dataclass(frozen=True)
class EpochMetrics:
    """One row of metrics.csv."""

    epoch: int  # 1-based
    train_cost: float  # the notebook's "cost": the sum of the batch losses of the epoch
    train_loss: float  # the mean batch loss of the epoch
    val_loss: float
    val_accuracy: float
    epoch_s: float
    elapsed_s: float

    def as_row(self) -> dict[str, float]:
        return asdict(self)


# A mean cross-entropy this large means logits a million apart: the weights exploded, even
# while every number is still finite (an uninformed two-class model's loss is ln 2 = 0.69).
EXPLODED_LOSS = 1e6


def divergence(row: EpochMetrics) -> str | None:
    """Why an epoch's numbers say the run diverged (a loss NaN, infinite or exploded), or None.

    The one check for every run, whoever trains it: a run alone, a replicate, a population's
    member (they diverge at the same epoch, with the same verdict).
    """
    for name in ("train_loss", "val_loss"):
        value = getattr(row, name)
        if not math.isfinite(value):
            return f"loss became {value} at epoch {row.epoch}"
        if value > EXPLODED_LOSS:
            return (
                f"loss became {value:.3g} at epoch {row.epoch} (above {EXPLODED_LOSS:g}: exploded)"
            )
    return None


def directions(metrics: Sequence[str]) -> list[str]:
    """The optimisation direction of each metric, in order."""
    return [METRIC_DIRECTIONS[m] for m in metrics]


def best_epoch(history: Sequence[EpochMetrics], metric: str) -> EpochMetrics:
    """The epoch with the best value of `metric` (the earliest one on ties)."""
    sign = 1.0 if METRIC_DIRECTIONS[metric] == "maximize" else -1.0

    def score(row: EpochMetrics) -> float:
        value = getattr(row, metric)
        return sign * value if math.isfinite(value) else -math.inf

    return max(history, key=score)


def objective_values(
    history: Sequence[EpochMetrics], n_params: int, metrics: Sequence[str], epoch: str
) -> tuple[float, ...]:
    """Values of `metrics` at the last epoch, or each at its own best epoch."""
    values = []
    for metric in metrics:
        if metric == "n_params":
            values.append(float(n_params))
            continue
        row = history[-1] if epoch == "last" else best_epoch(history, metric)
        values.append(float(getattr(row, metric)))
    return tuple(values)


def pareto_ranks(points: Sequence[Sequence[float]], metrics: Sequence[str]) -> list[int]:
    """Each point's non-dominated front (1: the Pareto set), each metric in its own direction."""
    import numpy as np  # only multi-objective comparisons need it

    if not points:
        return []
    signs = np.array([1.0 if METRIC_DIRECTIONS[m] == "maximize" else -1.0 for m in metrics])
    scores = np.asarray(points, dtype=float) * signs  # (n, m): higher is better everywhere
    at_least = (scores[:, None, :] >= scores[None, :, :]).all(axis=2)  # (n, n)
    better = (scores[:, None, :] > scores[None, :, :]).any(axis=2)
    dominates = at_least & better  # [i, j]: i dominates j
    beaten_by = dominates.sum(axis=0)  # how many points dominate each point
    ranks = np.zeros(len(points), dtype=int)
    front, rank = np.flatnonzero(beaten_by == 0), 1
    while front.size:
        ranks[front] = rank
        beaten_by = beaten_by - dominates[front].sum(axis=0)
        beaten_by[ranks > 0] = -1  # placed already
        front, rank = np.flatnonzero(beaten_by == 0), rank + 1
    return ranks.tolist()


def succeeded(value: float, metric: str, threshold: float) -> bool:
    """Whether one replicate's value of `metric` reaches `threshold` (NaN, a diverged one: no)."""
    if not math.isfinite(value):
        return False
    return value >= threshold if METRIC_DIRECTIONS[metric] == "maximize" else value <= threshold


def spread(values: Sequence[float], metric: str, threshold: float) -> dict[str, float]:
    """The replicates' values of one metric summed up: count, mean, std, median, min, max, and
    the success rate (the share of all replicates that reach `threshold`).

    A diverged replicate (NaN) has no value: it is left out of the moments and counted as a
    failure in the success rate. std is the sample standard deviation (0 for one value).
    """
    finite = sorted(v for v in values if math.isfinite(v))
    n = len(finite)
    mean = sum(finite) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else 0.0 * mean
    median = (finite[(n - 1) // 2] + finite[n // 2]) / 2 if n else math.nan
    return {
        "count": n,
        "mean": mean,
        "std": std,
        "median": median,
        "min": finite[0] if n else math.nan,
        "max": finite[-1] if n else math.nan,
        "success_rate": sum(succeeded(v, metric, threshold) for v in values) / len(values),
    }


def population_objective(
    per_replicate: Sequence[Sequence[float]],
    metrics: Sequence[str],
    statistic: str,
    threshold: float,
) -> tuple[float, ...]:
    """What a sweeper sees of a population: `statistic` of each metric over the replicates.

    `per_replicate[r]` holds replicate r's objective values, in `metrics` order. success_rate
    is the first metric's share of replicates reaching `threshold`; the other metrics (n_params
    in a Pareto search) then report their mean.
    """
    values = []
    for i, metric in enumerate(metrics):
        column = [row[i] for row in per_replicate]
        stats = spread(column, metric, threshold)
        key = statistic if statistic != "success_rate" or i == 0 else "mean"
        values.append(float(stats[key]))
    return tuple(values)
