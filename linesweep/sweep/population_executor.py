"""Trials trained together, a population per process, through the app's batch entry point.

    python -m linesweep.train -m hparams_search=channels_lr hydra.sweeper.n_jobs=2
    python -m linesweep.train -m hydra/sweeper=linesweep experiment=hard \
        'model.out_1=int(interval(1,8))' 'optimizer.lr=tag(log,interval(1e-4,1e-1))' \
        hydra.sweeper.population_size=16 hydra.sweeper.n_jobs=2

`PopulationExecutor` holds what it is submitted until the sweeper waits (the sweeper submits a
job for every free slot first, so up to `n_jobs * population_size` trials are asked together),
then asks the app's batch entry point (`hydra.sweeper.batch_task`, a module: linesweep's own
is `linesweep.run.batch`) how the waiting trials may share processes (`describe(config)` once a
trial, `plan(descriptions, most)`), and forks a process per population that calls
`run(configs, on_return, context, task)`: the
app trains them as it knows how, and hands back each trial's `JobReturn` the moment it ends.
This side knows nothing of training: only Hydra's configs and JobReturns, and processes. A trial
the plan leaves out runs in a process of its own, as `ProcessExecutor` runs it (Hydra's
`run_job` and the app's task). At most `n_jobs` processes run at once.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from omegaconf.basecontainer import BaseContainer

from linesweep.core.errors import ConfigError
from linesweep.core.status import Status
from linesweep.sweep.executors import OutcomeHandler, ProcessExecutor, TrialJob
from linesweep.sweep.interrupts import deferred
from linesweep.sweep.outcomes import JobOutcome
from linesweep.sweep.stalls import number_ranges
from linesweep.sweep.workers import (
    TaskReference,
    enter_child,
    portable,
    signal_name,
    start,
    stop_processes,
)

log = logging.getLogger(__name__)


def load_batch_task(name: str) -> ModuleType:
    """The app's batch entry point, a module with `plan` and `run`; ConfigError if it is none."""
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        raise ConfigError(
            "hydra.sweeper.batch_task", name, f"a module this Python can import ({err})"
        ) from None
    missing = [f for f in ("describe", "plan", "run") if not callable(getattr(module, f, None))]
    if missing:
        raise ConfigError(
            "hydra.sweeper.batch_task",
            name,
            "a module with describe(config), plan(descriptions, most) and "
            f"run(configs, on_return, context, task); it has no {' or '.join(missing)}",
        )
    return module


@dataclass
class _Population:
    jobs: dict[int, Path]  # the members without an outcome yet: number -> output folder
    configs: dict[int, DictConfig]  # every member's composed config, attached to its return
    process: Any  # multiprocessing.Process
    results: multiprocessing.connection.Connection
    alive: multiprocessing.connection.Connection
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, eq=False)
class _Pending:
    job: TrialJob
    config: DictConfig
    output_dir: Path
    description: Any  # what the app's `describe` made of the config, for its `plan`


