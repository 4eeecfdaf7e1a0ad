"""The Sweeper Hydra instantiates; the work happens in linesweep.sweep (imported lazily, so that
Hydra's start-up, which imports every plugin, stays fast)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LinesweepOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        from linesweep.sweep.composing import ComposingLoader

        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        # The launcher composes each job once per frame, as linesweep's own executors do.
        composing = ComposingLoader(hydra_context.config_loader, config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=composing, callbacks=hydra_context.callbacks),
            task_function=task_function,
            config=config,
        )

    def sweep(self, arguments: list[str]) -> Any:
        from linesweep.sweep.sweeper import run_sweep

        assert self.hydra_context is not None and self.config is not None
        return run_sweep(
            self.settings,
            self.hydra_context,
            self.task_function,
            self.config,
            self.launcher,
            arguments,
        )
