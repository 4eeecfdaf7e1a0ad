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
