"""Which executor runs a sweep's trials: `hydra.sweeper.executor`, the app and the launcher.

auto (the default): the population executor for an app that names a batch entry point
(`hydra.sweeper.batch_task`: linesweep's own app) under Hydra's basic launcher, the process
executor for any other app; process and population as named; any other launcher (joblib,
submitit) runs the trials itself, through `LauncherExecutor`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from linesweep.sweep.executors import LauncherExecutor, ProcessExecutor, TrialExecutor
from linesweep.sweep.population_executor import PopulationExecutor
from linesweep.sweep.settings import SweepSettings, app_metrics

log = logging.getLogger(__name__)


def make_executor(
    s: SweepSettings,
    hydra_context: HydraContext,
    config: DictConfig,
    task: TaskFunction,
    launcher: Launcher,
    heartbeat: Callable[[], None],
) -> TrialExecutor:
    """The executor the settings, the app and the configured launcher call for."""
    launcher_name = OmegaConf.select(config, "hydra.launcher._target_", default="")
    basic = launcher_name.endswith("BasicLauncher")
    executor = s.executor
    if executor == "auto":  # populations for an app with a batch entry point
        linesweep_app = app_metrics(config) is not None
        executor = "population" if linesweep_app and s.batch_task and basic else "process"
    if executor == "population" and basic:
        assert s.batch_task is not None
        return PopulationExecutor(
            hydra_context, config, task, s.n_jobs, s.population_size,
            s.preload, s.batch_task,
        )  # fmt: skip
    if executor in ("process", "population") and basic:
        try:
            return ProcessExecutor(hydra_context, config, task, s.n_jobs, s.preload)
        except ValueError as err:
            log.info("running trials through Hydra's launcher: %s", err)
    elif executor in ("process", "population"):
        log.info("running trials through the configured Hydra launcher (%s)", launcher_name)
    return LauncherExecutor(launcher, s.n_jobs, heartbeat, s.heartbeat_s, config.hydra)
