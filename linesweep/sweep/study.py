"""Optuna's side of a sweep: samplers and pruners from their `_target_` configs, opening a study.

Samplers and pruners are Hydra `_target_` configs (hydra/sweeper/sampler=<name> and
hydra/sweeper/pruner=<name> choose one, hydra_plugins/linesweep_optuna_sweeper/config.py lists
them), built with Hydra's `instantiate`; any Optuna sampler or pruner class works by its
`_target_`. Every bad name or argument becomes one ConfigError line that names the
`hydra.sweeper` key. Storages are opened by `linesweep.core.storage`, which compare and the trials
use too.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.exceptions import DuplicatedStudyError
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler, GridSampler
from optuna.storages import BaseStorage

from hydra_plugins.linesweep_optuna_sweeper.config import PRUNER_OPTIONS, SAMPLER_OPTIONS
from linesweep.core.errors import ConfigError
from linesweep.sweep.space import SearchSpace

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")


def target_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A `_target_` config as plain data without its null arguments, so Optuna's defaults apply.

    (A null in a sampler's or pruner's config means "Optuna's default for the installed version";
    nested `_target_` configs, such as an independent sampler, are cleaned the same way.)
    """
    return {
        key: target_config(value) if isinstance(value, Mapping) and "_target_" in value else value
        for key, value in config.items()
        if value is not None
    }


def locate(path: str) -> Any:
    """The object a dotted path `module.name` names (a module name may hold hyphens).

    Hydra's `get_class` and `get_method` would do, but they log an error of their own before
    raising, and a wrong name deserves one line.
    """
    module_name, _, name = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise LookupError(f"{type(err).__name__}: {err}") from None


def _target_class(config: Mapping[str, Any], key: str, base: type, example: str) -> type:
    """The class a `_target_` config names, if it is a `base`; else a ConfigError."""
    target = config.get("_target_")
    try:
        cls = locate(target)
    except LookupError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        kind = base.__name__.removeprefix("Base").lower()
        raise ConfigError(
            f"{key}._target_",
            target,
            f"an Optuna {kind} class such as {example}",
            f"or choose one by name with hydra/sweeper/{kind}=<name>",
        )
    return cls


def _build(config: Mapping[str, Any], key: str, cls: type, **extra: Any) -> Any:
    """Instantiate a `_target_` config with Hydra; a ConfigError naming `key` if that fails."""
    try:
        return instantiate({**config, **extra}, _convert_="all")
    except Exception as err:
        cause = err.__cause__ or err
        detail = (str(cause).strip().splitlines() or [""])[0]
        arguments = {k: v for k, v in config.items() if k != "_target_"}
        raise ConfigError(
            key, arguments, f"arguments {cls.__name__} accepts ({type(cause).__name__}: {detail})"
        ) from None


def _chosen(config: Any, group: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """A sampler's or pruner's config, or a ConfigError: a plain value where the config group's
    option belongs (`hydra.sweeper.sampler=grid` for `hydra/sweeper/sampler=grid`)."""
    if not isinstance(config, Mapping):
        key = group.replace("/", ".")
        raise ConfigError(
            key, config, f"a `_target_` config, chosen with {group}=<option>",
            f"write {group}={config if config in options else '<option>'} (one of "
            f"{', '.join(options)})",
        )  # fmt: skip
    return target_config(config)


def make_sampler(config: Mapping[str, Any], space: SearchSpace) -> BaseSampler:
    """The sampler of `hydra.sweeper.sampler`; a grid sampler gets its grid from the space."""
    key = "hydra.sweeper.sampler"
    conf = _chosen(config, "hydra/sweeper/sampler", SAMPLER_OPTIONS)
    cls = _target_class(conf, key, BaseSampler, "optuna.samplers.TPESampler")
    extra = {"search_space": space.grid()} if issubclass(cls, GridSampler) else {}
    return _build(conf, key, cls, **extra)


def make_pruner(config: Mapping[str, Any]) -> BasePruner:
    """The pruner of `hydra.sweeper.pruner` (a `_target_` config)."""
    key, conf = "hydra.sweeper.pruner", _chosen(config, "hydra/sweeper/pruner", PRUNER_OPTIONS)
    return _build(conf, key, _target_class(conf, key, BasePruner, "optuna.pruners.MedianPruner"))


def pruner_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The pruner as a plain Hydra `_target_` config, for a trial to build the same one."""
    return target_config(config)


def load_function(path: str, key: str) -> Callable[..., Any]:
    """The function a dotted path `module.function` names; else a ConfigError naming `key`."""
    try:
        function = locate(path)
    except LookupError as err:
        raise ConfigError(key, path, f"an importable module.function ({err})") from None
    if not callable(function):
        raise ConfigError(key, path, "a function, called as function(cfg, trial)")
    return function


def check_directions(direction: str | Sequence[str]) -> list[str]:
    """`maximize`, `minimize`, or a list of them (one per objective)."""
    directions = [direction] if isinstance(direction, str) else list(direction)
    if not directions or any(d not in DIRECTIONS for d in directions):
        raise ConfigError(
            "hydra.sweeper.direction", directions, "maximize, minimize, or a list of them"
        )
    return directions


def create_or_load_study(
    storage: BaseStorage,
    study_name: str,
    directions: list[str],
    sampler: BaseSampler,
    pruner: BasePruner,
) -> optuna.Study:
    """Create the study or join it; safe when several workers start in the same instant."""
    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                directions=directions,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
            break
        except DuplicatedStudyError:  # another worker won the race between check and create
            time.sleep(0.1 * (attempt + 1))
    else:
        study = optuna.load_study(
            study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
        )
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise ConfigError(
            "hydra.sweeper.direction",
            directions,
            f"the directions of the existing study {study_name!r}: {existing}",
            "match them, or start a new study with another hydra.sweeper.study_name",
        )
    return study
