"""hydra.sweeper.* as the sweep uses it: checked, its nulls resolved against the app's config.

The keys and their defaults are the plugin's (hydra_plugins/linesweep_optuna_sweeper/config.py,
and docs/settings.md); here each is checked once, in one line naming it when it is wrong, and
what the app decides (the direction, the study name, the pruner, the preload) is filled in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.linesweep_optuna_sweeper.config import MedianPrunerConfig, NopPrunerConfig
from linesweep.core.errors import ConfigError
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.metrics import directions as metric_directions
from linesweep.sweep import trial_server
from linesweep.sweep.study import check_directions


@dataclass(frozen=True)
class SweepSettings:
    """hydra.sweeper.*, checked, with its nulls resolved against the app's config.

    See hydra_plugins/linesweep_optuna_sweeper/config.py for the keys and their defaults.
    """

    directions: list[str]
    study_name: str
    storage: str | None
    n_trials: int
    n_jobs: int
    sampler: dict[str, Any]  # a `_target_` config
    pruner: dict[str, Any]  # a `_target_` config
    params: dict[str, Any]
    custom_search_space: str | None
    max_failure_rate: float
    resume_changed: bool
    executor: str
    population_size: int
    batch_task: str | None
    heartbeat_s: float
    stale_after_s: float
    trial_timeout: float | None
    preload: list[str]

    @classmethod
    def from_config(cls, conf: dict[str, Any], app_config: DictConfig) -> SweepSettings:
        plain = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in conf.items()
        }
        search_space = plain.pop("search_space", None)
        if search_space is not None:
            raise ConfigError(
                "hydra.sweeper.search_space",
                search_space,
                "hydra.sweeper.params (search_space was deprecated by hydra-optuna-sweeper 1.2)",
                "write each parameter under hydra.sweeper.params as key: sweep expression, "
                "e.g. x: interval(-5,5)",
            )
        direction = plain.pop("direction")
        metrics = app_metrics(app_config)
        if direction is not None:
            directions = check_directions(direction)
        else:  # linesweep's app: one direction per metric; any other app: Optuna's default
            directions = metric_directions(metrics) if metrics else ["minimize"]
        if plain["study_name"] is None:  # as conf/train.yaml names the sweep folder
            plain["study_name"] = str(OmegaConf.select(app_config, "hydra.job.name"))
        if plain["pruner"] is None:  # Optuna prunes single-objective studies only
            default = MedianPrunerConfig if len(directions) == 1 else NopPrunerConfig
            plain["pruner"] = OmegaConf.to_container(OmegaConf.structured(default))
        if plain["preload"] is None:
            plain["preload"] = default_preload(linesweep_app=metrics is not None)
        plain["params"] = plain["params"] or {}
        settings = cls(directions=directions, **plain)
        settings.check()
        return settings

    def check(self) -> None:
        def require(ok: bool, key: str, value: Any, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}", value, allowed)

        require(self.n_trials >= 1, "n_trials", self.n_trials, "an integer >= 1")
        require(self.n_jobs >= 1, "n_jobs", self.n_jobs, "an integer >= 1")
        require(
            0.0 <= self.max_failure_rate <= 1.0,
            "max_failure_rate",
            self.max_failure_rate,
            "a number in [0, 1]",
        )
        require(
            self.executor in ("auto", "process", "launcher", "population"),
            "executor",
            self.executor,
            "auto, process, launcher or population",
        )
        require(
            self.executor != "population" or bool(self.batch_task),
            "batch_task",
            self.batch_task,
            "a module (linesweep's: linesweep.run.batch) with executor=population",
        )
        require(
            isinstance(self.population_size, int) and self.population_size >= 1,
            "population_size",
            self.population_size,
            "an integer >= 1",
        )
        require(bool(self.study_name), "study_name", self.study_name, "a non-empty name")
        require(self.heartbeat_s > 0, "heartbeat_s", self.heartbeat_s, "a number > 0")
        require(
            self.trial_timeout is None
            or (isinstance(self.trial_timeout, (int, float)) and self.trial_timeout > 0),
            "trial_timeout",
            self.trial_timeout,
            "seconds > 0, or null (no timeout)",
        )
        require(
            self.stale_after_s > 2 * self.heartbeat_s,
            "stale_after_s",
            self.stale_after_s,
            f"more than twice hydra.sweeper.heartbeat_s={self.heartbeat_s}",
        )


def app_metrics(config: DictConfig) -> list[str] | None:
    """linesweep's app names its objective values in `objective.metrics`; another app does not."""
    metrics = OmegaConf.select(config, "objective.metrics", default=None)
    if not OmegaConf.is_list(metrics) or not all(m in METRIC_DIRECTIONS for m in metrics):
        return None
    return list(metrics)


def default_preload(linesweep_app: bool) -> list[str]:
    """What every trial would import for itself, imported once in the server trials fork from.

    linesweep's app: its training and pictures (its hand-written step needs no torch.optim; a
    trial with an optimizer outside that family, amsgrad, pays for `torch._dynamo` itself).
    Another app that imported torch may well build a torch optimizer in every trial, and
    torch.optim's step imports `torch._dynamo`, about 1 s a process.
    """
    if linesweep_app:
        return list(trial_server.LINESWEEP_APP)
    if "torch" not in sys.modules:
        return []
    return ["torch._dynamo"]


def value_names(settings: SweepSettings, config: DictConfig) -> list[str]:
    """The objective's names; for linesweep's app, checked against the study's direction.

    linesweep's app names its objective in `objective.metrics`, each with a fixed direction
    (the default direction follows them): a sweep told to go the other way is refused here,
    before any study is touched.
    """
    n = len(settings.directions)
    metrics = app_metrics(config)
    if metrics is None:  # another app: its values have no names
        return ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
    declared = metric_directions(metrics)
    if declared != settings.directions:
        raise ConfigError(
            "hydra.sweeper.direction",
            settings.directions,
            f"the directions of objective.metrics={metrics}: {declared}",
            "leave hydra.sweeper.direction unset (it follows objective.metrics), or set "
            f"hydra.sweeper.direction={declared[0] if len(declared) == 1 else declared}",
        )
    return metrics
