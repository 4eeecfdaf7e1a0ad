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

import json
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
# `python benchmarks/bench_step.py --part cost` (benchmarks/README.md, Populations).
POPULATION_START_S = 0.5
STEP_S = 150e-6
NOTEBOOK_MEMBER_STEP_S = 20e-6


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


def plan_populations(configs: Sequence[TrainConfig | None], most: int) -> list[Planned]:
    """Split waiting trials into populations of at most `most` trials; a trial that trains
    alone (None, or outside the hand-written step's family) is in none of them.

    Trials of one key are sorted by their channel counts and cut into consecutive runs, each
    a population padded to its widest member, so that the estimated seconds of all of them
    (`POPULATION_START_S`, `STEP_S`, `NOTEBOOK_MEMBER_STEP_S`) are fewest: padding costs less
    than another population's start and steps, until it does not. Dynamic programming over
    the sorted list, O(n * most) for n trials.
    """
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = population_key(cfg) if cfg is not None else None
        if key is not None:
            by_key.setdefault(key, []).append(i)
    planned: list[Planned] = []
    for trials in by_key.values():
        planned += _cut(trials, [configs[i] for i in trials], most)  # type: ignore[misc]
    return planned


def _cut(trials: list[int], cfgs: list[TrainConfig], most: int) -> list[Planned]:
    order = sorted(range(len(trials)), key=lambda k: (cfgs[k].model.out_1, cfgs[k].model.out_2))
    widths = [(cfgs[k].model.out_1, cfgs[k].model.out_2) for k in order]
    members = [cfgs[k].replicates for k in order]
    first = cfgs[0]
    steps = first.trainer.epochs * -(-first.data.N_images // first.trainer.batch_size)
    cache: dict[tuple[int, int], float] = {}

    def seconds(count: int, wide: tuple[int, int]) -> float:
        if wide not in cache:
            cache[wide] = member_cost(first, *wide)
        per_step = STEP_S + NOTEBOOK_MEMBER_STEP_S * count * cache[wide]
        return POPULATION_START_S + steps * per_step

    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: the cheapest cut of the first j trials
    cut_at = [0] * (n + 1)
    for j in range(1, n + 1):
        out_1 = out_2 = count = 0
        for i in range(j - 1, max(-1, j - 1 - most), -1):  # a population of sorted[i:j]
            out_1, out_2 = max(out_1, widths[i][0]), max(out_2, widths[i][1])
            count += members[i]
            total = best[i] + seconds(count, (out_1, out_2))
            if total < best[j]:
                best[j], cut_at[j] = total, i
    planned, j = [], n
    while j > 0:
        i = cut_at[j]
        wide = (max(w[0] for w in widths[i:j]), max(w[1] for w in widths[i:j]))
        note = f"padded to out_1={wide[0]} out_2={wide[1]}"
        planned.append(Planned([trials[order[k]] for k in range(i, j)], note))
        j = i
    return planned[::-1]
