"""The protocol between a sweeper and the runs it launches: report each epoch, learn to stop.

A sweeper hands every job its Optuna trial through one environment variable (set with Hydra's
`hydra.job.env_set`, so it works the same in-process, in worker processes, under joblib or on a
SLURM node). The job reconnects to the study's storage, reports its objective after every epoch,
and stops as soon as the study's pruner says so. A job launched by any other sweeper finds no
variable and reports nothing. Optuna is imported only once a job reports.

The variable is saved with the job's config (Hydra's `.hydra/`), so it holds the storage URL
without its password; the password comes from the process environment
(`linesweep.core.storage.PASSWORD_VAR`), and is masked in the job's log records and errors.

When a run ends (complete, pruned or diverged), it tells its trial what the sweep's answer
needs (`TrialResult`, one user attribute, `RESULT`): each replicate's value and seeds, the
model's size and how it was judged. The sweeper reads it from the study, never from the run's
folder (`linesweep.sweep.results`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.storage import (
    PASSWORD_VAR,
    mask_secrets,
    open_storage,
    redact_logs,
    with_password,
)

ENV_VAR = "LINESWEEP_TRIAL"
RESULT = "linesweep.result"  # the trial's user attribute holding its TrialResult


@dataclass(frozen=True)
class TrialContext:
    """Everything a job needs to find its trial again."""

    storage: str  # without its password
    study_name: str
    number: int
    # The study's pruner as a Hydra `_target_` config (the job judges itself with it).
    pruner: dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.pruners.NopPruner"})
    report: bool = True  # Optuna takes intermediate values from single-objective studies only

    def to_env(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_env(cls, text: str) -> TrialContext:
        """The context a sweeper wrote with `to_env`; anything else is refused in one line."""
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (ValueError, TypeError):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise ConfigError(
                ENV_VAR, shown, "the trial a linesweep sweep sets for its job (JSON)",
                f"unset {ENV_VAR}: a run outside a sweep has no trial",
            ) from None  # fmt: skip


@dataclass(frozen=True)
class TrialResult:
    """What a run tells its trial for the sweep's answer (`linesweep.core.answer`): plain
    JSON, as Optuna stores user attributes."""

    metric: str  # objective.metrics[0]: the values below are this metric's
    direction: str  # maximize or minimize
    epoch_rule: str  # objective.epoch: last (the last epoch's value) or best (each one's best)
    values: list[float | None]  # per replicate; None: it diverged
    seeds: list[dict[str, int]]  # per replicate: {"model_init": ..., "shuffle": ...}
    n_params: int
    epochs_run: int  # epochs the run trained: its longest replicate's (a diverged one stops)
    success_threshold: float | None  # a replicate succeeds reaching it

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialResult | None:
        """The result among a trial's user attributes; None where it has none (a run that
        failed before its end, another app's trial) or one this version cannot read."""
        data = attrs.get(RESULT)
        if not isinstance(data, dict):
            return None
        try:
            return cls(**data)
        except TypeError:
            return None


class TrialLink:
    """A connection to one running Optuna trial, made on first use.

    The links of one population's trials share `storages` (URL -> open storage): opening a
    journal replays the whole file, which at the grid's 128 trials cost about 20 ms a trial
    (a py-spy of `hparams_search=channels_lr_grid`), where one storage serves every trial of
    the process, as Optuna's storages are made to (thread-safe, any study and trial).
    """

    def __init__(self, context: TrialContext, storages: dict[str, Any] | None = None) -> None:
        self.context = context
        self._storages = {} if storages is None else storages
        self._trial = None

    @classmethod
    def from_environment(cls, storages: dict[str, Any] | None = None) -> TrialLink | None:
        text = os.environ.get(ENV_VAR)
        if not text:
            return None
        link = cls(TrialContext.from_env(text), storages)
        redact_logs(link.storage_url)
        return link

    @property
    def storage_url(self) -> str:
        """The study's storage, password included (never to be shown: see `redact`)."""
        return with_password(self.context.storage, os.environ.get(PASSWORD_VAR))

    def redact(self, text: str) -> str:
        """`text` with the storage's password masked."""
        return mask_secrets(text, self.storage_url)

    def describe(self) -> dict[str, Any]:
        return {"number": self.context.number, "study_name": self.context.study_name}

    def _connect(self):
        if self._trial is None:
            import optuna
            from hydra.utils import instantiate

            url = self.storage_url
            storage = self._storages.get(url)
            if storage is None:
                storage = self._storages[url] = open_storage(url)
            study = optuna.load_study(
                study_name=self.context.study_name,
                storage=storage,
                pruner=instantiate(self.context.pruner),
            )
            study_id = storage.get_study_id_from_name(self.context.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                study_id, self.context.number
            )
            self._trial = optuna.Trial(study, trial_id)
        return self._trial

    def report(self, step: int, value: float) -> bool:
        """Record `value` at `step` (the epoch); True if the pruner wants the trial stopped.

        A storage that fails (a database gone mid-trial, a full disk under the journal) fails
        the run with one line, its password masked: no bug of the run, so no traceback.
        """
        if not (self.context.report and math.isfinite(value)):  # a diverged epoch: no verdict
            return False
        try:
            trial = self._connect()
            trial.report(value, step)
            return trial.should_prune()
        except Exception as err:
            raise self._storage_failed(f"at epoch {step}", err) from None

    def record_result(self, result: TrialResult) -> None:
        """Store the run's result on its trial (`RESULT`); a storage that fails fails the run
        with one line, as `report` does."""
        try:
            self._connect().set_user_attr(RESULT, result.to_attr())
        except Exception as err:
            raise self._storage_failed("recording the run's result", err) from None

    def _storage_failed(self, when: str, err: Exception) -> LinesweepError:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return LinesweepError(
            self.redact(f"the study's storage failed {when}: {type(err).__name__}: {detail}")
        )
