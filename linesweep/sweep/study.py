"""Optuna's side of a sweep: storages, samplers, pruners, and opening a study safely.

Storage URLs: a plain path is an Optuna journal file (the default, next to the sweep's folders:
no server, safe for several processes on one machine); `sqlite:///...`, `postgresql://...` and
`mysql://...` are relational databases for sweeps that span machines. Every bad name or value
becomes one ConfigError line that names the `hydra.sweeper` key.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
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
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from linesweep.core.errors import ConfigError
from linesweep.sweep.space import SearchSpace

log = logging.getLogger(__name__)

JOURNAL_NAME = "optuna_journal.log"  # optuna-dashboard and `optuna` open it as a journal file

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


def check_directions(direction: str | Sequence[str]) -> list[str]:
    """`maximize`, `minimize`, or a list of them (one per objective)."""
    directions = [direction] if isinstance(direction, str) else list(direction)
    if not directions or any(d not in DIRECTIONS for d in directions):
        raise ConfigError(
            "hydra.sweeper.direction", directions, "maximize, minimize, or a list of them"
        )
    return directions


def is_database_url(url: str) -> bool:
    return "://" in url


def shown_url(url: str) -> str:
    """The storage URL with its password masked, for logs and result files."""
    if not is_database_url(url):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show it as given
        return url


def resolve_storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The configured URL, or the default journal file in the sweep folder (absolute)."""
    if storage is None:
        return str((sweep_dir / JOURNAL_NAME).resolve())
    return storage if is_database_url(storage) else str(Path(storage).expanduser().resolve())


def database_url(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only that is installed."""
    if (
        url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def open_storage(url: str, lock_grace_s: int = 30, attempts: int = 5) -> BaseStorage:
    """Open (creating if needed) the storage at `url`; ConfigError if it cannot be opened."""
    try:
        if not is_database_url(url):
            path = Path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = JournalFileSymlinkLock(str(path), grace_period=lock_grace_s)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        for attempt in range(attempts):
            try:
                return RDBStorage(database_url(url), engine_kwargs={"pool_pre_ping": True})
            except Exception as err:  # several workers creating the tables at the same instant
                if attempt == attempts - 1 or "already exists" not in str(err):
                    raise
                time.sleep(0.2 * (attempt + 1))
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            "hydra.sweeper.storage",
            url,
            "a storage Optuna can open (a journal file path or a database URL)",
            f"it failed with: {detail}",
        ) from None
    raise AssertionError("unreachable")


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
