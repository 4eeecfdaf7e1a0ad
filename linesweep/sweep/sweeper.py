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

The loop's neighbours each have their module: the settings (settings.py), the executor it
runs trials with (choosing.py, executors.py, population_executor.py), how a finished trial is
told and recorded (telling.py), passwords (passwords.py), search spaces, proposals,
coordination between workers, stalls, and the results files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.pruners import NopPruner
from optuna.samplers import BaseSampler, GridSampler
from optuna.trial import TrialState

from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import (
    NotOwnPath,
    atomic_write_text,
    ensure_writable_folder,
    make_folder,
    what_is,
)
from linesweep.core.processes import this_process
from linesweep.core.status import Status
from linesweep.core.storage import (
    check_study_name,
    mask_secrets,
    open_storage,
    shown_url,
    without_password,
)
from linesweep.core.trial_link import ENV_VAR, TrialContext
from linesweep.sweep import coordination as co
from linesweep.sweep.choosing import make_executor
from linesweep.sweep.executors import LauncherExecutor, TrialJob, check_preload
from linesweep.sweep.interrupts import SweepInterrupted, deferred, ignore_signals, interruptible
from linesweep.sweep.outcomes import JobOutcome
from linesweep.sweep.passwords import keep_password_out, restore
from linesweep.sweep.proposals import Proposals
from linesweep.sweep.results import answer_setup, closing_lines, format_params, no_result
from linesweep.sweep.salvage import finished_in
from linesweep.sweep.settings import SweepSettings, app_metrics, value_names
from linesweep.sweep.space import SearchSpace, check_keys, literal_json, parse_search_space, quoted
from linesweep.sweep.stalls import StallWatch
from linesweep.sweep.study import (
    check_resume,
    create_or_load_study,
    extend_trial,
    load_function,
    make_pruner,
    make_sampler,
    pruner_config,
    storage_url_for,
)
from linesweep.sweep.telling import QUIET_S, Teller, storage_errors

log = logging.getLogger(__name__)