class PopulationExecutor(ProcessExecutor):
    """Populations of up to `population_size` trials, and solo trials, `n_jobs` processes."""

    def __init__(
        self,
        hydra_context: HydraContext,
        config: DictConfig,
        task: TaskFunction,
        n_jobs: int,
        population_size: int,
        preload: list[str],
        batch_task: str,
    ) -> None:
        self.batch, self.batch_task = load_batch_task(batch_task), batch_task
        super().__init__(hydra_context, config, task, n_jobs, preload)
        self.processes, self.population_size = n_jobs, population_size
        self.capacity = n_jobs * population_size
        self._pending: list[_Pending] = []
        self._populations: list[_Population] = []
        self._said_alone = False

    def submit(self, job: TrialJob) -> None:
        composed = self._compose_or_refuse(job)
        if composed is not None:
            config, output_dir = composed
            self._pending.append(_Pending(job, config, output_dir, self.batch.describe(config)))

    def running(self) -> list[int]:
        return [
            *super().running(),
            *(n for p in self._populations for n in p.jobs),
            *(p.job.number for p in self._pending),
        ]

    def _start_pending(self) -> None:
        """While fewer than n_jobs processes run: the app's plan of the waiting trials, and its
        populations started in the plan's order, as many as there are free processes; a trial
        in none of them in a process of its own, after them."""
        free = self.processes - len(self._running) - len(self._populations)
        if not self._pending or free <= 0:
            return
        described = [p.description for p in self._pending]
        try:
            planned = self.batch.plan(described, self.population_size, free)
        except Exception as err:  # the app's code: a bug there must not end the sweep
            log.warning(
                "%s.plan failed (%s: %s): these trials train in processes of their own",
                self.batch_task, type(err).__name__, err,
            )  # fmt: skip
            planned = []
        placed = {i for trials, _ in planned for i in trials}
        starts: list[tuple[list[int], str | None]] = [
            *((trials, note) for trials, note in planned),
            *(([i], None) for i in range(len(self._pending)) if i not in placed),
        ]
        started: list[_Pending] = []
        for trials, note in starts[:free]:
            chosen = [self._pending[i] for i in sorted(trials)]
            started += chosen
            if note is not None:
                self._start_population(chosen, note)
                continue
            if not self._said_alone:  # the app trains it with no other: Hydra's run_job
                log.info(
                    "trial %d (and any like it) runs in a process of its own: %s trains it "
                    "with no other", chosen[0].job.number, self.batch_task,
                )  # fmt: skip
                self._said_alone = True
            self._start(chosen[0].job, chosen[0].config, chosen[0].output_dir)
        gone = {id(p) for p in started}
        self._pending = [p for p in self._pending if id(p) not in gone]

    def _start_population(self, group: list[_Pending], note: str) -> None:
        singletons = Singleton.get_state()["instances"]
        results_recv, results_send = self._context.Pipe(duplex=False)
        alive_recv, alive_send = self._context.Pipe(duplex=False)
        configs = [p.config for p in group]
        environment = dict(os.environ)
        job = (configs, singletons, environment, self.batch_task, self.hydra_context, self._task)
        process = self._context.Process(
            target=_population_main,
            args=(results_send, alive_recv, job),
            name=f"population-{group[0].job.number}",
        )
        start(process)
        results_send.close()
        alive_recv.close()
        jobs = {p.job.number: p.output_dir for p in group}
        by_number = {p.job.number: p.config for p in group}
        self._populations.append(_Population(jobs, by_number, process, results_recv, alive_send))
        if len(jobs) > 1:
            log.info("trials %s train as one population (%s)", number_ranges(list(jobs)), note)
        else:
            log.info("trial %d trains in a process of its own", group[0].job.number)

    def wait(self, timeout: float, on_outcome: OutcomeHandler) -> None:
        self._start_pending()
        if self._hand_over_refused(on_outcome) or (not self._running and not self._populations):
            return
        by_handle: dict[Any, Any] = {}
        for item in [*self._running.values(), *self._populations]:
            by_handle[item.results] = item
            by_handle[item.process.sentinel] = item
        ready = multiprocessing.connection.wait(list(by_handle), timeout=timeout)
        for item in {id(by_handle[h]): by_handle[h] for h in ready}.values():
            if isinstance(item, _Population):
                self._collect_population(item, on_outcome)
            else:
                with deferred():  # collected and recorded as one step
                    on_outcome(self._collect(item))

    def _collect_population(self, pop: _Population, on_outcome: OutcomeHandler) -> None:
        """Hand over every member that reported; once the process is gone, the rest died."""
        self._hand_over(pop, on_outcome)
        if pop.jobs and pop.process.is_alive():
            return
        pop.process.join(timeout=10 if not pop.jobs else 1)
        if pop.process.is_alive():  # reported everything and hung: done either way
            pop.process.kill()
            pop.process.join()
        # What it sent between the first read and its exit (the handler above takes a while:
        # the journal, trials.csv): read the pipe again before calling any member dead.
        self._hand_over(pop, on_outcome)
        died = signal_name(pop.process.exitcode)
        for number, output_dir in list(pop.jobs.items()):
            with deferred():
                on_outcome(JobOutcome(number, None, output_dir, died=died))
                pop.jobs.pop(number)
        self._end(pop)

    @staticmethod
    def _hand_over(pop: _Population, on_outcome: OutcomeHandler) -> None:
        for number, ret in _received(pop):
            with deferred():
                on_outcome(_member_outcome(pop, number, ret))

    def _end(self, pop: _Population) -> None:
        pop.results.close()
        pop.alive.close()
        self._populations.remove(pop)

    def executing(self) -> dict[int, float]:
        members = {n: pop.started for pop in self._populations for n in pop.jobs}
        return {**super().executing(), **members}

    def stop(self, numbers: Sequence[int], reason: str) -> list[JobOutcome]:
        """End trials that stalled; a population stalls whole, so all its open members end."""
        outcomes = super().stop(numbers, reason)
        for pop in [p for p in self._populations if set(p.jobs) & set(numbers)]:
            pop.process.kill()
            pop.process.join()
            for number, ret in _received(pop):  # finished before it stalled: their results stand
                outcomes.append(_member_outcome(pop, number, ret))
            outcomes += [
                JobOutcome(number, None, out, died=reason, timed_out=True)
                for number, out in pop.jobs.items()
            ]
            pop.jobs.clear()
            self._end(pop)
        return outcomes

    def interrupt(self) -> list[JobOutcome]:
        outcomes = super().interrupt()  # the solo trials
        pops = list(self._populations)
        stop_processes([pop.process for pop in pops])  # each member records `interrupted`
        for pop in pops:
            for number, ret in _received(pop):  # finished before the signal: their results stand
                outcomes.append(_member_outcome(pop, number, ret))
            for number, out in pop.jobs.items():
                outcomes.append(JobOutcome(number, None, out, died=Status.INTERRUPTED))
            self._end(pop)
        outcomes.extend(
            JobOutcome(p.job.number, None, p.output_dir, died=Status.INTERRUPTED)
            for p in self._pending
        )
        self._pending = []
        return outcomes

    def close(self) -> None:
        if self.running():
            self.interrupt()


