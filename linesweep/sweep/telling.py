"""How a finished trial is told to the study, said in one line, and kept in the results files.

The sweep loop (sweeper.py) collects each trial's outcome from its executor; `Teller` judges it
(`outcomes.judge`: the one place a trial's ending becomes a status and an Optuna state), tells
the study, and says it on the console. trials.csv and optimization_results.yaml are rebuilt from
the study, with the answer, once the trials that ended together are told (`write_if_told`, after
each of the loop's waits): a sweep killed at any moment leaves them current but for the trials
of the last few seconds, which its journal holds and the next run writes. Once per trial, a
population of 64 trials rewrote them 64 times: O(n^2) YAML in the process that shares the cores
with the training (a third of the main process's time in the 128-trial grid). A population's
members end one after another, 0.1-0.2 s apart (each writes its record and draws its curve), so
while others still run the files wait for a pause of `QUIET_S` between endings, at most `LAG_S`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from linesweep.core.status import Status
from linesweep.core.storage import mask_secrets
from linesweep.sweep import coordination as co
from linesweep.sweep.outcomes import JobOutcome, Verdict, judge
from linesweep.sweep.results import AnswerSetup, format_params, sweep_answer, write_sweep_results
from linesweep.sweep.salvage import finished_values

log = logging.getLogger("linesweep.sweep.sweeper")

FAILURES = frozenset(s.value for s in Status if s.counts_as_failure)
# While more trials may end any moment, the results files wait for a pause this long between
# endings (the loop waits no longer than this while they wait), and never longer than LAG_S.
QUIET_S = 0.5
LAG_S = 5.0


def storage_errors() -> tuple[type[Exception], ...]:
    """What a storage or disk that fails mid-sweep raises: the sweep stops with one line, the
    next run resumes. SQLAlchemy's errors once SQLAlchemy is loaded (a database storage loads
    it); no other code can raise them, and a sweep on a journal file never pays the 0.2 s of
    importing it. A journal file replaced, cut short or deleted under the sweep gives Optuna
    a line that is no JSON (`JSONDecodeError`); the next run's checks refuse what the damage
    left in one line of their own (`linesweep.sweep.journal` names its repair)."""
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    loaded = (sqlalchemy.SQLAlchemyError,) if sqlalchemy is not None else ()
    return (OSError, json.JSONDecodeError, *loaded, StorageInternalError)


@dataclass
class Teller:
    """Tells the study how each trial ended; keeps the sweep's results files and answer."""

    study: optuna.Study
    storage: BaseStorage
    storage_url: str
    sweep_dir: Path
    config: DictConfig
    value_names: list[str]
    n_trials: int
    answer_setup: AnswerSetup | None
    grid_done: bool = False  # the grid sampler has run every point
    answered: Any = None  # the answer from the study, as last written
    unwritten: str | None = field(default=None)  # why the results files could not be written
    told: bool = False  # trials were told since the results files were last written
    told_at: float = 0.0  # time.monotonic() of the first of those
    last_told_at: float = 0.0  # and of the last

    def tell(self, trial: optuna.Trial, outcome: JobOutcome) -> None:
        """Tell the study how `trial` ended, and say so in one line."""
        verdict = self._finished_before_it_died(trial, outcome) or judge(
            outcome, len(self.value_names)
        )
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
        log.info("%s", one_line(outcome.number, trial.params, verdict, self.value_names))
        self.last_told_at = time.monotonic()
        if not self.told:
            self.told, self.told_at = True, self.last_told_at

    def _finished_before_it_died(self, trial: optuna.Trial, outcome: JobOutcome) -> Verdict | None:
        """A trial whose process was stopped or died after its run had recorded it complete
        (a Ctrl-C just after its last epoch): complete, with the values its folder records,
        rather than interrupted and trained again beside a folder that says `complete`."""
        if outcome.job_return is not None or outcome.died is None or outcome.timed_out:
            return None
        done = finished_values(self.sweep_dir, self.study.study_name, trial, len(self.value_names))
        if done is None:
            return None
        values, epoch = done
        return Verdict(Status.COMPLETE, values, None, epoch)

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

    def failure_budget_exceeded(self, max_failure_rate: float) -> str | None:
        """Why the sweep must stop starting trials (too many failed), or None."""
        if len(co.slot_holders(self.study.get_trials(deepcopy=False))) >= self.n_trials:
            return None  # nothing left to start: the study ends as it is, with its failures said
        failed = [
            t for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.user_attrs.get(co.STATE) in FAILURES
        ]  # fmt: skip
        if len(failed) > max_failure_rate * self.n_trials:
            return (
                f"sweep stopped: {len(failed)} of {self.n_trials} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={max_failure_rate} allows; "
                f"last error: {failed[-1].user_attrs.get(co.ERROR)}"
            )
        return None

    def write_if_told(self, others_running: bool = False) -> None:
        """Rewrite the results files if trials were told since they were last written.

        `others_running`: more trials may end any moment (a population's members end one
        after another): the files wait for `QUIET_S` without an ending, or until the first
        unwritten trial was told `LAG_S` ago.
        """
        now = time.monotonic()
        if self.told and (
            not others_running or now - self.last_told_at >= QUIET_S or now - self.told_at >= LAG_S
        ):
            self.write_results()

    def write_results(self) -> None:
        """Rewrite trials.csv and optimization_results.yaml; a full disk is said once, not fatal.

        Both are rebuilt from the study, so a moment without room loses nothing: the next write
        (or the next run) catches up.
        """
        self.told = False
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
            self.unwritten, self.told = problem, True
        else:
            self.unwritten = None


def one_line(number: int, params: dict[str, Any], verdict: Verdict, value_names: list[str]) -> str:
    """`trial 3 complete (model.out_1=4 optimizer.lr=0.01): val_accuracy=0.95`, or its reason."""
    if verdict.values is not None:
        result = ", ".join(f"{n}={v:.4g}" for n, v in zip(value_names, verdict.values, strict=True))
    else:
        result = verdict.reason or ""
    return f"trial {number} {verdict.status} ({format_params(params)}): {result}"
