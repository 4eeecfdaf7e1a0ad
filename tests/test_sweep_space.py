"""Search spaces in Hydra's sweep syntax, and the sampler, pruner and storage factories."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import (
    CmaEsSampler,
    GPSampler,
    GridSampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from linesweep.core.errors import ConfigError
from linesweep.core.storage import open_storage
from linesweep.sweep.space import override_value, parse_search_space
from linesweep.sweep.study import check_directions, make_pruner, make_sampler


def dist(expression: str):
    return parse_search_space({}, [f"key={expression}"]).distributions["key"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("choice(1,2)", CategoricalDistribution([1, 2])),
        ("choice(adam,sgd)", CategoricalDistribution(["adam", "sgd"])),
        ("choice(true,false)", CategoricalDistribution([True, False])),
        ("range(2,5)", IntDistribution(2, 4)),  # the stop is excluded, as in Hydra's basic sweeper
        ("range(1,10,3)", IntDistribution(1, 7, step=3)),
        ("range(0.5,2.0,0.5)", FloatDistribution(0.5, 1.5, step=0.5)),
        ("interval(0.1,0.5)", FloatDistribution(0.1, 0.5)),
        ("int(interval(1,8))", IntDistribution(1, 8)),  # interval includes both ends
        ("tag(log,interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("tag(log,int(interval(1,64)))", IntDistribution(1, 64, log=True)),
        ("tag(log,range(1,9))", IntDistribution(1, 8, log=True)),
        ("range(5,2,-1)", IntDistribution(3, 5)),  # the same values, counted down
    ],
)
def test_every_sweep_form_becomes_an_optuna_distribution(expression, expected):
    assert dist(expression) == expected


def test_shuffled_range_is_a_categorical_of_its_values():
    assert set(dist("shuffle(range(1,4))").choices) == {1, 2, 3}


def test_params_and_command_line_merge_and_the_command_line_wins():
    space = parse_search_space(
        {"model.out_1": "int(interval(1,8))", "optimizer.lr": "0.01", "model.out_2": "choice(1,2)"},
        ["model.out_2=choice(3,4)", "experiment=hard", "+extra=1"],
    )
    assert space.distributions == {
        "model.out_1": IntDistribution(1, 8),
        "model.out_2": CategoricalDistribution([3, 4]),
    }
    assert sorted(space.fixed) == ["+extra=1", "experiment=hard", "optimizer.lr=0.01"]


def test_sampled_values_round_trip_through_the_override_grammar():
    space = parse_search_space(
        {}, ["a=choice(adam,'two words')", "b=tag(log,interval(1e-5,1.0))", "c=choice(true,false)"]
    )
    overrides = space.overrides({"a": "'two words'", "b": 1.2345e-05, "c": False})
    parsed = {
        o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)
    }
    assert parsed == {"a": "two words", "b": 1.2345e-05, "c": False}
    assert override_value(None) == "null"


def test_grid_enumerates_ranges_and_choices_and_refuses_continuous_values():
    space = parse_search_space({}, ["a=range(2,5)", "b=choice(x,y)", "c=int(interval(1,3))"])
    assert space.grid() == {"a": [2, 3, 4], "b": ["x", "y"], "c": [1, 2, 3]}
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.sampler.name=grid .*d is continuous"):
        parse_search_space({}, ["d=interval(0,1)"]).grid()


@pytest.mark.parametrize(
    ("params", "arguments", "message"),
    [
        (
            {},
            ["model.out_1=int(interval(8,1))"],
            r"^model.out_1=int\(interval\(8,1\)\) is not allowed: .*low 8 > high 1",
        ),
        (
            {"optimizer.lr": "tag(log,interval(0,1))"},
            [],
            r"^hydra.sweeper.params.optimizer.lr=tag\(log,interval\(0,1\)\) .*low > 0",
        ),
        ({}, ["x=tag(log,int(interval(-1,5)))"], r"low > 0"),
        ({}, ["x=range(5,1)"], r"^x=range\(5,1\) is not allowed: a range with at least one value"),
        ({}, ["x=int(interval(1,"], r"^x=int\(interval\(1, is not allowed: Hydra's sweep syntax"),
        ({}, ["x=tag(log,choice(1,2))"], r"tag\(log, \.\.\.\) on an interval or a range"),
    ],
)
def test_malformed_or_impossible_expressions_name_the_key_and_value(params, arguments, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_search_space(params, arguments)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", TPESampler),
        ("random", RandomSampler),
        ("grid", GridSampler),
        ("cmaes", CmaEsSampler),
        ("gp", GPSampler),
        ("nsgaii", NSGAIISampler),
        ("qmc", QMCSampler),
    ],
)
def test_every_sampler_by_name_with_a_seed(name, cls):
    space = parse_search_space({}, ["a=range(1,4)"])
    assert isinstance(make_sampler(name, 7, {}, space), cls)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("median", MedianPruner),
        ("successive_halving", SuccessiveHalvingPruner),
        ("hyperband", HyperbandPruner),
        ("none", NopPruner),
    ],
)
def test_every_pruner_by_name(name, cls):
    assert isinstance(make_pruner(name, {}), cls)


def test_unknown_names_and_bad_arguments_are_one_line_errors():
    space = parse_search_space({}, [])
    with pytest.raises(
        ConfigError,
        match=r"^hydra.sweeper.sampler.name=tpee is not allowed: one of tpe, random, grid",
    ):
        make_sampler("tpee", None, {}, space)
    with pytest.raises(
        ConfigError, match=r"^hydra.sweeper.pruner.name=mediann is not allowed: one of median"
    ):
        make_pruner("mediann", {})
    with pytest.raises(
        ConfigError, match=r"^hydra.sweeper.pruner.kwargs=\{'n_startup': 3\} is not allowed"
    ):
        make_pruner("median", {"n_startup": 3})
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.direction=\[maximise\] is not allowed"):
        check_directions("maximise")
    assert check_directions(["maximize", "minimize"]) == ["maximize", "minimize"]


def test_a_storage_that_cannot_be_opened_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(
        ConfigError, match=r"^hydra.sweeper.storage=.*a-file/study.log is not allowed"
    ):
        open_storage(str(blocker / "study.log"))
    with pytest.raises(
        ConfigError,
        match=r"^hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/none .*it failed with",
    ):
        open_storage("postgresql://nobody@127.0.0.1:1/none", attempts=1)


def test_the_config_groups_offer_exactly_the_samplers_and_pruners_the_sweeper_builds():
    # Listed twice on purpose: Hydra imports the plugin's config at every start, without Optuna.
    from hydra_plugins.linesweep_optuna_sweeper import config as plugin
    from linesweep.sweep import study

    assert set(plugin.SAMPLERS) == set(study.SAMPLERS)
    assert set(plugin.PRUNERS) == set(study.PRUNERS)
