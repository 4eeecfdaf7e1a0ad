"""One run, start to end: plan, check, train and record, in a folder someone else chose.

`run` is a plain function of a composed config and a folder: it validates, trains, and leaves the
run record (`linesweep.core.record`) whatever happens. A run that ends other than complete raises
the typed exception of its status (`linesweep.core.errors`) after recording it, so the caller
decides what that means: an exit code on the command line, a trial state in a sweep.

Why one module over 300 lines: a run's whole story, from config to record, single or a
population of replicates, reads top to bottom here; each step is a function of its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import signal
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from linesweep.core.errors import Diverged, LinesweepError, Pruned, interrupted_by
from linesweep.core.metrics import (
    EpochMetrics,
    best_epoch,
    directions,
    objective_values,
    population_objective,
    spread,
)
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
from linesweep.run.data import make_splits
from linesweep.run.drawing import drawing_beside, run_caption
from linesweep.run.loggers import RunLoggers, open_loggers
from linesweep.run.model import build_model, check_plan
from linesweep.run.population import fit_population, population_rule
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import ShapePlan, plan_cnn
from linesweep.run.trainer import (
    FitOutcome,
    cpu_settings,
    fit,
    resolve_device,
    resolve_threads,
)
from linesweep.run.validation import to_train_config

log = logging.getLogger(__name__)
# Lines for the run's train.log only (conf/hydra/job_logging): the traceback of an unexpected
# error (the console gets one line), a shape table the console has already shown.
file_log = logging.getLogger("linesweep.file")
# A full or read-only disk is no bug: the reason names the file, no traceback is needed.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@dataclass(frozen=True)
class RunResult:
    """A run that trained every epoch: its objective, one value per objective metric."""

    objective: tuple[float, ...]
    run_dir: Path

    @property
    def value(self) -> float | tuple[float, ...]:
        """What a sweeper receives: one float, or a tuple for several objectives."""
        return self.objective[0] if len(self.objective) == 1 else self.objective


def train(
    cfg: TrainConfig,
    run_dir: Path,
    summary: RunSummary,
    trial: TrialLink | None = None,
    loggers: RunLoggers | None = None,
    plans_seen: Path | None = None,
) -> RunResult:
    """Plan, check, train, and record one run in `run_dir`; raise on any other end than complete.

    `plans_seen`: in a sweep, a folder that remembers which shape plans were already printed.
    """
    loggers = loggers or RunLoggers()  # none: only the run's own files
    plan = plan_cnn(cfg.model, cfg.data.image_size)  # InfeasibleArchitecture before any work
    check_population_fits(cfg, plan)  # a ConfigError before any large allocation
    log_plan(plan.table(), plans_seen)
    if cfg.replicates > 1:
        return train_population(cfg, run_dir, summary, plan, trial, loggers)

    seeds = derive_seeds(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    threads = resolve_threads(cfg.trainer.num_threads)
    summary.data.update(seeds=seeds.as_dict(), device=str(device), num_threads=threads)

    with cpu_settings(threads):
        train_split, val_split = make_splits(cfg.data, seeds.train_data, seeds.val_data)
        model = build_model(cfg.model, plan, seeds.model_init).to(device)
        check = check_plan(model, plan)
        write_shapes(run_dir, check.to_record())
        if not check.agrees:  # a bug in the arithmetic, never the user's fault
            raise RuntimeError("shape plan disagrees with torch: " + "; ".join(check.mismatches()))
        loggers.log_plan(run_dir / SHAPES)  # the loggers start here: after the plan check
        log.info("shape plan checked against a forward pass: %d parameters", plan.n_params)

        prune_on = cfg.objective.metrics[0]

        def after_epoch(history: Sequence[EpochMetrics]) -> bool:
            write_metrics(run_dir, history)
            loggers.log_epoch(history[-1].as_row())
            if trial is None or prune_on == "n_params":
                return False
            return trial.report(history[-1].epoch, getattr(history[-1], prune_on))

        caption = run_caption(run_dir, summary.data.get("overrides"))
        with drawing_beside(run_dir / "plots", cfg.plots, train_split, model, caption) as drawing:
            outcome = fit(
                model,
                cfg.optimizer,  # the config, not a torch optimizer: the hand step needs none
                train_split.to(device),
                val_split.to(device),
                cfg.trainer,
                seeds.shuffle,
                after_epoch,
            )
            write_weights(run_dir, model.state_dict())
            plots = drawing.finish(outcome.history)
        return record_run(cfg, run_dir, summary, plan, outcome, plots, loggers, trial)


def record_run(
    cfg: TrainConfig,
    run_dir: Path,
    summary: RunSummary,
    plan: ShapePlan,
    outcome: FitOutcome,
    plots: list[Path],
    loggers: RunLoggers,
    trial: TrialLink | None,
) -> RunResult:
    """Record the end of a run that trained (its weights and `plots` written): the summary and
    the loggers' result; raise unless it ended complete.

    One run's ending, whether it trained alone or as a member of a sweep's population.
    """
    status = Status(outcome.status)
    if status == Status.DIVERGED:  # no trustworthy value
        values = tuple(math.nan for _ in cfg.objective.metrics)
    else:
        values = objective_values(
            outcome.history, plan.n_params, cfg.objective.metrics, cfg.objective.epoch
        )
    summary.finish(
        status,
        error=outcome.reason if status == Status.DIVERGED else None,
        reason=outcome.reason,
        objective={
            "metrics": cfg.objective.metrics,
            "directions": directions(cfg.objective.metrics),
            "epoch": cfg.objective.epoch,
            "values": list(values),
        },
        epochs_run=len(outcome.history),
        final=outcome.history[-1].as_row(),
        best=best_epoch(outcome.history, "val_accuracy").as_row(),
        n_params=plan.n_params,
        shape_check="agree",
        plots=[p.name for p in plots],
    )
    loggers.log_result(dict(zip(cfg.objective.metrics, values, strict=True)), plots)
    # In a sweep, the sweep's line for the trial says this: the console gets it once.
    (log if trial is None else file_log).info(
        "run %s: objective %s, folder %s", status, values, run_dir
    )
    epochs = len(outcome.history)
    if status == Status.DIVERGED:
        raise Diverged(f"{outcome.reason} (recorded in {summary.path})", epochs)
    if status == Status.PRUNED:
        raise Pruned(outcome.reason or f"pruned after epoch {epochs}", epochs)
    return RunResult(values, run_dir)


def train_population(
    cfg: TrainConfig,
    run_dir: Path,
    summary: RunSummary,
    plan: ShapePlan,
    trial: TrialLink | None,
    loggers: RunLoggers,
) -> RunResult:
    """`train` for `cfg.replicates` > 1: the replicates train as one population, the record
    holds each one's numbers and their spread, and the objective is `replicate.statistic`."""
    count, rep, metrics = cfg.replicates, cfg.replicate, cfg.objective.metrics
    population_rule(cfg.optimizer, count)  # an optimizer the population cannot run: refused now
    seeds = [derive_seeds(cfg.seed, r) for r in range(count)]  # same data seeds for all
    device = resolve_device(cfg.trainer.device)
    threads = resolve_threads(cfg.trainer.num_threads)
    summary.data.update(seeds=seeds[0].as_dict(), device=str(device), num_threads=threads)

    with cpu_settings(threads):
        train_split, val_split = make_splits(cfg.data, seeds[0].train_data, seeds[0].val_data)
        models = [build_model(cfg.model, plan, s.model_init).to(device) for s in seeds]
        check = check_plan(models[0], plan)
        write_shapes(run_dir, check.to_record())
        if not check.agrees:  # a bug in the arithmetic, never the user's fault
            raise RuntimeError("shape plan disagrees with torch: " + "; ".join(check.mismatches()))
        loggers.log_plan(run_dir / SHAPES)
        log.info(
            "shape plan checked against a forward pass: %d parameters; %d replicates train as "
            "one population", plan.n_params, count,
        )  # fmt: skip

        prune_on = metrics[0]

        def after_epoch(histories: Sequence[Sequence[EpochMetrics]]) -> range:
            write_metrics(run_dir, *histories)
            epoch = max(len(h) for h in histories)
            if len(histories[0]) == epoch:
                loggers.log_epoch(histories[0][-1].as_row())  # replicate 0: the plain run
            if trial is None or prune_on == "n_params":
                return range(0)
            # The pruner judges the population by the statistic the sweeper will see: it stops
            # every replicate or none.
            now = [getattr(h[-1], prune_on) if len(h) == epoch else math.nan for h in histories]
            value = spread(now, prune_on, rep.success_threshold)[rep.statistic]
            return range(count) if trial.report(epoch, value) else range(0)

        caption = run_caption(run_dir, summary.data.get("overrides"))
        # Replicate 0's pictures: the plain run's.
        with drawing_beside(
            run_dir / "plots", cfg.plots, train_split, models[0], caption
        ) as drawing:
            outcome = fit_population(
                models,
                cfg.optimizer,
                train_split.to(device),
                val_split.to(device),
                cfg.trainer,
                [s.shuffle for s in seeds],
                after_epoch,
            )
            for r, model in enumerate(models):
                write_weights(run_dir, model.state_dict(), r)
            first = outcome.histories[0]
            plots = drawing.finish(first)

    per_replicate = [
        tuple(math.nan for _ in metrics)
        if status == Status.DIVERGED.value
        else objective_values(history, plan.n_params, metrics, cfg.objective.epoch)
        for history, status in zip(outcome.histories, outcome.statuses, strict=True)
    ]
    values = population_objective(per_replicate, metrics, rep.statistic, rep.success_threshold)
    stats = {
        metric: spread([row[i] for row in per_replicate], metric, rep.success_threshold)
        for i, metric in enumerate(metrics)
    }
    members = [
        {
            "replicate": r,
            "status": outcome.statuses[r],
            "reason": outcome.reasons[r],
            "seeds": {"model_init": seeds[r].model_init, "shuffle": seeds[r].shuffle},
            "epochs_run": len(outcome.histories[r]),
            "final": outcome.histories[r][-1].as_row(),
            "values": list(per_replicate[r]),
        }
        for r in range(count)
    ]
    if all(s == Status.DIVERGED.value for s in outcome.statuses):
        status, reason = Status.DIVERGED, f"every replicate diverged ({outcome.reasons[0]}, ...)"
    elif Status.PRUNED.value in outcome.statuses:
        status, reason = Status.PRUNED, outcome.reasons[outcome.statuses.index("pruned")]
    else:
        status, reason = Status.COMPLETE, None
    summary.finish(
        status,
        error=reason if status == Status.DIVERGED else None,
        reason=reason,
        objective={
            "metrics": metrics,
            "directions": directions(metrics),
            "epoch": cfg.objective.epoch,
            "statistic": rep.statistic,
            "values": list(values),
        },
        epochs_run=len(first),
        final=first[-1].as_row(),
        best=best_epoch(first, "val_accuracy").as_row(),
        n_params=plan.n_params,
        shape_check="agree",
        plots=[p.name for p in plots],
        replicates={
            "count": count,
            "statistic": rep.statistic,
            "success_threshold": rep.success_threshold,
            "diverged": outcome.statuses.count(Status.DIVERGED.value),
            "members": members,
            "stats": stats,
        },
    )
    for member in members:
        final = member["final"]
        log.info(
            "replicate %d: %s after %d epochs  val_loss %.4f  val_acc %.4f",
            member["replicate"], member["status"], member["epochs_run"],
            final["val_loss"], final["val_accuracy"],
        )  # fmt: skip
    for metric, st in stats.items():
        log.info(
            "%s over %d of %d replicates: mean %.4f  std %.4f  min %.4f  max %.4f  "
            "success rate %.2f (threshold %g)",
            metric, st["count"], count, st["mean"], st["std"], st["min"], st["max"],
            st["success_rate"], rep.success_threshold,
        )  # fmt: skip
    loggers.log_result(dict(zip(metrics, values, strict=True)), plots)
    log.info("run %s: objective (%s) %s, folder %s", status, rep.statistic, values, run_dir)
    if status == Status.DIVERGED:
        raise Diverged(f"{reason} (recorded in {summary.path})", len(first))
    if status == Status.PRUNED:
        raise Pruned(reason or f"pruned after epoch {len(first)}", len(first))
    return RunResult(values, run_dir)


