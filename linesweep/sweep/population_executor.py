"""Trials that share an architecture, trained as one population in one process per group.

    python -m linesweep.train -m hydra/sweeper=linesweep experiment=hard \
        'optimizer.lr=tag(log,interval(1e-4,1e-1))' hydra.sweeper.n_trials=32 \
        hydra.sweeper.executor=population hydra.sweeper.population_size=16 hydra.sweeper.n_jobs=2

`PopulationExecutor` holds what it is submitted until the sweeper waits (the sweeper submits a
job for every free slot first, so up to `n_jobs * population_size` trials are asked together),
then groups the trials whose composed configs differ only in the optimizer's hyperparameters
(the learning rate, weight decay, betas, momentum...; not the optimizer) and `seed`: each
group of up to `population_size` trains in one forked process as one batched model
(`linesweep.run.trials`), every trial still with its own folder, record, Optuna trial and
pruning decision, handed back the moment it ends. A trial that shares its configuration with no
other waiting trial (another architecture, another optimizer setting, replicates) runs in a
process of its own, as `ProcessExecutor` runs it. At most `n_jobs` processes run at once.

Only linesweep's own app trains populations: the worker calls its task directly, doing for
each member what Hydra's `run_job` does for a job (the output folder, `.hydra/`, the log file).

Why one module over 300 lines: grouping, the worker processes and each member's job set-up are
one mechanism; the training itself is in `linesweep.run.trials`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    _save_config,
    configure_log,
    env_override,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.basecontainer import BaseContainer

from linesweep.core.errors import LinesweepError
from linesweep.core.trial_link import ENV_VAR, TrialLink
from linesweep.run.step import Unsupported, UpdateRule
from linesweep.run.trials import Member, run_members
from linesweep.run.validation import to_train_config
from linesweep.sweep.executors import (
    OutcomeHandler,
    ProcessExecutor,
    TrialJob,
    _exit_with_parent,
    _portable,
    _signal_name,
    stop_processes,
)
from linesweep.sweep.interrupts import deferred, reset_in_child
from linesweep.sweep.outcomes import JobOutcome

log = logging.getLogger(__name__)


def member_may_differ(key: str) -> bool:
    """Whether a population's members may differ in `key`: the seed (each member draws its own
    seeds, and data when its seed differs) and the optimizer's hyperparameters (the update
    keeps a rule per member), not the optimizer itself (`optimizer._target_`, the group)."""
    key = key.lstrip("+~")
    return key == "seed" or (key.startswith("optimizer.") and key != "optimizer._target_")


MEMBER_KEYS_SHOWN = "seed and optimizer.<hyperparameter> (lr, weight_decay, betas, momentum, ...)"


def population_key(config: DictConfig) -> str | None:
    """What trials must share to train together: their config less the keys members may differ
    in (`member_may_differ`); None: alone.

    A config the task would refuse, replicates, or an optimizer outside the hand-written step's
    family trains alone, as the process executor runs it (and records why it could not run).
    """
    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        typed = to_train_config(task_cfg)
        UpdateRule.of_config(typed.optimizer)
        plain = OmegaConf.to_container(task_cfg, resolve=True)
    except (LinesweepError, Unsupported, ValueError):
        return None
    assert isinstance(plain, dict)
    if typed.replicates != 1:
        return None
    plain.pop("seed", None)
    plain["optimizer"] = {"_target_": plain["optimizer"].get("_target_")}  # one kind of update
    return json.dumps(plain, sort_keys=True, default=str)


@dataclass
class _Population:
    jobs: dict[int, Path]  # the members without an outcome yet: number -> output folder
    configs: dict[int, DictConfig]  # every member's composed config, attached to its return
    process: Any  # multiprocessing.Process
    results: multiprocessing.connection.Connection
    alive: multiprocessing.connection.Connection


@dataclass(frozen=True)
class _Pending:
    job: TrialJob
    config: DictConfig
    output_dir: Path
    key: str | None


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
    ) -> None:
        super().__init__(hydra_context, config, task, n_jobs, preload)
        self.processes, self.population_size = n_jobs, population_size
        self.capacity = n_jobs * population_size
        self._pending: list[_Pending] = []
        self._populations: list[_Population] = []

    def submit(self, job: TrialJob) -> None:
        composed = self._compose_or_refuse(job)
        if composed is not None:
            config, output_dir = composed
            self._pending.append(_Pending(job, config, output_dir, population_key(config)))

    def running(self) -> list[int]:
        return [
            *super().running(),
            *(n for p in self._populations for n in p.jobs),
            *(p.job.number for p in self._pending),
        ]

    def _start_pending(self) -> None:
        """Start waiting jobs, the oldest's group first, while fewer than n_jobs processes run."""
        while self._pending and len(self._running) + len(self._populations) < self.processes:
            key = self._pending[0].key
            group = [p for p in self._pending if key is not None and p.key == key]
            group = group[: self.population_size] or self._pending[:1]
            for item in group:
                self._pending.remove(item)
            if len(group) == 1:
                self._start(group[0].job, group[0].config, group[0].output_dir)
            else:
                self._start_population(group)

    def _start_population(self, group: list[_Pending]) -> None:
        singletons = Singleton.get_state()["instances"]
        results_recv, results_send = self._context.Pipe(duplex=False)
        alive_recv, alive_send = self._context.Pipe(duplex=False)
        configs = [p.config for p in group]
        process = self._context.Process(
            target=_population_main,
            args=(results_send, alive_recv, (configs, singletons, os.getpid())),
            name=f"population-{group[0].job.number}",
        )
        process.start()
        results_send.close()
        alive_recv.close()
        jobs = {p.job.number: p.output_dir for p in group}
        configs = {p.job.number: p.config for p in group}
        self._populations.append(_Population(jobs, configs, process, results_recv, alive_send))
        log.info(
            "trials %s train as one population", ", ".join(str(n) for n in jobs)
        )  # fmt: skip

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
        died = _signal_name(pop.process.exitcode)
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

    def interrupt(self) -> list[JobOutcome]:
        outcomes = super().interrupt()  # the solo trials
        pops = list(self._populations)
        stop_processes([pop.process for pop in pops])  # each member records `interrupted`
        for pop in pops:
            for number, ret in _received(pop):  # finished before the signal: their results stand
                outcomes.append(_member_outcome(pop, number, ret))
            for number, out in pop.jobs.items():
                outcomes.append(JobOutcome(number, None, out, died="interrupted"))
            self._end(pop)
        outcomes.extend(
            JobOutcome(p.job.number, None, p.output_dir, died="interrupted") for p in self._pending
        )
        self._pending = []
        return outcomes

    def close(self) -> None:
        if self.running():
            self.interrupt()


