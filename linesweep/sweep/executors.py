"""Running trials: the sweeper hands over jobs and collects outcomes, whatever runs them.

* `ProcessExecutor` keeps `n_jobs` trials running at all times, each in its own process
  (workers.py), started as soon as a slot frees (no batch waits for its slowest trial). A
  trial that dies (an out-of-memory kill, a segfault) takes nothing else with it.
* `PopulationExecutor` (population_executor.py, the default for linesweep's app) has the app's
  batch entry point train the trials that can share a process as one population each, and the
  others as `ProcessExecutor` does.
* `LauncherExecutor` hands batches of `n_jobs` to Hydra's configured launcher: the basic launcher
  runs them one by one in this process, hydra-joblib-launcher in parallel, and
  hydra-submitit-launcher on a SLURM cluster.

All speak the same small interface (`submit`, `wait`, `interrupt`, `executing`, `stop`). The
sweeper submits a job for every free slot, then waits: an executor may hold what it was
submitted until `wait`, so the jobs submitted between two waits are the group it can train
together (the sweeper only had to let it say how many that may be: `capacity`). `wait` hands
each finished job to the sweeper's callback inside `deferred()`: a signal cannot fall between
collecting a trial and recording it.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from linesweep.core.errors import ConfigError
from linesweep.core.status import Status
from linesweep.sweep.composing import SweepComposer
from linesweep.sweep.interrupts import deferred
from linesweep.sweep.outcomes import JobOutcome
from linesweep.sweep.workers import (
    signal_name,
    start,
    start_method,
    stop_processes,
    worker_main,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialJob:
    number: int  # the Optuna trial number; also the job's number and folder name
    overrides: tuple[str, ...]


OutcomeHandler = Callable[[JobOutcome], None]


class TrialExecutor(abc.ABC):
    """Runs trial jobs; `capacity` of them may be in flight at once."""

    capacity: int

    @abc.abstractmethod
    def submit(self, job: TrialJob) -> None: ...

    @abc.abstractmethod
    def running(self) -> list[int]:
        """Numbers of the submitted jobs without an outcome yet."""

    @abc.abstractmethod
    def wait(self, timeout: float, on_outcome: OutcomeHandler) -> None:
        """Pass every job that finishes within `timeout` seconds to `on_outcome`."""

    @abc.abstractmethod
    def interrupt(self) -> list[JobOutcome]:
        """Stop every running job; their outcomes say they died."""

    def executing(self) -> dict[int, float]:
        """The jobs whose process runs now: number -> when it started (time.monotonic)."""
        return {}

    def stop(self, numbers: Sequence[int], reason: str) -> list[JobOutcome]:
        """End the jobs `numbers` (and any that share their process) for `reason`: timed out.

        An executor that cannot (Hydra's launchers run the jobs) ends none.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional
        """Release resources."""


def check_preload(modules: list[str]) -> None:
    """Refuse, in one line, a `hydra.sweeper.preload` module that cannot be found."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package is missing, or an empty name
            found = False
        if not found:
            raise ConfigError(
                "hydra.sweeper.preload",
                list(modules),
                f"modules this Python can import, and {name!r} is not one",
                "fix or remove it (hydra.sweeper.preload=[] preloads nothing)",
            )


def output_dir_of(job_return: JobReturn | None) -> Path | None:
    if job_return is None or job_return.hydra_cfg is None:
        return None
    return Path(job_return.hydra_cfg.hydra.runtime.output_dir)


class LauncherExecutor(TrialExecutor):
    """Batches of up to `capacity` jobs through Hydra's launcher (blocking per batch).

    A batch may run for a long time (a SLURM queue): `heartbeat` is called from a helper thread
    every `heartbeat_s` meanwhile, so that other workers do not take its trials for dead. Hydra's
    basic launcher runs jobs in this process, and leaves the logging set up for the last one:
    the sweep's own logging (`hydra` holds its config) is restored after every batch.
    """

    def __init__(
        self,
        launcher: Launcher,
        capacity: int,
        heartbeat: Callable[[], None],
        heartbeat_s: float,
        hydra: DictConfig,
    ) -> None:
        self.launcher, self.capacity = launcher, capacity
        self._heartbeat, self._heartbeat_s = heartbeat, heartbeat_s
        self._hydra = hydra
        self._pending: list[TrialJob] = []

    def submit(self, job: TrialJob) -> None:
        self._pending.append(job)

    def running(self) -> list[int]:
        return [job.number for job in self._pending]

    def wait(self, timeout: float, on_outcome: OutcomeHandler) -> None:
        batch = self._pending
        if not batch:
            return
        done = threading.Event()
        beating = threading.Thread(target=self._beat_until, args=(done,), daemon=True)
        beating.start()
        try:
            returns = self.launcher.launch(
                [list(j.overrides) for j in batch], initial_job_idx=batch[0].number
            )
        finally:
            done.set()
            beating.join()
            configure_log(self._hydra.hydra_logging, self._hydra.verbose)
        with deferred():
            self._pending = []
            for job, ret in zip(batch, returns, strict=True):
                on_outcome(JobOutcome(job.number, ret, output_dir_of(ret)))

    def _beat_until(self, done: threading.Event) -> None:
        while not done.wait(self._heartbeat_s):
            self._heartbeat()

    def interrupt(self) -> list[JobOutcome]:
        interrupted = [
            JobOutcome(j.number, None, None, died=Status.INTERRUPTED) for j in self._pending
        ]
        self._pending = []
        return interrupted


def refusal(err: Exception, overrides: Sequence[str]) -> ConfigError:
    """Hydra's refusal to compose a trial's overrides, as one line naming the override."""
    cause = err.__cause__ or err
    why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    named = re.search(r"override (\S+?)=(\S*)", str(err))
    if named:
        return ConfigError(named[1], named[2], f"a value Hydra can compose ({why})")
    return ConfigError("overrides", list(overrides), f"overrides Hydra can compose ({why})")


@dataclass
class _Running:
    job: TrialJob
    process: Any  # multiprocessing.Process
    results: multiprocessing.connection.Connection
    alive: multiprocessing.connection.Connection
    output_dir: Path
    started: float = field(default_factory=time.monotonic)


class ProcessExecutor(TrialExecutor):
    """One process per trial, `capacity` at a time."""

    def __init__(
        self,
        hydra_context: HydraContext,
        config: DictConfig,
        task: TaskFunction,
        capacity: int,
        preload: list[str],
    ) -> None:
        self.hydra_context, self.config, self.capacity = hydra_context, config, capacity
        self._composer = SweepComposer(hydra_context.config_loader, config)
        shared = (hydra_context, Singleton.get_state()["instances"])
        self._context, self._task = start_method(task, preload, shared)
        self._running: dict[int, _Running] = {}
        self._refused: list[JobOutcome] = []  # composing failed: handed over at the next wait

    def submit(self, job: TrialJob) -> None:
        composed = self._compose_or_refuse(job)
        if composed is not None:
            self._start(job, *composed)

    def _compose_or_refuse(self, job: TrialJob) -> tuple[DictConfig, Path] | None:
        """`_compose`, or None when Hydra cannot compose the trial's overrides (a sampled value
        of the wrong type, `trainer.batch_size=abc`): that trial alone is refused, in one line,
        and the sweep goes on."""
        try:
            return self._compose(job)
        except (HydraException, OmegaConfBaseException) as err:
            ret = JobReturn(status=JobStatus.FAILED, _return_value=refusal(err, job.overrides))
            folder = Path(str(self.config.hydra.sweep.dir)) / str(job.number)
            self._refused.append(JobOutcome(job.number, ret, folder))
            return None

    def _hand_over_refused(self, on_outcome: OutcomeHandler) -> bool:
        """Pass the refused jobs' outcomes on; whether there were any."""
        refused, self._refused = self._refused, []
        for outcome in refused:
            with deferred():
                on_outcome(outcome)
        return bool(refused)

    def _compose(self, job: TrialJob) -> tuple[DictConfig, Path]:
        """The job's whole config (hydra node included) and its output folder.

        Exactly what Hydra's `load_sweep_config` gives, composed fully once per frame of
        overrides (composing.py): a trial that changes only values costs a copy, not 150 ms.
        """
        config = self._composer.compose(job.overrides)
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{job.number}"
            config.hydra.job.num = job.number
            # Resolved here, once: `${now:...}` must not be re-evaluated in the trial's process.
            config.hydra.sweep.dir = str(Path(str(config.hydra.sweep.dir)).resolve())
        return config, Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)

    def _start(self, job: TrialJob, config: DictConfig, output_dir: Path) -> None:
        singletons = Singleton.get_state()["instances"]
        results_recv, results_send = self._context.Pipe(duplex=False)
        alive_recv, alive_send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(
                results_send,
                alive_recv,
                (self.hydra_context, config, self._task, singletons, dict(os.environ)),
            ),
            name=f"trial-{job.number}",
        )
        start(process)
        results_send.close()
        alive_recv.close()
        self._running[job.number] = _Running(job, process, results_recv, alive_send, output_dir)

    def running(self) -> list[int]:
        return [*self._running, *(o.number for o in self._refused)]

    def wait(self, timeout: float, on_outcome: OutcomeHandler) -> None:
        if self._hand_over_refused(on_outcome) or not self._running:
            return
        by_handle: dict[Any, _Running] = {}
        for run in self._running.values():
            by_handle[run.results] = run
            by_handle[run.process.sentinel] = run
        ready = multiprocessing.connection.wait(list(by_handle), timeout=timeout)
        for run in {id(by_handle[h]): by_handle[h] for h in ready}.values():
            with deferred():  # collected and recorded as one step
                on_outcome(self._collect(run))

    def _collect(self, run: _Running) -> JobOutcome:
        job_return, died = None, None
        try:
            if run.results.poll():
                job_return = run.results.recv()
        except (EOFError, OSError):
            pass
        run.process.join(timeout=10 if job_return is not None else 1)
        if run.process.is_alive():  # reported and hung, or silent and hung: it is done either way
            run.process.kill()
            run.process.join()
        if job_return is None:
            died = signal_name(run.process.exitcode)
        self._finish(run)
        return JobOutcome(
            number=run.job.number,
            job_return=job_return,
            output_dir=output_dir_of(job_return) or run.output_dir,
            died=died,
        )

    def _finish(self, run: _Running) -> None:
        run.results.close()
        run.alive.close()
        self._running.pop(run.job.number, None)

    def executing(self) -> dict[int, float]:
        return {number: run.started for number, run in self._running.items()}

    def stop(self, numbers: Sequence[int], reason: str) -> list[JobOutcome]:
        """SIGKILL: a stalled process (stopped, or stuck in a kernel call) may never run a
        SIGTERM handler. Its folder keeps `running`, which compare reads as killed."""
        outcomes = []
        for number in numbers:
            run = self._running.get(number)
            if run is None:
                continue
            run.process.kill()
            run.process.join()
            self._finish(run)
            outcomes.append(JobOutcome(number, None, run.output_dir, died=reason, timed_out=True))
        return outcomes

    def interrupt(self) -> list[JobOutcome]:
        runs = list(self._running.values())
        stop_processes([run.process for run in runs])
        outcomes, self._refused = self._refused, []
        for run in runs:
            self._finish(run)
            outcomes.append(
                JobOutcome(run.job.number, None, run.output_dir, died=Status.INTERRUPTED)
            )
        return outcomes

    def close(self) -> None:
        if self._running:
            self.interrupt()
