"""What Hydra's `run_job` does around a job's task, for many of a sweep's jobs in one call.

Why this module: Hydra's public `hydra.core.utils.run_job` runs one task function for one
job: it sets the job's output folder in `hydra.runtime.output_dir`, makes it, saves the three
`.hydra/` files, configures logging to the job's log file, applies `hydra.job.env_set`, calls
the callbacks' `on_job_start`, the task and `on_job_end`, and returns a `JobReturn`. A
population trains many jobs in one call, so each job is set up here as `run_job` would set it
up, through Hydra's public API only (`HydraConfig`, `configure_log`, `env_override`,
`JobReturn`, the context's callbacks). Two things differ, on purpose:

* `.hydra/*.yaml` are written as Hydra's private `_save_config` writes them (`OmegaConf.to_yaml`),
  but through linesweep's atomic writer, which creates a new file and never opens one that is
  there (a link planted in the folder is replaced, not followed).
* Each job's log file receives only its own run's lines: a population's lines about all its
  members go to the console (the process's stderr), not into every member's `train.log`.
* `hydra.job.chdir=true` cannot hold for several jobs in one process: the planner trains such
  trials alone (`batch.plan`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from linesweep.core.files import RunLogHandler, atomic_write_text, make_folder
from linesweep.core.trial_link import ENV_VAR, TrialLink
from linesweep.run.pipeline import RunSpec


@dataclass
class Job:
    """One of a sweep's jobs, set up to train: Hydra's config, the task's side, its return."""

    config: DictConfig  # the whole composed config, hydra node included
    spec: RunSpec
    ret: JobReturn


def prepare(config: DictConfig, storages: dict[str, Any] | None = None) -> Job:
    """The job's folder, `.hydra/` files and trial, as `run_job` makes them before the task;
    the trials of jobs prepared with one `storages` share their storage (`TrialLink`)."""
    HydraConfig.instance().set_config(config)
    output_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir.resolve())
    HydraConfig.instance().set_config(config)
    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    overrides = OmegaConf.to_container(config.hydra.overrides.task)
    # The return carries the result alone: the sweep holds every job's config already and
    # attaches it, so no config is copied, converted and pickled back.
    ret = JobReturn(
        overrides=overrides,  # type: ignore[arg-type]
        working_dir=os.getcwd(),
        task_name=str(config.hydra.job.name),
    )
    output_dir.mkdir(parents=True, exist_ok=True)  # the sweeper checked it: new, no link
    if config.hydra.output_subdir is not None:
        hydra_output = make_folder(output_dir / str(config.hydra.output_subdir))
        for name, node in (
            ("config.yaml", task_cfg),
            ("hydra.yaml", HydraConfig.instance().cfg),
            ("overrides.yaml", config.hydra.overrides.task),
        ):
            atomic_write_text(hydra_output / name, OmegaConf.to_yaml(node))
    trial_env = (config.hydra.job.env_set or {}).get(ENV_VAR)
    with env_override({ENV_VAR: str(trial_env)} if trial_env else {}):
        trial = TrialLink.from_environment(storages) if trial_env else None
    as_typed = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return Job(config, RunSpec(task_cfg, output_dir, trial, list(as_typed)), ret)  # type: ignore[arg-type]


def returned(job: Job, outcome: object) -> JobReturn:
    """The job's JobReturn for the task's outcome: its value, or the exception it ended with."""
    failed = isinstance(outcome, BaseException)
    job.ret.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
    job.ret._return_value = outcome if failed else outcome.value  # type: ignore[attr-defined]
    return job.ret


@contextlib.contextmanager
def jobs_running(
    jobs: Sequence[Job], context: HydraContext | None, task: TaskFunction | None
) -> Iterator[None]:
    """Logging, environment and callbacks for `jobs` running together in this process.

    The console and log format are the first job's (a sweep's jobs share them); each job's log
    file gets its own run's lines (`linesweep.run.pipeline` tags them). `hydra.job.env_set` is
    the first job's, less each job's own trial variable (a job's TrialLink holds its own).
    """
    first = jobs[0].config
    HydraConfig.instance().set_config(first)
    configure_log(first.hydra.job_logging, first.hydra.verbose)
    _log_files_of_their_own(jobs)
    env = {k: v for k, v in (first.hydra.job.env_set or {}).items() if k != ENV_VAR}
    callbacks = context.callbacks if context is not None else None
    with env_override(env):
        for job in jobs:
            if callbacks is not None:
                callbacks.on_job_start(config=job.config, task_function=task)
        try:
            yield
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            if callbacks is not None:
                for job in jobs:
                    callbacks.on_job_end(config=job.config, job_return=job.ret)


class _Own(logging.Filter):
    """Lets through the lines of one run (tagged `linesweep_run`), nothing of the others'."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = str(run_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "linesweep_run", None) == self.run_dir


def _log_files_of_their_own(jobs: Sequence[Job]) -> None:
    """Replace the log file Hydra opened in the first job's folder by one file per job, in
    the same place of each job's folder, each keeping its own run's lines only."""
    root, file_only = logging.getLogger(), logging.getLogger("linesweep.file")
    first = jobs[0].spec.run_dir.resolve()
    for opened in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        path = Path(opened.baseFilename)
        if not path.is_relative_to(first):
            continue  # a log file outside the jobs' folders: shared, as configured
        for logger in (root, file_only):
            logger.removeHandler(opened)
        opened.close()
        for job in jobs:
            handler = RunLogHandler(job.spec.run_dir.resolve() / path.relative_to(first))
            handler.setFormatter(opened.formatter)
            handler.setLevel(opened.level)
            handler.addFilter(_Own(job.spec.run_dir))
            root.addHandler(handler)
            file_only.addHandler(handler)