def _member_outcome(pop: _Population, number: int, ret: JobReturn) -> JobOutcome:
    """Member `number`'s outcome from the result it sent, its config attached (`_prepare`)."""
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
    job: tuple[list[DictConfig], dict, int],
) -> None:
    """Body of a population's process: set each member up as Hydra would, train, send results."""
    reset_in_child()  # the sweep process decides about interrupts

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)  # each open member records `interrupted`
    configs, singletons, parent = job
    threading.Thread(target=_exit_with_parent, args=(alive, parent), daemon=True).start()
    setup_globals()
    Singleton.set_state({"instances": singletons, "omegaconf_resolvers": BaseContainer._resolvers})
    prepared = [_prepare(config) for config in configs]
    HydraConfig.instance().set_config(configs[0])
    configure_log(configs[0].hydra.job_logging, configs[0].hydra.verbose)
    _log_to_every_member([m.run_dir for _, m in prepared[1:]], str(configs[0].hydra.job.name))
    env = {k: v for k, v in (configs[0].hydra.job.env_set or {}).items() if k != ENV_VAR}

    def send(i: int, value: Any) -> None:
        ret = prepared[i][0]
        failed = isinstance(value, BaseException)
        ret.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
        ret._return_value = value if failed else value.value
        results.send((int(configs[i].hydra.job.num), _portable(ret)))

    plans_seen = Path(str(configs[0].hydra.sweep.dir)) / ".plans"
    with env_override(env), contextlib.suppress(KeyboardInterrupt):
        run_members([m for _, m in prepared], send, plans_seen)
    logging.shutdown()
    results.close()


def _prepare(config: DictConfig) -> tuple[JobReturn, Member]:
    """What Hydra's `run_job` does before it calls the task: the folder, `.hydra/`, the return."""
    HydraConfig.instance().set_config(config)
    output_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir.resolve())
    HydraConfig.instance().set_config(config)
    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    overrides = OmegaConf.to_container(config.hydra.overrides.task)
    # The return carries the result alone: the sweep holds every member's config already and
    # attaches it (`_member_outcome`), so no config is copied, converted and pickled back.
    ret = JobReturn(
        overrides=overrides,  # type: ignore[arg-type]
        working_dir=os.getcwd(),
        task_name=str(config.hydra.job.name),
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    if config.hydra.output_subdir is not None:
        hydra_output = output_dir / str(config.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", hydra_output)
        _save_config(HydraConfig.instance().cfg, "hydra.yaml", hydra_output)  # type: ignore[arg-type]
        _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
    trial_env = (config.hydra.job.env_set or {}).get(ENV_VAR)
    with env_override({ENV_VAR: str(trial_env)} if trial_env else {}):
        trial = TrialLink.from_environment() if trial_env else None
    as_typed = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return ret, Member(task_cfg, output_dir, trial, list(as_typed))  # type: ignore[arg-type]


def _log_to_every_member(folders: list[Path], job_name: str) -> None:
    """The population's log lines in every member's log file too (Hydra set up the first's)."""
    root, file_only = logging.getLogger(), logging.getLogger("linesweep.file")
    first = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    if first is None:
        return
    for folder in folders:
        handler = logging.FileHandler(folder / f"{job_name}.log")
        handler.setFormatter(first.formatter)
        handler.setLevel(first.level)
        root.addHandler(handler)
        if first in file_only.handlers:
            file_only.addHandler(handler)