def _member_outcome(pop: _Population, number: int, ret: JobReturn) -> JobOutcome:
    """Member `number`'s outcome from the result it sent, its config attached."""
    ret.cfg = pop.configs[number]
    return JobOutcome(number, ret, pop.jobs.pop(number))


def _received(pop: _Population) -> list[tuple[int, JobReturn]]:
    """The member results waiting in the population's pipe."""
    found = []
    with contextlib.suppress(EOFError, OSError):
        while pop.results.poll():
            found.append(pop.results.recv())
    return found


# ------------------------------------------------------------------ the population's process


def _population_main(
    results: multiprocessing.connection.Connection,
    alive: multiprocessing.connection.Connection,
    job: tuple[
        list[DictConfig], dict, dict[str, str], str, HydraContext, TaskFunction | TaskReference
    ],
) -> None:
    """Body of a population's process: the app's batch entry point trains, results go back."""
    configs, singletons, environment, batch_task, context, task = job
    enter_child(alive, environment)

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)  # each open member records `interrupted`

    def send(i: int, ret: JobReturn) -> None:
        results.send((int(configs[i].hydra.job.num), portable(ret)))

    # A SIGTERM (the sweep stopping on Ctrl-C) may come while the process still starts, before
    # any member is open: it ends quietly, and the sweep records the members interrupted.
    with contextlib.suppress(KeyboardInterrupt):
        setup_globals()
        Singleton.set_state(
            {"instances": singletons, "omegaconf_resolvers": BaseContainer._resolvers}
        )
        batch = importlib.import_module(batch_task)
        function = task.resolve() if isinstance(task, TaskReference) else task
        batch.run(configs, send, context, function)
    logging.shutdown()
    results.close()
