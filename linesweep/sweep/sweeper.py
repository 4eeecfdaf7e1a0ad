"""The sweep loop: ask Optuna for trials, run them, tell the results; resume, prune, survive.

    python -m linesweep.train -m hparams_search=channels_lr
    python -m linesweep.train -m hparams_search=channels_lr hydra.sweeper.n_jobs=2
    python -m linesweep.train -m hydra/sweeper=linesweep experiment=hard \
        model.out_1='int(interval(1,8))' optimizer.lr='tag(log,interval(1e-4,1e-1))'

One loop serves every case. It keeps up to `n_jobs` trials in flight and starts the next one the
moment one finishes; it asks for a trial only while the study has fewer than `n_trials` trials
holding a slot (see coordination.py), so re-running the same command resumes the study up to
`n_trials` in total, and several processes on one storage share the work exactly. Each job learns
its trial through the LINESWEEP_TRIAL environment variable and reports every epoch to it; a
pruned job raises `optuna.TrialPruned`. Whatever a trial does (finish, diverge, raise, get
killed), it is told to the study with its reason, and the sweep goes on, until more than
`max_failure_rate * n_trials` trials have failed.

Every sweep ends, however it ends, with its answer: the counts by state, the best trial (or the
size of the Pareto set), where the results are and the command that compares the trials; then,
for an app with an `answer:` block (linesweep's), the answer's lines (results.sweep_answer:
the best configuration, the smallest not distinguishable from it, what was compared). How a
trial ended is one console line, the sweep's; the detail (a traceback) is in its `train.log`.

Why one module over 300 lines: the loop's steps (ask, start, collect, record, reap, answer)
share the study, the executor and the settings, and read best in the order they run; what stands
alone already has its module (space, proposals, coordination, outcomes, results, executors).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, read_write
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.pruners import NopPruner
from optuna.samplers import BaseSampler, GridSampler
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from hydra_plugins.linesweep_optuna_sweeper.config import MedianPrunerConfig, NopPrunerConfig
from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import (
    NotOwnPath,
    atomic_write_text,
    ensure_writable_folder,
    make_folder,
    what_is,
)
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.metrics import directions as metric_directions
from linesweep.core.processes import this_process
from linesweep.core.status import Status
from linesweep.core.storage import (
    PASSWORD_VAR,
    check_journal_path,
    check_study_name,
    is_database_url,
    mask_secrets,
    open_storage,
    password_of,
    redact_logs,
    resolve_storage_url,
    shown_url,
    without_password,
)
from linesweep.core.trial_link import ENV_VAR, TrialContext
from linesweep.sweep import coordination as co
from linesweep.sweep.executors import (
    LauncherExecutor,
    ProcessExecutor,
    TrialExecutor,
    TrialJob,
    check_preload,
)
from linesweep.sweep.interrupts import SweepInterrupted, deferred, ignore_signals, interruptible
from linesweep.sweep.journal import check_journal
from linesweep.sweep.outcomes import JobOutcome, Verdict, judge
from linesweep.sweep.population_executor import PopulationExecutor
from linesweep.sweep.proposals import Proposals
from linesweep.sweep.results import (
    answer_setup,
    closing_lines,
    format_params,
    no_result,
    sweep_answer,
    write_sweep_results,
)
from linesweep.sweep.space import SearchSpace, check_keys, literal_json, parse_search_space, quoted
from linesweep.sweep.stalls import StallWatch
from linesweep.sweep.study import (
    check_directions,
    check_resume,
    create_or_load_study,
    load_function,
    make_pruner,
    make_sampler,
    pruner_config,
)

log = logging.getLogger(__name__)


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
    """What every trial would import for itself, imported once before trials fork.

    torch.optim's step imports `torch._dynamo`, about 1 s a process. linesweep's app has
    imported what its trials need (its hand-written step needs no torch.optim; a trial with an
    optimizer outside that family, amsgrad, pays the second itself). Another app that imported
    torch may well build a torch optimizer in every trial.
    """
    if linesweep_app or "torch" not in sys.modules:
        return []
    return ["torch._dynamo"]


class Sweep:
    """One run of the sweep command, from set-up to the final results."""

    def __init__(
        self,
        settings: SweepSettings,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        launcher: Any,
    ) -> None:
        self.settings = settings
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.launcher = launcher
        self.running: dict[int, optuna.Trial] = {}
        self.returns: list[list[JobReturn]] = []  # Hydra's convention: one list per batch
        self.grid_done = False  # the grid sampler has run every point
        self.last_reap = -math.inf
        self.job_overrides: list[str] = []  # every trial's (the storage URL masked)
        self.unwritten: str | None = None  # why the results files could not be written, if so
        self.password_before: str | None = None
        self.answer_setup = None  # the app's `answer:` block and the command (results.py)
        self.answered = None  # the answer from the study, as last written

    # ------------------------------------------------------------------ set-up
    def _group_options(self, group: str) -> list[str]:
        """A config group's options as the trials will find them: with the search path the
        command added (`hydra.searchpath=[...]`), which the loader's own view leaves out."""
        return self.hydra_context.config_loader.get_group_options(
            group,
            config_name=self.config.hydra.job.config_name,
            overrides=list(OmegaConf.to_container(self.config.hydra.overrides.hydra)),
        )

    def prepare(self, arguments: list[str]) -> None:
        """Everything that can refuse the sweep, done before any trial starts."""
        s = self.settings
        check_study_name(s.study_name)
        self.space: SearchSpace = parse_search_space(s.params, arguments)
        check_keys(self.space, self.config, self._group_options)
        if s.executor in ("auto", "process", "population"):
            check_preload(s.preload)
        self.sampler = make_sampler(s.sampler, self.space)
        self.pruner = make_pruner(s.pruner)
        if len(s.directions) > 1 and not isinstance(self.pruner, NopPruner):
            raise ConfigError(
                "hydra.sweeper.pruner",
                s.pruner["_target_"],
                f"none for a study with {len(s.directions)} objectives (Optuna prunes "
                "single-objective studies only)",
                "leave hydra/sweeper/pruner unset, or set it to none",
            )
        self.extend_trial = (
            load_function(s.custom_search_space, "hydra.sweeper.custom_search_space")
            if s.custom_search_space
            else None
        )
        self.value_names = self._value_names()
        self.n_trials = s.n_trials
        if isinstance(self.sampler, GridSampler):
            points = math.prod(len(values) for values in self.space.grid().values())
            if points < s.n_trials:
                log.info(
                    "the grid has %d points: the sweep runs %d trials, not %d",
                    points,
                    points,
                    s.n_trials,
                )
                self.n_trials = points
        given = Path(str(self.config.hydra.sweep.dir))
        found = what_is(given)
        if found not in (None, "a folder"):  # a link planted there is never followed
            raise ConfigError(
                "hydra.sweep.dir", str(given), f"a folder of the sweep's own, and it is {found}"
            )
        self.sweep_dir = given.resolve()
        ensure_writable_folder(self.sweep_dir, "hydra.sweep.dir")
        self.storage_url = resolve_storage_url(s.storage, self.sweep_dir)
        if not is_database_url(self.storage_url):
            ensure_writable_folder(Path(self.storage_url).parent, "hydra.sweeper.storage")
            check_journal_path(Path(self.storage_url))
            for note in check_journal(Path(self.storage_url)):
                log.warning("%s", note)
        elif self.storage_url.startswith("sqlite") and s.n_jobs > 1:
            log.warning(
                "SQLite locks the whole database on every write: with hydra.sweeper.n_jobs=%d "
                "expect 'database is locked' errors. Use the default journal file (omit "
                "hydra.sweeper.storage) on one machine, or PostgreSQL across machines.",
                s.n_jobs,
            )
        self._keep_password_out()
        self.answer_setup = answer_setup(self.config, s.study_name)  # with the password masked
        # Optuna's heartbeat on a database (a journal file has none: coordination.py beats)
        self.storage = open_storage(
            self.storage_url, heartbeat=(s.heartbeat_s, s.stale_after_s, co.RetryStale())
        )
        self.study = create_or_load_study(
            self.storage, s.study_name, s.directions, self.sampler, self.pruner
        )
        self.slots = co.SlotLock(self.storage_url, s.study_name)
        with self.slots.hold():  # read, refused before anything is written; or recorded once
            changes = check_resume(self.study, self.space, s.resume_changed)
        for change in changes:
            log.warning("hydra.sweeper.resume_changed=true: the study continues with %s", change)
        self.proposals = Proposals(
            self.space,
            s.sampler.get("seed"),
            self._sampler_with_seed,
            self.sampler,
            whole_space=self.extend_trial is None,
        )
        if app_metrics(self.config) is not None:  # linesweep's app remembers plans printed there
            self._own_folder(self.sweep_dir / ".plans")
        atomic_write_text(
            self.sweep_dir / "multirun.yaml",
            mask_secrets(OmegaConf.to_yaml(self.config), self.storage_url),
        )
        self.executor = self._make_executor()
        self.stalls = StallWatch(s.trial_timeout)
        if s.trial_timeout and isinstance(self.executor, LauncherExecutor):
            log.warning(
                "hydra.sweeper.trial_timeout does not apply to trials that Hydra's launcher "
                "runs (they run to their end)"
            )

    def _own_folder(self, path: Path) -> None:
        """A folder the sweep writes into: made now, or refused if it is a link or a file."""
        try:
            make_folder(path)
        except NotOwnPath as err:
            raise ConfigError(
                "hydra.sweep.dir", str(self.sweep_dir), f"a sweep folder of its own, and {err}",
                f"remove {path}",
            ) from None  # fmt: skip

    def _sampler_with_seed(self, seed: int | None) -> BaseSampler:
        """The configured sampler, with another seed (see proposals.py)."""
        return make_sampler({**self.settings.sampler, "seed": seed}, self.space)

    def _keep_password_out(self) -> None:
        """A storage password reaches the trials through the environment, never a saved file.

        Hydra saves each trial's config unresolved in its `.hydra/` folder: a URL typed on the
        command line or in a YAML file would be saved with its password, so the trials are given
        the masked URL (they reconnect through their TrialContext); `${oc.env:...}` is saved as
        written, and needs nothing.
        """
        password = password_of(self.storage_url)
        if password is None:
            return
        self.password_before = os.environ.get(PASSWORD_VAR)  # put back by close()
        os.environ[PASSWORD_VAR] = password
        redact_logs(self.storage_url)
        overrides = self.config.hydra.overrides.hydra
        with read_write(overrides):  # as typed: `${oc.env:...}` stays unresolved
            for index, text in enumerate(OmegaConf.to_container(overrides, resolve=False)):
                if mask_secrets(text, self.storage_url) != text:
                    overrides[index] = mask_secrets(text, self.storage_url)
        raw = OmegaConf.to_container(self.config.hydra.sweeper, resolve=False).get("storage")
        if isinstance(raw, str) and mask_secrets(raw, self.storage_url) != raw:
            self.job_overrides.append(
                f"hydra.sweeper.storage={quoted(mask_secrets(raw, self.storage_url))}"
            )

    def _value_names(self) -> list[str]:
        """The objective's names; for linesweep's app, checked against the study's direction.

        linesweep's app names its objective in `objective.metrics`, each with a fixed direction
        (the default direction follows them): a sweep told to go the other way is refused here,
        before any study is touched.
        """
        n = len(self.settings.directions)
        metrics = app_metrics(self.config)
        if metrics is None:  # another app: its values have no names
            return ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
        declared = metric_directions(metrics)
        if declared != self.settings.directions:
            raise ConfigError(
                "hydra.sweeper.direction",
                self.settings.directions,
                f"the directions of objective.metrics={metrics}: {declared}",
                "leave hydra.sweeper.direction unset (it follows objective.metrics), or set "
                f"hydra.sweeper.direction={declared[0] if len(declared) == 1 else declared}",
            )
        return metrics

    def _extend(self, trial: optuna.Trial) -> None:
        """Let hydra.sweeper.custom_search_space suggest more parameters for a new trial.

        It is called as function(cfg, trial) with the sweep's config, after `params` are
        sampled; what it suggests becomes overrides too. A function that raises, or that
        suggests a key a fixed override sets, stops the sweep (the trial is failed first).
        """
        if self.extend_trial is None:
            return
        key, path = "hydra.sweeper.custom_search_space", self.settings.custom_search_space
        try:
            self.extend_trial(self.config, trial)
            problem = None
        except Exception as err:
            problem = f"a function(cfg, trial) that runs; it raised {type(err).__name__}: {err}"
        clash = sorted(self.space.fixed_keys() & {k.lstrip("+~") for k in trial.params})
        if problem is None and clash:
            problem = f"a function that suggests no key an override fixes, but it suggests {clash}"
        if problem is not None:
            co.fail_trial(
                self.storage, self.study, trial.number, Status.FAILED, f"{key}: {problem}"
            )
            raise ConfigError(key, path, problem)

    def _make_executor(self) -> TrialExecutor:
        s = self.settings
        launcher_name = OmegaConf.select(self.config, "hydra.launcher._target_", default="")
        basic = launcher_name.endswith("BasicLauncher")
        executor = s.executor
        if executor == "auto":  # populations for an app with a batch entry point
            linesweep_app = app_metrics(self.config) is not None
            executor = "population" if linesweep_app and s.batch_task and basic else "process"
        if executor == "population" and basic:
            assert s.batch_task is not None
            return PopulationExecutor(
                self.hydra_context, self.config, self.task_function, s.n_jobs, s.population_size,
                s.preload, s.batch_task,
            )  # fmt: skip
        if executor in ("process", "population") and basic:
            try:
                return ProcessExecutor(
                    self.hydra_context, self.config, self.task_function, s.n_jobs, s.preload
                )
            except ValueError as err:
                log.info("running trials through Hydra's launcher: %s", err)
        elif executor in ("process", "population"):
            log.info("running trials through the configured Hydra launcher (%s)", launcher_name)
        return LauncherExecutor(
            self.launcher, s.n_jobs, self._heartbeat, s.heartbeat_s, self.config.hydra
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> list[list[JobReturn]]:
        s = self.settings
        with self.slots.hold():
            self._reap()
        held = co.slot_holders(self.study.get_trials(deepcopy=False))
        running = sum(t.state == TrialState.RUNNING for t in held)
        log.info(
            "study %r in %s: %d of %d trials finished%s; up to %d at a time",
            s.study_name, shown_url(self.storage_url), len(held) - running, self.n_trials,
            f", {running} running in other workers" if running else "", s.n_jobs,
        )  # fmt: skip
        last_beat = time.monotonic()
        stopping: list[str] = []  # the first reason to stop launching, if any
        batch: list[JobReturn] = []  # the jobs one wait() finished, for Hydra's return value

        def on_outcome(outcome: JobOutcome) -> None:
            problem = self._record(outcome) or self._failure_budget_exceeded()
            if problem and not stopping:
                stopping.append(problem)
            if outcome.job_return is not None:
                batch.append(outcome.job_return)

        while True:
            while not stopping and len(self.executor.running()) < self.executor.capacity:
                if not self._launch_next():
                    break
            if not self.executor.running():
                break
            self.executor.wait(min(s.heartbeat_s, self.stalls.warn_after_s), on_outcome)
            self._end_stalled(on_outcome)
            if batch:
                self.returns.append(batch.copy())
                batch.clear()
            if time.monotonic() - last_beat >= s.heartbeat_s:
                self._heartbeat()
                last_beat = time.monotonic()
        self._write_results()
        self.tell_answer()
        if stopping:
            raise LinesweepError(stopping[0])
        nothing = no_result(self.study)
        if nothing:
            raise LinesweepError(nothing)
        return self.returns

    def _end_stalled(self, on_outcome: Any) -> None:
        """Name the trials that report nothing; end those past `trial_timeout` (`timeout`)."""
        late = self.stalls.check(self.study, self.executor.executing())
        if not late:
            return
        reason = (
            f"timeout: no epoch reported for {max(late.values()):.0f} s "
            f"(hydra.sweeper.trial_timeout={self.settings.trial_timeout:g})"
        )
        for outcome in self.executor.stop(sorted(late), reason):
            with deferred():
                on_outcome(outcome)

    def tell_answer(self) -> None:
        """The sweep's answer so far, in a few lines (results.closing_lines, then the answer's)."""
        lines = closing_lines(self.sweep_dir, self.study, self.n_trials, self.value_names)
        for line in lines + (self.answered.lines() if self.answered is not None else []):
            log.info("%s", line)

    def _reap(self) -> None:
        """Fail the trials whose sweep process died (call under the slot lock); re-run them."""
        self.last_reap = time.monotonic()
        for trial in co.reap_abandoned(
            self.storage, self.study, self.settings.stale_after_s, locked=self.slots.exclusive
        ):
            log.warning(
                "trial %d was left RUNNING by a sweep process that died: interrupted, its slot "
                "re-runs",
                trial.number,
            )

    def _slots_taken(self) -> int:
        return len(co.slot_holders(self.study.get_trials(deepcopy=False)))

    def _launch_next(self) -> bool:
        """Ask for a trial if a slot is free (under the lock all workers share) and start it."""
        with deferred():  # asked and registered as one step
            return self._ask_and_start()

    def _ask_and_start(self) -> bool:
        with self.slots.hold():
            if time.monotonic() - self.last_reap >= self.settings.heartbeat_s:
                self._reap()  # a worker that died elsewhere frees its slots for this one
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if not waiting and (self.grid_done or self._slots_taken() >= self.n_trials):
                return False
            trial = self._ask(queued=bool(waiting))
            trial.set_user_attr(co.OWNER, this_process())
            co.beat(self.storage, [trial])
        folder = self.sweep_dir / str(trial.number)
        found = what_is(folder)  # a link there is never followed, even to an empty folder
        if found is not None and (found != "a folder" or any(folder.iterdir())):
            held = "holds a run" if found == "a folder" else f"is {found}"
            co.fail_trial(
                self.storage, self.study, trial.number, Status.FAILED, f"folder {folder} {held}"
            )
            raise ConfigError(
                "hydra.sweep.dir",
                str(self.sweep_dir),
                f"a folder whose trial folders match its study, but {folder} already {held} "
                f"and study {self.settings.study_name!r} has no record of it",
                "use a new hydra.sweep.dir or hydra.sweeper.study_name, or restore the storage",
            )
        self._extend(trial)
        trial.set_user_attr(co.FOLDER, str(folder))
        self.running[trial.number] = trial
        self.executor.submit(TrialJob(trial.number, tuple(self._job_overrides(trial))))
        log.info("trial %d started: %s", trial.number, format_params(trial.params))
        return True

    def _ask(self, queued: bool) -> optuna.Trial:
        """A new trial (call under the slot lock), from its own seed, at a point not yet taken.

        A queued trial (an interrupted one's re-run) keeps its parameters. In a finite space the
        proposal is drawn on a scratch copy of the study and a repeat of a trial's point is
        replaced by an unvisited one before any trial exists (see proposals.py): the study holds
        only trials that run.
        """
        number = len(self.study.get_trials(deepcopy=False))  # the number a new trial gets
        self.study.sampler = self.proposals.sampler_for(number)
        if queued or not self.proposals.judges_repeats:
            return co.ask(self.study, self.space.distributions)
        point, twin = self.proposals.propose(self.study, self.study.sampler)
        self.study.enqueue_trial(point, user_attrs={} if twin is None else {co.REPLACED: twin})
        trial = co.ask(self.study, self.space.distributions)  # the point just queued
        if twin is not None:
            log.info(
                "trial %d: the sampler proposed the parameters of trial %d again; it runs a point "
                "no trial has taken",
                trial.number, twin,
            )  # fmt: skip
        return trial

    def _job_overrides(self, trial: optuna.Trial) -> list[str]:
        s = self.settings
        context = TrialContext(
            storage=without_password(self.storage_url),
            study_name=self.settings.study_name,
            number=trial.number,
            pruner=pruner_config(s.pruner),
            report=len(self.settings.directions) == 1,
        )
        return [
            *self.space.overrides(trial.params),
            f"hydra.sweep.subdir={trial.number}",
            f"++hydra.job.env_set.{ENV_VAR}={quoted(literal_json(context.to_env()))}",
            *self.job_overrides,
        ]

    def _heartbeat(self) -> None:
        co.beat(self.storage, list(self.running.values()))

    # ------------------------------------------------------------------ results
    def _record(self, outcome: JobOutcome) -> str | None:
        """Tell the study how a trial ended, and say so in one line."""
        trial = self.running.pop(outcome.number)
        verdict = judge(outcome, len(self.settings.directions))
        if verdict.reason:  # a driver's error may quote the storage URL
            verdict = replace(verdict, reason=mask_secrets(verdict.reason, self.storage_url))
        try:
            trial.set_user_attr(co.STATE, verdict.status.value)
            if verdict.reason:
                trial.set_user_attr(co.ERROR, verdict.reason[:2000])
            epoch = self._measured_epoch(outcome, verdict)
            if epoch is not None:
                trial.set_user_attr(co.EPOCH, epoch)
            self.study.tell(trial, values=verdict.values, state=verdict.optuna_state)
        except UpdateFinishedTrialError:
            log.warning("trial %d was already finished by another worker", outcome.number)
        except RuntimeError as err:
            # The grid sampler calls study.stop() once every point has run; outside
            # study.optimize that raises, after the trial has been recorded.
            if "Study.stop" not in str(err):
                raise
            self.grid_done = True
        except KeyError as err:
            # ...and near the end it looks up the grid point of a queued re-run, which has none
            # (Optuna's GridSampler.after_trial); the trial is recorded all the same.
            if err.args != ("grid_id",):
                raise
        if verdict.status == Status.INTERRUPTED:
            co.requeue(self.storage, self.study, trial.number)
        log.info("%s", _one_line(outcome.number, trial.params, verdict, self.value_names))
        self._write_results()
        return None

    def _measured_epoch(self, outcome: JobOutcome, verdict: Verdict) -> int | None:
        """The epoch the trial's values were measured at, if it says or its reports show it.

        A stopped trial says (its typed exception). A complete one reported its first objective
        after every epoch: the value is one of those reports (the last epoch's, or with
        `objective.epoch=best` the earliest best one). A study that takes no reports (several
        objectives) has the app's `trainer.epochs`, when every epoch counts.
        """
        if verdict.epoch is not None or verdict.values is None:
            return verdict.epoch
        tid = co.trial_id(self.storage, self.study, outcome.number)
        reports = self.storage.get_trial(tid).intermediate_values
        best = OmegaConf.select(self.config, "objective.epoch", default="last") == "best"
        if reports:
            steps = [step for step, v in sorted(reports.items()) if v == verdict.values[0]]
            return (steps[0] if best else steps[-1]) if steps else max(reports)
        cfg = outcome.job_return.cfg if outcome.job_return is not None else None
        epochs = OmegaConf.select(cfg, "trainer.epochs", default=None) if cfg else None
        return epochs if isinstance(epochs, int) and not best else None

    def _failure_budget_exceeded(self) -> str | None:
        if self._slots_taken() >= self.n_trials:
            return None  # nothing left to start: the study ends as it is, with its failures said
        failed = [
            t for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get(co.STATE) in FAILURES
        ]  # fmt: skip
        limit = self.settings.max_failure_rate * self.n_trials
        if len(failed) > limit:
            return (
                f"sweep stopped: {len(failed)} of {self.n_trials} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={self.settings.max_failure_rate} allows; "
                f"last error: {failed[-1].user_attrs.get(co.ERROR)}"
            )
        return None

    def _write_results(self) -> None:
        """Rewrite trials.csv and optimization_results.yaml; a full disk is said once, not fatal.

        Both are rebuilt from the study after every trial, so a moment without room loses
        nothing: the next write (or the next run) catches up.
        """
        try:
            self.answered = sweep_answer(self.study, self.answer_setup)
            write_sweep_results(
                self.sweep_dir, self.study, self.n_trials, self.storage_url, self.value_names,
                self.answered,
            )  # fmt: skip
        except OSError as err:
            problem = f"{err.strerror or err} ({err.filename or self.sweep_dir})"
            if problem != self.unwritten:
                log.warning(
                    "could not write the sweep's results: %s; they are written again after the "
                    "next trial, or by running the same command",
                    problem,
                )
            self.unwritten = problem
        else:
            self.unwritten = None

    def interrupt(self, signum: int) -> None:
        """Stop the running trials, mark them interrupted (resume re-runs them), write results."""
        for outcome in self.executor.interrupt():
            self._record(outcome)
        for number in list(self.running):  # jobs cut short inside this process
            self._record(
                JobOutcome(number, None, self.sweep_dir / str(number), died=Status.INTERRUPTED)
            )
        self._write_results()
        self.tell_answer()
        log.error(
            "sweep interrupted by %s; run the same command again to resume",
            signal.Signals(signum).name,
        )

    def close(self) -> None:
        """Release everything; trials still running (after an unexpected error) are recorded.

        After the storage itself failed, recording may fail too: the next run reaps them.
        """
        try:
            if hasattr(self, "executor"):
                self._stop_running()
        finally:
            if hasattr(self, "slots"):
                self.slots.close()
            if self.password_before is not None:
                os.environ[PASSWORD_VAR] = self.password_before
            elif password_of(getattr(self, "storage_url", "")) is not None:
                os.environ.pop(PASSWORD_VAR, None)

    def _stop_running(self) -> None:
        try:
            for outcome in self.executor.interrupt():
                try:
                    self._record(outcome)
                except STORAGE_ERRORS:
                    log.warning(
                        "trial %d: could not record it as interrupted; the next run of the same "
                        "command does",
                        outcome.number,
                    )
        finally:
            self.executor.close()


def _one_line(number: int, params: dict[str, Any], verdict: Verdict, value_names: list[str]) -> str:
    """`trial 3 complete (model.out_1=4 optimizer.lr=0.01): val_accuracy=0.95`, or its reason."""
    if verdict.values is not None:
        result = ", ".join(f"{n}={v:.4g}" for n, v in zip(value_names, verdict.values, strict=True))
    else:
        result = verdict.reason or ""
    return f"trial {number} {verdict.status} ({format_params(params)}): {result}"


FAILURES = frozenset(s.value for s in Status if s.counts_as_failure)
# A storage or disk that fails mid-sweep: the sweep stops with one line, the next run resumes.
STORAGE_ERRORS = (OSError, SQLAlchemyError, StorageInternalError)


def run_sweep(
    conf: dict[str, Any],
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    launcher: Any,
    arguments: list[str],
) -> list[list[JobReturn]]:
    """Prepare and run a sweep; bad input exits 2 with one line, a signal exits 128 + signum.

    A storage or a disk that fails mid-sweep stops it with one line and exit status 1: what was
    recorded stays, and the same command resumes once the fault is gone.
    """
    sweep: Sweep | None = None
    # Optuna's lines through Hydra's handlers, in the one format of a run and a sweep.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    try:
        settings = SweepSettings.from_config(conf, config)
        sweep = Sweep(settings, hydra_context, task_function, config, launcher)
        sweep.prepare(arguments)
        with interruptible():
            try:
                return sweep.run()
            except SweepInterrupted as stop:
                ignore_signals()  # a second Ctrl-C or SIGTERM must not cut the clean-up short
                sweep.interrupt(stop.signum)
                sys.exit(128 + stop.signum)
    except LinesweepError as err:
        log.error("%s", err)
        with contextlib.suppress(OSError):  # refused: the folder made to check it is writable
            Path(str(config.hydra.sweep.dir)).rmdir()  # goes if empty; a study's stays
        sys.exit(2)
    except STORAGE_ERRORS as err:
        if sweep is not None and hasattr(sweep, "study"):
            with contextlib.suppress(*STORAGE_ERRORS):  # what the study can still tell
                sweep.tell_answer()
        url = sweep.storage_url if sweep is not None and hasattr(sweep, "storage_url") else ""
        detail = mask_secrets(str(err).strip().splitlines()[0] if str(err).strip() else "", url)
        log.error(
            "sweep stopped: the storage or the disk failed (%s: %s); what was recorded is kept: "
            "run the same command again to resume once it is fixed",
            type(err).__name__, detail,
        )  # fmt: skip
        sys.exit(1)
    finally:
        if sweep is not None:
            sweep.close()
