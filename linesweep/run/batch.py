"""linesweep's batch entry point: a sweep's trials trained as populations, one JobReturn each.

    python -m linesweep.train -m hparams_search=channels_lr      # hydra.sweeper.executor=auto

The sweeper (`linesweep.sweep`) knows only Hydra's `JobReturn`. For an app that names a batch
entry point (`hydra.sweeper.batch_task`, this module for linesweep's own app), its population
executor composes each trial's config and has it `describe`d, asks `plan` how the waiting
trials may share processes, forks a process per population, and there calls `run`, which hands
back each trial's JobReturn the moment it ends. Everything about what may train together and
how each member is set up lives here, with the run: the grouping rules
(`linesweep.run.grouping`), the Hydra job set-up (`linesweep.run.hydra_jobs`) and the training
itself (`linesweep.run.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from linesweep.core.errors import LinesweepError
from linesweep.run.config import TrainConfig
from linesweep.run.grouping import plan_populations
from linesweep.run.shapes import plan_cnn
from linesweep.run.validation import to_train_config

ReturnHandler = Callable[[int, JobReturn], None]


def describe(config: DictConfig) -> TrainConfig | None:
    """What `plan` needs to know of one composed trial config (hydra node included), worked
    out once, when the trial is submitted; None: it trains alone, through Hydra's run_job and
    the app's task (a config the task refuses, or an architecture it finds impossible, which
    it records as such; `hydra.job.chdir`, which one process cannot honour for several jobs)."""
    if OmegaConf.select(config, "hydra.job.chdir", default=False):
        return None
    try:
        cfg = to_train_config(config)  # which leaves the hydra node out itself
        plan_cnn(cfg.model, cfg.data.image_size)  # what `plan` estimates from, for every width
    except (LinesweepError, ValueError):
        return None
    return cfg


def plan(
    described: Sequence[TrainConfig | None], most: int, processes: int = 1
) -> list[tuple[list[int], str]]:
    """Split waiting trials (as `describe` saw them) into populations of at most `most` trials
    for `processes` processes at once, in the order to start them:
    (the trials' places in `described`, how the population was formed) for each. A trial in
    none of them trains alone (also an optimizer outside the hand-written step's family)."""
    return [(p.trials, p.note) for p in plan_populations(described, most, processes)]


def run(
    configs: Sequence[DictConfig],
    on_return: ReturnHandler,
    context: HydraContext | None = None,
    task: TaskFunction | None = None,
) -> None:
    """Train the jobs of `configs` as one population, each set up as Hydra's run_job would;
    `on_return(i, JobReturn)` the moment job i ends (a KeyboardInterrupt: every open job's
    return says so, then it propagates).

    Only here, in the population's own process, is torch imported: the sweep process calls
    `describe` and `plan` alone, and never loads it (its trials' processes fork from a server
    that loaded it while the sweep composed them: linesweep.sweep.trial_server)."""
    from linesweep.run.hydra_jobs import jobs_running, prepare, returned
    from linesweep.run.pipeline import train_runs

    storages: dict[str, object] = {}  # one per study's storage, for all the jobs' trials
    jobs = [prepare(config, storages) for config in configs]
    plans_seen = Path(str(configs[0].hydra.sweep.dir)) / ".plans"
    with jobs_running(jobs, context, task):
        train_runs(
            [job.spec for job in jobs],
            lambda i, outcome: on_return(i, returned(jobs[i], outcome)),
            plans_seen,
        )
