"""How a sweep's waiting trials are split into populations (`linesweep.run.grouping`).

Every trial lands in exactly one population or trains alone; trials that cannot share a step
never share one; no population holds more than `most` trials; and the split chosen is the one
whose estimated end is soonest among those tried, padding two-dimensional widths to partners
that cost little (a split of the whole channel grid pads far less than sorting by `out_1`).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from linesweep.run.grouping import _Split, member_cost, plan_populations
from linesweep.run.validation import to_train_config

GRID = list(itertools.product(range(1, 9), range(1, 5), range(4)))  # out_1, out_2, an lr index


@pytest.fixture(scope="module")
def notebook():
    from hydra import compose, initialize_config_module

    from linesweep.run.config import register_configs

    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3"):
        return to_train_config(compose("train", overrides=["experiment=notebook", "replicates=3"]))


def widths(cfg, points):
    return [
        replace(
            cfg,
            model=replace(cfg.model, out_1=a, out_2=b),
            optimizer=replace(cfg.optimizer, lr=10.0**-lr),
        )
        for a, b, lr in points
    ]


def padded_cost(cfg, configs, planned):
    """Notebook-model members computed, each population padded to its widest member."""
    total = 0.0
    for population in planned:
        members = [configs[i] for i in population.trials]
        wide = (max(c.model.out_1 for c in members), max(c.model.out_2 for c in members))
        assert population.note == f"padded to out_1={wide[0]} out_2={wide[1]}"
        total += sum(c.replicates for c in members) * member_cost(cfg, *wide)
    return total


def test_every_trial_lands_in_one_population_of_at_most_most(notebook):
    configs = widths(notebook, GRID)
    planned = plan_populations(configs, most=20, processes=2)
    placed = sorted(i for p in planned for i in p.trials)
    assert placed == list(range(len(configs)))
    assert max(len(p.trials) for p in planned) <= 20


def test_trials_that_cannot_share_a_step_never_share_a_population(notebook):
    other_kernel = replace(
        notebook, model=replace(notebook.model, conv1=replace(notebook.model.conv1, kernel_size=3))
    )
    configs = [notebook, other_kernel, notebook, None, other_kernel]
    planned = plan_populations(configs, most=8, processes=1)
    assert sorted(sorted(p.trials) for p in planned) == [[0, 2], [1, 4]]  # None trains alone


def test_the_whole_grid_pads_to_close_partners_not_to_a_sorted_neighbour(notebook):
    """Sorting by (out_1, out_2) and cutting puts (6, 1) with (6, 4); merging does not."""
    configs = widths(notebook, GRID)
    planned = plan_populations(configs, most=64, processes=2)
    own = sum(3 * member_cost(notebook, c.model.out_1, c.model.out_2) for c in configs)
    split = _Split(list(range(len(configs))), configs, 64)
    sorted_cut = min(
        [split.fewest_seconds()] + [c for k in (2, 4, 6) if (c := split.shortest_longest(k))],
        key=lambda p: split.makespan(p, 2),
    )
    assert padded_cost(notebook, configs, planned) / own < 1.2  # measured 1.16
    chosen = [[split.trials.index(i) for i in p.trials] for p in planned]
    assert split.makespan(chosen, 2) < split.makespan(sorted_cut, 2)


def test_one_width_in_one_population_when_it_fits(notebook):
    configs = widths(notebook, [(4, 2, lr) for lr in range(4)] * 3)
    assert [sorted(p.trials) for p in plan_populations(configs, most=64, processes=1)] == [
        list(range(12))
    ]


def test_the_longest_population_starts_first(notebook):
    configs = widths(notebook, GRID)
    planned = plan_populations(configs, most=16, processes=2)
    split = _Split(list(range(len(configs))), configs, 16)
    seconds = [split.seconds([split.trials.index(i) for i in p.trials]) for p in planned]
    assert seconds == sorted(seconds, reverse=True) and len(planned) > 2