def run(
    cfg: DictConfig,
    run_dir: Path,
    trial: TrialLink | None = None,
    overrides: list[str] | None = None,
    plans_seen: Path | None = None,
) -> RunResult:
    """Validate a composed config and train, recording how the run ended in summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(
        run_dir,
        overrides=overrides or [],
        trial=trial.describe() if trial is not None else None,
    )
    loggers = None
    try:
        with _sigterm_interrupts():
            typed = to_train_config(cfg)
            loggers = open_loggers(typed, run_dir, trial)  # a missing extra: one line, up front
            return train(typed, run_dir, summary, trial, loggers, plans_seen)
    except (Diverged, Pruned):
        raise  # recorded by train()
    except LinesweepError as err:
        summary.finish(err.status, error=_shown(trial, str(err)))
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM, or a sweep stopping
        summary.finish(
            Status.INTERRUPTED,
            error=f"interrupted by {interrupted_by(err)}",
            **finished_so_far(run_dir),
        )
        raise
    except Exception as err:
        with contextlib.suppress(OSError):  # the disk that failed the run may refuse this too
            summary.finish(
                Status.FAILED,
                error=_shown(trial, f"{type(err).__name__}: {err}"),
                **finished_so_far(run_dir),
            )
        if not (isinstance(err, OSError) and err.errno in NO_ROOM):
            trace = _shown(trial, traceback.format_exc())
            file_log.error("run failed with an unexpected error:\n%s", trace.rstrip())
        raise
    finally:  # every ending passes here, with its final status
        if loggers is not None:
            loggers.close(summary.data["status"], summary.data["error"])


def log_plan(table: str, plans_seen: Path | None) -> None:
    """The shape table: in the run's log always, on the console once per architecture.

    A sweep's trials mostly repeat a few architectures: the first trial of each prints its table
    (it creates a marker named by the table's digest; creation is atomic across processes), the
    others keep it in their own train.log only.
    """
    message = "shape plan (one image):\n%s"
    if plans_seen is not None:
        marker = plans_seen / hashlib.sha1(table.encode()).hexdigest()[:16]
        try:
            plans_seen.mkdir(parents=True, exist_ok=True)
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            file_log.info(message, table)
            return
        except OSError:
            pass  # cannot remember: print it
    log.info(message, table)


def _shown(trial: TrialLink | None, text: str) -> str:
    """An error's text as it may be written: the sweep storage's password masked."""
    return trial.redact(text) if trial is not None else text


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C does, so that its record says `interrupted`."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            yield  # someone else handles SIGTERM here (a sweep running trials in-process)
            return
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a launcher's thread): signals are not ours
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
