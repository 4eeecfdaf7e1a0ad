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

from linesweep.run import native
from linesweep.run.config import TrainConfig
from linesweep.run.shapes import plan_cnn
from linesweep.run.update_rule import Unsupported, UpdateRule

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


@dataclass(frozen=True)
class StepCosts:
    """What a population costs, in seconds on one core: a fixed start (its process, data and
    records), a fixed part of every step (Python, kernel calls), and per member a part whatever
    its width (its loss, its update, its share of every loop) and what its padded layers
    compute, in members of the notebook's model (`member_cost`)."""

    population_start_s: float
    step_s: float
    member_step_s: float
    notebook_member_step_s: float


# Fitted by `python benchmarks/bench_grouping.py`, with LINESWEEP_NATIVE=0 for torch's layers
# (benchmarks/README.md, Populations). The C step's fixed part is a tenth of torch's: one call
# a step, where torch's layers make dozens.
C_STEP = StepCosts(1.0, 24e-6, 1.3e-6, 7.5e-6)
TORCH_STEP = StepCosts(1.0, 220e-6, 5.5e-6, 13e-6)


def step_costs() -> StepCosts:
    """The costs of the step this machine trains with: the C step where a compiler is found
    (the planning process builds nothing: the processes that train do, and say if it fails)."""
    return C_STEP if native.compiler_found() else TORCH_STEP


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

    A population is padded to its widest member in each layer, so the question is which trials
    to put together: padding costs compute, another population costs a start and a fixed part
    of every step. Each way of splitting is estimated in seconds (`StepCosts`), its populations
    handed to the processes longest first, and the one that ends soonest wins. The candidates:

    - merging, from one population per channel count: again and again the two populations
      whose merge saves the most seconds (or loses the fewest), every step a candidate. Width
      has two dimensions, so the best partners are often not neighbours in any one order:
      (6, 1) pads far less with (8, 1) than with (6, 4);
    - cuts of the trials sorted by (out_1, out_2) into consecutive runs, by dynamic programming:
      the cut of fewest seconds in all, and the cuts into exactly 1, 2 or 3 populations per
      process whose longest population is shortest (so no process idles while one trains the
      widest alone).
    """
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = population_key(cfg) if cfg is not None else None
        if key is not None:
            by_key.setdefault(key, []).append(i)
    planned: list[Planned] = []
    for trials in by_key.values():
        planned += _Split(trials, [configs[i] for i in trials], most).best(processes)  # type: ignore[arg-type]
    return planned


Partition = list[list[int]]  # populations, as places in the sorted trials


class _Split:
    """One key's trials, sorted by width, and the ways to split them into populations."""

    def __init__(self, trials: list[int], cfgs: list[TrainConfig], most: int) -> None:
        order = sorted(range(len(trials)), key=lambda k: (cfgs[k].model.out_1, cfgs[k].model.out_2))
        self.trials = [trials[k] for k in order]
        self.widths = [(cfgs[k].model.out_1, cfgs[k].model.out_2) for k in order]
        self.members = [cfgs[k].replicates for k in order]
        self.first, self.most = cfgs[0], most
        self.steps = self.first.trainer.epochs * -(
            -self.first.data.N_images // self.first.trainer.batch_size
        )
        self.costs = step_costs()
        self._costs: dict[tuple[int, int], float] = {}
        self._run_table: dict[tuple[int, int], float] = {}

    def widest(self, places: Sequence[int]) -> tuple[int, int]:
        return max(self.widths[k][0] for k in places), max(self.widths[k][1] for k in places)

    def estimate(self, wide: tuple[int, int], members: int) -> float:
        """The estimated seconds of a population of `members` members padded to `wide`."""
        if wide not in self._costs:
            self._costs[wide] = member_cost(self.first, *wide)
        c = self.costs
        per_member = c.member_step_s + c.notebook_member_step_s * self._costs[wide]
        return c.population_start_s + self.steps * (c.step_s + members * per_member)

    def seconds(self, places: Sequence[int]) -> float:
        return self.estimate(self.widest(places), sum(self.members[k] for k in places))

    def merged(self) -> list[Partition]:
        """Every partition met merging, from one population per channel count down."""
        groups = [
            list(g) for _, g in itertools.groupby(range(len(self.trials)), self.widths.__getitem__)
        ]
        groups = [
            part[i : i + self.most] for part in groups for i in range(0, len(part), self.most)
        ]
        wide = [self.widest(g) for g in groups]
        count = [sum(self.members[k] for k in g) for g in groups]
        alone = [self.estimate(w, c) for w, c in zip(wide, count, strict=True)]
        seen = [[list(g) for g in groups]]
        while True:
            best = None
            for a, b in itertools.combinations(range(len(groups)), 2):
                if len(groups[a]) + len(groups[b]) > self.most:
                    continue
                both = (max(wide[a][0], wide[b][0]), max(wide[a][1], wide[b][1]))
                together = self.estimate(both, count[a] + count[b])
                saving = alone[a] + alone[b] - together
                if best is None or saving > best[0]:
                    best = (saving, a, b, both, together)
            if best is None:
                return seen
            _, a, b, both, together = best
            groups[a] += groups.pop(b)
            wide[a], count[a], alone[a] = both, count[a] + count.pop(b), together
            wide.pop(b)
            alone.pop(b)
            seen.append([list(g) for g in groups])

    def run_seconds(self, i: int, j: int) -> float:
        """`seconds` of the sorted trials [i, j), for every run of at most `most` worked out
        once, by running maxima: the cuts below ask for each many times."""
        if not self._run_table:
            for end in range(1, len(self.trials) + 1):
                wide, members = (0, 0), 0
                for start in range(end - 1, max(0, end - self.most) - 1, -1):
                    w = self.widths[start]
                    wide = (max(wide[0], w[0]), max(wide[1], w[1]))
                    members += self.members[start]
                    self._run_table[(start, end)] = self.estimate(wide, members)
        return self._run_table[(i, j)]

    def fewest_seconds(self) -> Partition:
        """The cut of the sorted trials whose populations take the fewest seconds in all."""
        n = len(self.trials)
        best, cut_at = [0.0] + [math.inf] * n, [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(max(0, j - self.most), j):
                total = best[i] + self.run_seconds(i, j)
                if total < best[j]:
                    best[j], cut_at[j] = total, i
        return _runs(_points(cut_at, n))

    def shortest_longest(self, k: int) -> Partition | None:
        """The cut of the sorted trials into exactly k populations whose longest is shortest."""
        n = len(self.trials)
        if not k <= n <= k * self.most:
            return None
        worst = [[math.inf] * (n + 1) for _ in range(k + 1)]  # worst[g][j]: g populations of [0, j)
        cut_at = [[0] * (n + 1) for _ in range(k + 1)]
        worst[0][0] = 0.0
        for g in range(1, k + 1):
            for j in range(g, n + 1):
                for i in range(max(g - 1, j - self.most), j):
                    longest = max(worst[g - 1][i], self.run_seconds(i, j))
                    if longest < worst[g][j]:
                        worst[g][j], cut_at[g][j] = longest, i
        points, j = [], n
        for g in range(k, 0, -1):
            points.append(j)
            j = cut_at[g][j]
        return _runs([0, *points[::-1]])

    def best(self, processes: int) -> list[Planned]:
        candidates = [*self.merged(), self.fewest_seconds()]
        for k in (processes, 2 * processes, 3 * processes):
            if (cut := self.shortest_longest(k)) is not None:
                candidates.append(cut)
        chosen = min(candidates, key=lambda p: (self.makespan(p, processes), len(p)))
        planned = []
        for places in sorted(chosen, key=lambda g: -self.seconds(g)):
            wide = self.widest(places)
            trials = sorted(self.trials[k] for k in places)
            planned.append(Planned(trials, f"padded to out_1={wide[0]} out_2={wide[1]}"))
        return planned  # the longest first: started first, it ends no later than it must

    def makespan(self, partition: Partition, processes: int) -> float:
        """When the last population ends, longest first onto the first free process."""
        ends = [0.0] * processes
        for seconds in sorted((self.seconds(g) for g in partition), reverse=True):
            ends[ends.index(min(ends))] += seconds
        return max(ends)


def _points(cut_at: list[int], n: int) -> list[int]:
    points, j = [n], n
    while j > 0:
        j = cut_at[j]
        points.append(j)
    return points[::-1]


def _runs(points: list[int]) -> Partition:
    return [list(range(i, j)) for i, j in itertools.pairwise(points)]
