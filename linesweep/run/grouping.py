"""Which runs may train as one population, and how a sweep's trials are split into populations.

Members of a population share one step: the layer geometry (kernels, strides, paddings,
dilations), the data settings, the trainer and the optimizer's kind. What a member may have of
its own: its seed (so its initial weights, shuffling, and data split), its optimizer's
hyperparameters (the update keeps a rule per member), its channel counts (padded to the widest:
`linesweep.run.widths`), its replicates, and everything that only shapes its record (objective,
replicate statistic, plots, loggers). `population_key` says it; `plan_populations` splits a
sweep's waiting trials into populations whose padding costs less than training them apart.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TypeVar

from linesweep.run.config import TrainConfig
from linesweep.run.shapes import plan_cnn
from linesweep.run.step import Unsupported, UpdateRule

T = TypeVar("T")
TRAINING = ("data", "model", "trainer", "optimizer")  # the sections that decide the training
OWN = {"model": ("out_1", "out_2")}  # within them, what a member may have of its own


def population_key(cfg: TrainConfig) -> str | None:
    """What runs must share to train together; None: it trains alone (autograd's optimizer)."""
    try:
        UpdateRule.of_config(cfg.optimizer)
    except Unsupported:
        return None
    plain = {section: asdict(getattr(cfg, section)) for section in TRAINING}
    for section, keys in OWN.items():
        for key in keys:
            plain[section].pop(key)
    plain["optimizer"] = {"_target_": cfg.optimizer._target_}  # one kind of update
    return json.dumps(plain, sort_keys=True, default=str)


def group_runs(runs: Sequence[T], key: Callable[[T], TrainConfig]) -> list[list[T]]:
    """`runs` in groups that train as one population each, in the order they came."""
    groups: dict[Hashable, list[T]] = {}
    for i, run in enumerate(runs):
        shared = population_key(key(run))
        groups.setdefault(shared if shared is not None else ("alone", i), []).append(run)
    return list(groups.values())


# ---------------------------------------------------------------- a sweep's populations


@dataclass(frozen=True)
class Planned:
    """One population a sweep's process trains: the trials' places in the list it was given."""

    trials: list[int]
    note: str  # how it was formed, for the log


# What a population costs, in seconds on one core: a fixed start (its process, data and
# records), a fixed part of every step (Python, kernel launches), and per member what its
# padded layers compute, in members of the notebook's model (`member_cost`). Measured by
# `python benchmarks/bench_grouping.py` (benchmarks/README.md, Populations).
POPULATION_START_S = 1.0
STEP_S = 400e-6
NOTEBOOK_MEMBER_STEP_S = 11e-6


def member_cost(cfg: TrainConfig, out_1: int, out_2: int) -> float:
    """A member's share of a step at channel counts (out_1, out_2), in notebook-model members:
    the multiply-adds of its layers per image, forward (backward is about twice as many)."""
    return _macs(cfg, out_1, out_2) / _macs(cfg, 2, 1)


def _macs(cfg: TrainConfig, out_1: int, out_2: int) -> float:
    plan = plan_cnn(replace(cfg.model, out_1=out_1, out_2=out_2), cfg.data.image_size)
    total = 0.0
    for layer in plan.layers:
        if layer.kind == "Conv2d":
            total += layer.params * (layer.output_shape[1] * layer.output_shape[2])
        elif layer.kind == "Linear":
            total += layer.params
        else:  # element-wise layers read and write every value: count them once
            total += float(_size(layer.output_shape))
    return total


def _size(shape: Sequence[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def plan_populations(
    configs: Sequence[TrainConfig | None], most: int, processes: int = 1
) -> list[Planned]:
    """Split waiting trials into populations of at most `most` trials, to run on `processes`
    processes at once; a trial that trains alone (None, or outside the hand-written step's
    family) is in none of them.

    Trials of one key are sorted by their channel counts and cut into consecutive runs, each a
    population padded to its widest member. Which cut: the one whose populations, estimated in
    seconds (`POPULATION_START_S`, `STEP_S`, `NOTEBOOK_MEMBER_STEP_S`) and handed to the
    processes longest first, end soonest. The candidates: the cut of fewest seconds in all
    (padding costs less than another population's start and steps, until it does not), and the
    cuts into exactly 1, 2 or 3 populations per process whose longest population is shortest
    (so that no process idles while one trains the widest alone). Dynamic programming over the
    sorted list: O(n * most) and O(k * n * most).
    """
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = population_key(cfg) if cfg is not None else None
        if key is not None:
            by_key.setdefault(key, []).append(i)
    planned: list[Planned] = []
    for trials in by_key.values():
        planned += _Cut(trials, [configs[i] for i in trials], most).best(processes)  # type: ignore[arg-type]
    return planned


class _Cut:
    """One key's trials, sorted by width, and the ways to cut them into populations."""

    def __init__(self, trials: list[int], cfgs: list[TrainConfig], most: int) -> None:
        order = sorted(range(len(trials)), key=lambda k: (cfgs[k].model.out_1, cfgs[k].model.out_2))
        self.trials = [trials[k] for k in order]
        self.widths = [(cfgs[k].model.out_1, cfgs[k].model.out_2) for k in order]
        self.members = [cfgs[k].replicates for k in order]
        self.first, self.most = cfgs[0], most
        self.steps = self.first.trainer.epochs * -(
            -self.first.data.N_images // self.first.trainer.batch_size
        )
        self._costs: dict[tuple[int, int], float] = {}

    def seconds(self, i: int, j: int) -> float:
        """The estimated seconds of a population of the sorted trials [i, j)."""
        wide = (max(w[0] for w in self.widths[i:j]), max(w[1] for w in self.widths[i:j]))
        if wide not in self._costs:
            self._costs[wide] = member_cost(self.first, *wide)
        count = sum(self.members[i:j])
        return POPULATION_START_S + self.steps * (
            STEP_S + NOTEBOOK_MEMBER_STEP_S * count * self._costs[wide]
        )

    def fewest_seconds(self) -> list[int]:
        """Cut points of the cut whose populations take the fewest seconds in all."""
        n = len(self.trials)
        best, cut_at = [0.0] + [math.inf] * n, [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(max(0, j - self.most), j):
                total = best[i] + self.seconds(i, j)
                if total < best[j]:
                    best[j], cut_at[j] = total, i
        return _points(cut_at, n)

    def shortest_longest(self, k: int) -> list[int] | None:
        """Cut points of the cut into exactly k populations whose longest is shortest."""
        n = len(self.trials)
        if not k <= n <= k * self.most:
            return None
        worst = [[math.inf] * (n + 1) for _ in range(k + 1)]  # worst[g][j]: g populations of [0, j)
        cut_at = [[0] * (n + 1) for _ in range(k + 1)]
        worst[0][0] = 0.0
        for g in range(1, k + 1):
            for j in range(g, n + 1):
                for i in range(max(g - 1, j - self.most), j):
                    longest = max(worst[g - 1][i], self.seconds(i, j))
                    if longest < worst[g][j]:
                        worst[g][j], cut_at[g][j] = longest, i
        points, j = [], n
        for g in range(k, 0, -1):
            points.append(j)
            j = cut_at[g][j]
        return [0, *points[::-1]]

    def best(self, processes: int) -> list[Planned]:
        candidates = [self.fewest_seconds()]
        for k in (processes, 2 * processes, 3 * processes):
            if (points := self.shortest_longest(k)) is not None:
                candidates.append(points)
        chosen = min(
            candidates, key=lambda points: (self._makespan(points, processes), len(points))
        )
        planned = []
        for i, j in sorted(itertools.pairwise(chosen), key=lambda c: -self.seconds(*c)):
            wide = (max(w[0] for w in self.widths[i:j]), max(w[1] for w in self.widths[i:j]))
            planned.append(Planned(self.trials[i:j], f"padded to out_1={wide[0]} out_2={wide[1]}"))
        return planned  # the longest first: started first, it ends no later than it must

    def _makespan(self, points: list[int], processes: int) -> float:
        """When the last population ends, longest first onto the first free process."""
        ends = [0.0] * processes
        for seconds in sorted(
            (self.seconds(i, j) for i, j in itertools.pairwise(points)), reverse=True
        ):
            ends[ends.index(min(ends))] += seconds
        return max(ends)


def _points(cut_at: list[int], n: int) -> list[int]:
    points, j = [n], n
    while j > 0:
        j = cut_at[j]
        points.append(j)
    return points[::-1]
