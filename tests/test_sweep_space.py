"""Search spaces in Hydra's sweep syntax, samplers and pruners from `_target_` configs, storages."""

from __future__ import annotations

import os

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler

from hydra_plugins.linesweep_optuna_sweeper.config import PRUNER_OPTIONS, SAMPLER_OPTIONS
from linesweep.core.errors import ConfigError
from linesweep.core.storage import open_storage
from linesweep.sweep.space import override_value, parse_search_space
from linesweep.sweep.study import (
    check_directions,
    load_function,
    make_pruner,
    make_sampler,
    pruner_config,
    target_config,
)


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
        # hydra-optuna-sweeper's own cases: interval is a float range unless int(...) says so
        ("choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
        ("interval(1, 5)", FloatDistribution(1, 5)),
        ("tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        ("range(0.5, 5.5, step=1)", FloatDistribution(0.5, 4.5, step=1)),  # its stop included
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


def test_fixed_values_and_deletions_pass_through_to_every_trial_as_written():
    space = parse_search_space({}, ["key=5", "~z", "~w=10", "key1=choice(1,2)"])
    assert space.fixed == ("key=5", "~z", "~w=10")  # `~z` deletes z whatever its value
    assert space.fixed_keys() == {"key", "z", "w"}
    assert space.overrides({"key1": 2}) == ["key=5", "~z", "~w=10", "key1=2"]
    typed = ["a=false", "b=${seed}", 'c=${oc.env:X,"cpu"}', "d=1e-3", "e=[1, 2]"]
    assert parse_search_space({}, typed).fixed == tuple(typed)  # not False, $\{seed\}, 0.001


def test_parameters_a_custom_search_space_added_become_overrides_after_the_sampled_ones():
    space = parse_search_space({}, ["x=range(0,3)"])
    assert space.overrides({"z": 0.25, "x": 1, "+w": 0.5}) == ["x=1", "z=0.25", "+w=0.5"]


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


def test_string_choices_typed_quoted_reach_the_trial_as_typed():
    """choice('=1+2','c,d') gives the sampler the strings unquoted: handed on as they are,
    `key==1+2` would not parse and `key=c,d` would be a sweep of two."""
    typed = ["=1+2", "@x", "a b", "c,d", "x'y", "plain"]
    space = parse_search_space({}, ["+note=choice(" + ",".join(map(repr, typed)) + ")"])
    (choices,) = [d.choices for d in space.distributions.values()]
    assert list(choices) == typed  # as Hydra's Transformer.encode hands them over
    for value in typed:
        (override,) = OverridesParser.create().parse_overrides(space.overrides({"+note": value}))
        assert not override.is_sweep_override() and override.value() == value


def test_grid_enumerates_ranges_and_choices_and_refuses_continuous_values():
    space = parse_search_space({}, ["a=range(2,5)", "b=choice(x,y)", "c=int(interval(1,3))"])
    assert space.grid() == {"a": [2, 3, 4], "b": ["x", "y"], "c": [1, 2, 3]}
    with pytest.raises(ConfigError, match=r"^hydra/sweeper/sampler=grid .*d is continuous"):
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


@pytest.mark.parametrize("name", sorted(SAMPLER_OPTIONS))
def test_every_sampler_option_builds_its_target_with_optunas_defaults_and_a_seed(name):
    config = OmegaConf.to_container(OmegaConf.structured(SAMPLER_OPTIONS[name]))
    assert target_config(config) == {"_target_": config["_target_"]}  # nulls: Optuna's defaults
    sampler = make_sampler({**config, "seed": 7}, parse_search_space({}, ["a=range(1,4)"]))
    assert type(sampler).__name__ == config["_target_"].rsplit(".", 1)[1]
    assert isinstance(sampler, BaseSampler)


@pytest.mark.parametrize("name", sorted(PRUNER_OPTIONS))
def test_every_pruner_option_builds_its_target(name):
    config = OmegaConf.to_container(OmegaConf.structured(PRUNER_OPTIONS[name]))
    pruner = make_pruner({**config, **({"lower": 0.5} if name == "threshold" else {})})
    assert type(pruner).__name__ == config["_target_"].rsplit(".", 1)[1]
    assert isinstance(pruner, BasePruner)


def test_samplers_take_their_keyword_arguments_flat_and_nested_targets_are_built():
    space = parse_search_space({}, ["a=range(1,4)", "b=choice(x,y)"])
    tpe = make_sampler(
        {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": 5, "seed": 1}, space
    )
    assert isinstance(tpe, TPESampler) and tpe._n_startup_trials == 5
    cmaes = make_sampler(
        {
            "_target_": "optuna.samplers.CmaEsSampler",
            "independent_sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
        },
        space,
    )
    assert isinstance(cmaes, CmaEsSampler)
    assert isinstance(cmaes._independent_sampler, RandomSampler)
    grid = make_sampler({"_target_": "optuna.samplers.GridSampler", "seed": 0}, space)
    assert isinstance(grid, GridSampler)  # its grid is the search space's
    assert grid._search_space == {"a": [1, 2, 3], "b": ["x", "y"]}


def test_the_trial_builds_the_same_pruner_from_its_plain_config():
    config = OmegaConf.to_container(OmegaConf.structured(PRUNER_OPTIONS["median"]))
    plain = pruner_config({**config, "n_warmup_steps": 4})
    assert plain == {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 10,
                     "n_warmup_steps": 4}  # fmt: skip
    assert isinstance(make_pruner(plain), MedianPruner)
    assert isinstance(make_pruner({"_target_": "optuna.pruners.NopPruner"}), NopPruner)


def test_wrong_targets_and_bad_arguments_are_one_line_errors():
    space = parse_search_space({}, [])
    with pytest.raises(
        ConfigError,
        match=r"^hydra.sweeper.sampler._target_=optuna.samplers.TPESamplr is not allowed: an "
        r"Optuna sampler class such as optuna.samplers.TPESampler; or choose one by name with "
        r"hydra/sweeper/sampler=<name>$",
    ):
        make_sampler({"_target_": "optuna.samplers.TPESamplr"}, space)
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.sampler._target_=optuna.pruners.Med"):
        make_sampler({"_target_": "optuna.pruners.MedianPruner"}, space)  # not a sampler
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.pruner._target_=null is not allowed"):
        make_pruner({"n_warmup_steps": 2})  # +hydra.sweeper.pruner.x without choosing one
    with pytest.raises(
        ConfigError,
        match=r"^hydra.sweeper.pruner=\{'n_startup': 3\} is not allowed: arguments MedianPruner "
        r"accepts \(TypeError: ",
    ) as info:
        make_pruner({"_target_": "optuna.pruners.MedianPruner", "n_startup": 3})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.direction=\[maximise\] is not allowed"):
        check_directions("maximise")
    assert check_directions(["maximize", "minimize"]) == ["maximize", "minimize"]


def test_a_custom_search_space_is_found_by_its_dotted_path_or_refused_in_one_line():
    assert load_function("os.path.join", "k") is os.path.join
    with pytest.raises(ConfigError, match=r"^k=nowhere.configure is not allowed: an importable "):
        load_function("nowhere.configure", "k")
    with pytest.raises(ConfigError, match=r"^k=os.sep is not allowed: a function"):
        load_function("os.sep", "k")


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
