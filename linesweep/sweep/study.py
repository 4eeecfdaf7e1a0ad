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
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.exceptions import DuplicatedStudyError
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler, GridSampler
from optuna.storages import BaseStorage

from hydra_plugins.linesweep_optuna_sweeper.config import PRUNER_OPTIONS, SAMPLER_OPTIONS
from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import ensure_writable_folder
from linesweep.core.storage import check_journal_path, is_database_url, resolve_storage_url
from linesweep.sweep.journal import check_journal
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
    """Instantiate a `_target_` config with Hydra; a ConfigError naming `key` if that fails.

    A negative count (`n_startup_trials`, `n_warmup_steps`, ...: every `n_` argument) is
    refused first: Optuna takes `n_startup_trials=-3` without a word, as if it were 0.
    """
    for name, value in config.items():
        if name.startswith("n_") and isinstance(value, int) and value < 0:
            raise ConfigError(f"{key}.{name}", value, "a count, 0 or more")
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
    """Join the study or create it; safe when several workers start in the same instant.

    Loaded first: Optuna's `create_study(load_if_exists=True)` appends a creation record to a
    journal even when the study exists, so every resume, a refused one too, changed the study.
    """
    try:
        study = optuna.load_study(
            study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
        )
    except KeyError:  # no such study yet
        study = None
    for attempt in range(5 if study is None else 0):
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
    if study is None:
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


STARTED_WITH = "linesweep.started_with"  # the study's user attribute: its space and fixed overrides


def started_with(space: SearchSpace) -> dict[str, Any]:
    """What a study is started with, as its user attribute holds it (plain JSON)."""
    return {
        "params": {key: distribution_to_json(d) for key, d in space.distributions.items()},
        "fixed": list(space.fixed),
    }


def check_resume(study: optuna.Study, space: SearchSpace, on_purpose: bool) -> list[str]:
    """Refuse to resume `study` with another space or other fixed overrides than it started
    with, naming what changed (ConfigError), unless `on_purpose`; record them on a new study.

    Returns the changes continued on purpose. A parameter that Optuna cannot store under the
    name its earlier trials used (another kind, a log scale switched, other choices) is refused
    even on purpose: Optuna's storage would fail the first trial that samples it. Call it under
    the sweep's slot lock: two workers starting a new study record it once.
    """
    key = "hydra.sweeper.resume_changed"
    for name, new in space.distributions.items():
        for trial in study.get_trials(deepcopy=False):
            old = trial.distributions.get(name)
            if old is None:
                continue
            try:
                check_distribution_compatibility(old, new)
            except ValueError:
                raise ConfigError(
                    name, shown_distribution(new), f"the {shown_distribution(old)} that study "
                    f"{study.study_name!r} stored for it (trial {trial.number}): Optuna keeps one "
                    "kind, log scale and choice list per parameter",
                    "search it as before, or start a new study with another "
                    "hydra.sweeper.study_name",
                ) from None  # fmt: skip
            break
    recorded = study.user_attrs.get(STARTED_WITH)
    now = started_with(space)
    if recorded is None:
        study.set_user_attr(STARTED_WITH, now)  # a new study, or one from before this check
        return []
    changes = _changes(recorded, now)
    if changes and not on_purpose:
        raise LinesweepError(
            f"study {study.study_name!r} was started with another search space or other fixed "
            f"overrides: {'; '.join(changes)}; run it as it was, add {key}=true to continue it "
            "with these changes, or start a new study with another hydra.sweeper.study_name"
        )
    if changes:
        study.set_user_attr(STARTED_WITH, now)  # what it continues with from now on
    return changes


def _changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    before, after = recorded.get("params", {}), now["params"]
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            changes.append(f"{name} is searched now ({_shown_json(new)}), and was not")
        elif new is None:
            changes.append(f"{name} is no longer searched (was {_shown_json(old)})")
        else:
            changes.append(f"{name} was {_shown_json(old)}, now {_shown_json(new)}")
    old_fixed, new_fixed = recorded.get("fixed", []), now["fixed"]
    gone = [f for f in old_fixed if f not in new_fixed]
    added = [f for f in new_fixed if f not in old_fixed]
    if gone or added:
        changes.append(
            f"the fixed overrides were [{' '.join(old_fixed)}], now [{' '.join(new_fixed)}]"
        )
    return changes


def _shown_json(text: str) -> str:
    try:
        return shown_distribution(json_to_distribution(text))
    except Exception:  # written by another version: show it as stored
        return str(text)


def shown_distribution(dist: BaseDistribution) -> str:
    """A distribution as a user reads it: `choice(1, 2)`, `int in [1, 8]`, `float in [1e-4,
    0.1], log`."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(map(str, dist.choices))})"
    assert isinstance(dist, (IntDistribution, FloatDistribution))
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    step = f", step {dist.step:g}" if dist.step not in (None, 1) else ""
    return f"{kind} in [{dist.low:g}, {dist.high:g}]{step}{', log' if dist.log else ''}"


def extend_trial(
    function: Callable[[DictConfig, optuna.Trial], Any],
    config: DictConfig,
    trial: optuna.Trial,
    fixed_keys: set[str],
) -> str | None:
    """Let hydra.sweeper.custom_search_space suggest more parameters for a new trial: what is
    wrong with it (it raised, or it suggests a key a fixed override sets), or None.

    It is called as function(cfg, trial) with the sweep's config, after `params` are sampled;
    what it suggests becomes the trial's overrides too.
    """
    try:
        function(config, trial)
    except Exception as err:
        return f"a function(cfg, trial) that runs; it raised {type(err).__name__}: {err}"
    clash = sorted(fixed_keys & {k.lstrip("+~") for k in trial.params})
    if clash:
        return f"a function that suggests no key an override fixes, but it suggests {clash}"
    return None


def storage_url_for(storage: str | None, sweep_dir: Path, n_jobs: int) -> str:
    """The study's storage URL (`hydra.sweeper.storage`, or the journal in the sweep folder),
    checked before anything is written: a journal's folder writable, its path not a planted
    link, its records whole (a torn last record cut, other damage refused); a SQLite file
    under several workers warned about."""
    url = resolve_storage_url(storage, sweep_dir)
    if not is_database_url(url):
        ensure_writable_folder(Path(url).parent, "hydra.sweeper.storage")
        check_journal_path(Path(url))
        for note in check_journal(Path(url)):
            log.warning("%s", note)
    elif url.startswith("sqlite") and n_jobs > 1:
        log.warning(
            "SQLite locks the whole database on every write: with hydra.sweeper.n_jobs=%d "
            "expect 'database is locked' errors. Use the default journal file (omit "
            "hydra.sweeper.storage) on one machine, or PostgreSQL across machines.",
            n_jobs,
        )
    return url
