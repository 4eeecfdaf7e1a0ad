"""Optuna's side of a sweep: samplers, pruners, and opening a study safely.

Every bad name or value becomes one ConfigError line that names the `hydra.sweeper` key.
Storages are opened by `linesweep.core.storage`, which compare and the trials use too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import (
    BaseSampler,
    CmaEsSampler,
    GPSampler,
    GridSampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)
from optuna.storages import BaseStorage

from linesweep.core.errors import ConfigError
from linesweep.sweep.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS: dict[str, type[BaseSampler]] = {
    "tpe": TPESampler,
    "random": RandomSampler,
    "grid": GridSampler,
    "cmaes": CmaEsSampler,
    "gp": GPSampler,
    "nsgaii": NSGAIISampler,
    "qmc": QMCSampler,
}
PRUNERS: dict[str, type[BasePruner]] = {
    "median": MedianPruner,
    "percentile": PercentilePruner,
    "successive_halving": SuccessiveHalvingPruner,
    "hyperband": HyperbandPruner,
    "none": NopPruner,
}
DIRECTIONS = ("minimize", "maximize")


def make_sampler(
    name: str, seed: int | None, kwargs: Mapping[str, Any], space: SearchSpace
) -> BaseSampler:
    """An Optuna sampler by name; the grid sampler gets its grid from the search space."""
    if name not in SAMPLERS:
        raise ConfigError("hydra.sweeper.sampler.name", name, "one of " + ", ".join(SAMPLERS))
    arguments = dict(kwargs)
    if name == "grid":
        arguments["search_space"] = space.grid()
    if seed is not None:
        arguments["seed"] = seed
    try:
        return SAMPLERS[name](**arguments)
    except (TypeError, ValueError, ImportError) as err:
        raise ConfigError(
            "hydra.sweeper.sampler.kwargs", dict(kwargs), f"arguments {name} accepts ({err})"
        ) from None


def make_pruner(name: str, kwargs: Mapping[str, Any]) -> BasePruner:
    """An Optuna pruner by name (`none` never prunes, and ignores any kwargs)."""
    if name not in PRUNERS:
        raise ConfigError("hydra.sweeper.pruner.name", name, "one of " + ", ".join(PRUNERS))
    if name == "none":
        return NopPruner()
    try:
        return PRUNERS[name](**dict(kwargs))
    except (TypeError, ValueError) as err:
        raise ConfigError(
            "hydra.sweeper.pruner.kwargs", dict(kwargs), f"arguments {name} accepts ({err})"
        ) from None


def pruner_config(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The pruner as a Hydra `_target_` config, for a trial to build the same one."""
    if name == "none":
        return {"_target_": "optuna.pruners.NopPruner"}
    return {"_target_": f"optuna.pruners.{PRUNERS[name].__name__}", **dict(kwargs)}


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