# While every slot is held, how often the trials of dead workers are looked for (seconds).
REAP_WHEN_FULL_S = 1.0


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
        self.last_reap = -math.inf
        self.job_overrides: list[str] = []  # every trial's (the storage URL masked)
        self.password_before: str | None = None

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
        self.value_names = value_names(s, self.config)
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
        if app_metrics(self.config) is not None:  # linesweep's app remembers plans printed there
            self._own_folder(self.sweep_dir / ".plans")
        self.storage_url = storage_url_for(s.storage, self.sweep_dir, s.n_jobs)
        kept = keep_password_out(self.storage_url, self.config)
        if kept is not None:
            self.password_before, masked = kept
            self.job_overrides += masked
        setup = answer_setup(self.config, s.study_name)  # with the password masked
        # Optuna's heartbeat on a database (a journal file has none: coordination.py beats)
        self.storage = open_storage(
            self.storage_url, heartbeat=(s.heartbeat_s, s.stale_after_s, co.RetryStale())
        )
        self.study = create_or_load_study(
            self.storage, s.study_name, s.directions, self.sampler, self.pruner
        )
        self.teller = Teller(
            self.study, self.storage, self.storage_url, self.sweep_dir, self.config,
            self.value_names, self.n_trials, setup,
        )  # fmt: skip
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
        atomic_write_text(
            self.sweep_dir / "multirun.yaml",
            mask_secrets(OmegaConf.to_yaml(self.config), self.storage_url),
        )
        self.executor = make_executor(
            s, self.hydra_context, self.config, self.task_function, self.launcher, self._heartbeat
        )
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

    def _extend(self, trial: optuna.Trial) -> None:
        """hydra.sweeper.custom_search_space's suggestions for a new trial (study.py); one that
        fails stops the sweep, its trial failed first."""
        if self.extend_trial is None:
            return
        key, path = "hydra.sweeper.custom_search_space", self.settings.custom_search_space
        problem = extend_trial(self.extend_trial, self.config, trial, self.space.fixed_keys())
        if problem is not None:
            co.fail_trial(
                self.storage, self.study, trial.number, Status.FAILED, f"{key}: {problem}"
            )
            raise ConfigError(key, path, problem)

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
            self._record(outcome)
            problem = self.teller.failure_budget_exceeded(s.max_failure_rate)
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
            timeout = min(s.heartbeat_s, self.stalls.warn_after_s)
            self.executor.wait(min(timeout, QUIET_S) if self.teller.told else timeout, on_outcome)
            self._end_stalled(on_outcome)
            # Once for the trials that ended together: after a pause, or when none still runs.
            self.teller.write_if_told(others_running=bool(self.executor.running()))
            if batch:
                self.returns.append(batch.copy())
                batch.clear()
            if time.monotonic() - last_beat >= s.heartbeat_s:
                self._heartbeat()
                last_beat = time.monotonic()
        self.teller.write_results()
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
        answered = self.teller.answered
        for line in lines + (answered.lines() if answered is not None else []):
            log.info("%s", line)

    def _reap(self) -> None:
        """Fail the trials whose sweep process died (call under the slot lock); re-run them."""
        self.last_reap = time.monotonic()

        for trial in co.reap_abandoned(
            self.storage,
            self.study,
            self.settings.stale_after_s,
            self.slots.exclusive,
            finished_in(self.sweep_dir, self.study),
        ):
            log.warning(
                "trial %d was left RUNNING by a sweep process that died: interrupted, its slot "
                "re-runs",
                trial.number,
            )

    def _slots_taken(self) -> int:
        return len(co.slot_holders(self.study.get_trials(deepcopy=False)))

    def _slots_full(self) -> bool:
        """Every point run (the grid sampler) or every one of n_trials slots held."""
        return self.teller.grid_done or self._slots_taken() >= self.n_trials

    def _launch_next(self) -> bool:
        """Ask for a trial if a slot is free (under the lock all workers share) and start it."""
        with deferred():  # asked and registered as one step
            return self._ask_and_start()

    def _ask_and_start(self) -> bool:
        with self.slots.hold():
            since, full = time.monotonic() - self.last_reap, self._slots_full()
            if since >= self.settings.heartbeat_s or (
                full and (since >= REAP_WHEN_FULL_S or not self.executor.running())
            ):
                # A worker that died frees its slots for this one. When every slot is held,
                # before this process stops asking too: a worker on this host that died holding
                # slots would otherwise leave the study short (its trials RUNNING) until the
                # command runs again.
                self._reap()
                full = self._slots_full()
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if not waiting and full:
                return False
            trial = self.proposals.ask(self.study, queued=bool(waiting))
            trial.set_user_attr(co.OWNER, this_process())
            co.beat(self.storage, [trial])
        folder = self.sweep_dir / str(trial.number)
        co.claim_trial_folder(self.storage, self.study, trial.number, folder, self.sweep_dir)
        self._extend(trial)
        trial.set_user_attr(co.FOLDER, str(folder))
        self.running[trial.number] = trial
        self.executor.submit(TrialJob(trial.number, tuple(self._job_overrides(trial))))
        log.info("trial %d started: %s", trial.number, format_params(trial.params))
        return True

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

    def _record(self, outcome: JobOutcome) -> None:
        """Tell the study how a trial in flight ended (telling.py)."""
        self.teller.tell(self.running.pop(outcome.number), outcome)

    def interrupt(self, signum: int) -> None:
        """Stop the running trials, mark them interrupted (resume re-runs them), write results."""
        for outcome in self.executor.interrupt():
            if outcome.number in self.running:  # not one told just before the signal came
                self._record(outcome)
        for number in list(self.running):  # jobs cut short inside this process
            self._record(
                JobOutcome(number, None, self.sweep_dir / str(number), died=Status.INTERRUPTED)
            )
        self.teller.write_results()
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
            restore(self.password_before, getattr(self, "storage_url", ""))

    def _stop_running(self) -> None:
        try:
            for outcome in self.executor.interrupt():
                try:
                    self._record(outcome)
                except storage_errors():
                    log.warning(
                        "trial %d: could not record it as interrupted; the next run of the same "
                        "command does",
                        outcome.number,
                    )
            with contextlib.suppress(*storage_errors()):  # the next run writes them from the study
                self.teller.write_if_told()
        finally:
            self.executor.close()


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
    except storage_errors() as err:
        if sweep is not None and hasattr(sweep, "study"):
            with contextlib.suppress(*storage_errors()):  # what the study can still tell
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
