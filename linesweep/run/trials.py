"""A sweep's trials that share an architecture, trained as one population, each its own run.

    python -m linesweep.train -m hydra/sweeper=linesweep hydra.sweeper.executor=population \
        experiment=hard 'optimizer.lr=tag(log,interval(1e-4,1e-1))' hydra.sweeper.n_trials=32

The sweeper's population executor (`linesweep.sweep.population_executor`) hands over trials
whose configs differ only in the optimizer's hyperparameters and the seed. They train as one
population (`fit_population`), yet each is a run like any other: its own folder with
summary.json, metrics.csv, shapes.yaml, model.pt and loggers, its own Optuna trial, told every
epoch. The pruner stops one member (frozen, recorded pruned) while the others train on, and a
member's result is handed back the moment it ends. Member m gets the seeds a solo run of its
config gets (`derive_seeds(seed)`, and its own data splits when the seeds differ), so a trial's
result does not depend on the executor that ran it (tests/test_population_sweep.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from linesweep.core.errors import LinesweepError, RunStopped, interrupted_by
from linesweep.core.metrics import EpochMetrics
from linesweep.core.record import (
    SHAPES,
    RunSummary,
    finished_so_far,
    write_metrics,
    write_shapes,
    write_weights,
)
from linesweep.core.status import Status
from linesweep.core.trial_link import TrialLink
from linesweep.run.budget import check_population_fits
from linesweep.run.config import TrainConfig
from linesweep.run.data import Split, make_splits
from linesweep.run.drawing import Drawing, run_caption
from linesweep.run.loggers import RunLoggers, open_loggers
from linesweep.run.model import build_model, check_plan
from linesweep.run.population import PopulationOutcome, fit_population
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.task import RunResult, file_log, log_plan, record_run
from linesweep.run.trainer import FitOutcome, cpu_settings, resolve_device, resolve_threads
from linesweep.run.validation import to_train_config

log = logging.getLogger(__name__)

# Member i's result, the moment it ends: its RunResult, or the exception a solo run would raise.
ResultHandler = Callable[[int, "RunResult | BaseException"], None]


@dataclass(frozen=True)
class Member:
    """One trial of the population: its composed config (no hydra node) and where it records."""

    cfg: DictConfig
    run_dir: Path
    trial: TrialLink | None
    overrides: list[str]


@dataclass
class _Open:
    """A member still training: what its record needs at its end."""

    cfg: TrainConfig
    summary: RunSummary
    loggers: RunLoggers


def run_members(
    members: Sequence[Member], on_result: ResultHandler, plans_seen: Path | None = None
) -> None:
    """Validate, train and record `members` as one population; each result to `on_result`.

    A member whose config is refused ends alone, before any training. An error of the whole
    population (an infeasible architecture, a bug) ends every member still open with it.
    Ctrl-C or SIGTERM records every open member as interrupted, then propagates.
    """
    open_: dict[int, _Open] = {}

    def end(i: int, result: RunResult | BaseException) -> None:
        state = open_.pop(i)
        state.loggers.close(state.summary.data["status"], state.summary.data["error"])
        on_result(i, result)

    def fail_open(err: BaseException, status: Status, error: str) -> None:
        for i in list(open_):
            open_[i].summary.finish(status, error=_shown(members[i].trial, error))
            end(i, err)

    for i, member in enumerate(members):
        member.run_dir.mkdir(parents=True, exist_ok=True)
        trial = member.trial
        summary = RunSummary(
            member.run_dir,
            overrides=member.overrides,
            trial=trial.describe() if trial is not None else None,
        )
        try:
            typed = to_train_config(member.cfg)
            loggers = open_loggers(typed, member.run_dir, trial)
        except LinesweepError as err:
            summary.finish(err.status, error=_shown(trial, str(err)))
            on_result(i, err)
            continue
        open_[i] = _Open(typed, summary, loggers)
    try:
        _train(members, open_, end, plans_seen)
    except LinesweepError as err:
        fail_open(err, err.status, str(err))
    except KeyboardInterrupt as err:  # SIGTERM from the sweep (the task's handler), or Ctrl-C
        for i in list(open_):
            open_[i].summary.finish(
                Status.INTERRUPTED,
                error=f"interrupted by {interrupted_by(err)}",
                **finished_so_far(members[i].run_dir),
            )
            state = open_.pop(i)
            state.loggers.close(Status.INTERRUPTED.value, state.summary.data["error"])
            with contextlib.suppress(OSError):  # told, as a trial's process tells its verdict
                on_result(i, err)
        raise
    except Exception as err:
        file_log.error("population failed with an unexpected error:\n%s", traceback.format_exc())
        fail_open(err, Status.FAILED, f"{type(err).__name__}: {err}")


def _train(
    members: Sequence[Member],
    open_: dict[int, _Open],
    end: Callable[[int, RunResult | BaseException], None],
    plans_seen: Path | None,
) -> None:
    live = list(open_)  # member k of the population is members[live[k]]
    if not live:
        return
    cfgs = [open_[i].cfg for i in live]
    first = cfgs[0]
    plan = plan_cnn(first.model, first.data.image_size)  # InfeasibleArchitecture: every member's
    check_population_fits(dataclasses.replace(first, replicates=len(live)), plan)
    log_plan(plan.table(), plans_seen)
    seeds = [derive_seeds(c.seed) for c in cfgs]  # a solo run's seeds, member for member
    device = resolve_device(first.trainer.device)
    threads = resolve_threads(first.trainer.num_threads)
    for i, s in zip(live, seeds, strict=True):
        open_[i].summary.data.update(seeds=s.as_dict(), device=str(device), num_threads=threads)

    with cpu_settings(threads):
        splits: dict[tuple[int, int], tuple[Split, Split]] = {}  # one pair per data seed pair
        for c, s in zip(cfgs, seeds, strict=True):
            if (s.train_data, s.val_data) not in splits:
                train, val = make_splits(c.data, s.train_data, s.val_data)
                splits[s.train_data, s.val_data] = (train.to(device), val.to(device))
        pairs = [splits[s.train_data, s.val_data] for s in seeds]
        trains, vals = [p[0] for p in pairs], [p[1] for p in pairs]
        models = [
            build_model(c.model, plan, s.model_init).to(device)
            for c, s in zip(cfgs, seeds, strict=True)
        ]
        check = check_plan(models[0], plan)
        if not check.agrees:  # a bug in the arithmetic, never the user's fault
            raise RuntimeError("shape plan disagrees with torch: " + "; ".join(check.mismatches()))
        for i in live:
            write_shapes(members[i].run_dir, check.to_record())
            open_[i].loggers.log_plan(members[i].run_dir / SHAPES)
        log.info(
            "%d trials train as one population: %d parameters each, %d data split(s)",
            len(live), plan.n_params, len(splits),
        )  # fmt: skip
        prune_on = first.objective.metrics[0]

        def finish(k: int, outcome: PopulationOutcome) -> None:
            i = live[k]
            if i not in open_:  # ended already (its storage failed)
                return
            state, trial = open_[i], members[i].trial
            fit = FitOutcome(outcome.histories[k], outcome.statuses[k], outcome.reasons[k])
            run_dir = members[i].run_dir
            try:
                write_weights(run_dir, models[k].state_dict())
                caption = run_caption(run_dir, state.summary.data.get("overrides"))
                drawing = Drawing(run_dir / "plots", state.cfg.plots, trains[k], models[k], caption)
                plots = drawing.finish(fit.history)  # in this process: the population waits
                result: RunResult | BaseException = record_run(
                    state.cfg, run_dir, state.summary, plan, fit, plots, state.loggers, trial
                )
            except RunStopped as stopped:
                result = stopped
            end(i, result)

        def after_epoch(histories: Sequence[Sequence[EpochMetrics]]) -> list[int]:
            stop = []
            for k, i in enumerate(live):
                if i not in open_:
                    continue
                history, trial = histories[k], members[i].trial
                write_metrics(members[i].run_dir, history)
                open_[i].loggers.log_epoch(history[-1].as_row())
                if trial is None or prune_on == "n_params":
                    continue
                try:
                    if trial.report(history[-1].epoch, getattr(history[-1], prune_on)):
                        stop.append(k)
                except LinesweepError as err:  # this trial's storage failed: it fails alone
                    open_[i].summary.finish(err.status, error=_shown(trial, str(err)))
                    end(i, err)
                    stop.append(k)  # frozen
            return stop

        outcome = fit_population(
            models,
            [c.optimizer for c in cfgs],
            trains[0] if len(splits) == 1 else trains,  # one split: shared views, no copies
            vals[0] if len(splits) == 1 else vals,
            first.trainer,
            [s.shuffle for s in seeds],
            after_epoch,
            finish,
        )
        for k in range(len(live)):
            finish(k, outcome)


def _shown(trial: TrialLink | None, text: str) -> str:
    """An error's text as it may be written: the sweep storage's password masked."""
    return trial.redact(text) if trial is not None else text
