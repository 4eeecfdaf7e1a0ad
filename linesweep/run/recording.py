"""A run's end, written once whoever trained it: its record, weights, pictures and log lines.

A run holds R >= 1 members (replicates). When the last of them ends, `finish_run` turns what
they measured into the run's record (`linesweep.core.record.RunRecord`) and raises the typed
exception of its status (`linesweep.core.errors`), or returns its `RunResult`: the same words
for a single run, a run with replicates, and a sweep's trial trained in a population.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from linesweep.core.errors import Diverged, Pruned
from linesweep.core.metrics import (
    EpochMetrics,
    best_epoch,
    directions,
    objective_values,
    population_objective,
    spread,
)
from linesweep.core.record import Member, Objective, RecordFile, Replicates, write_weights
from linesweep.core.status import Status
from linesweep.core.trial_link import TrialLink, TrialResult
from linesweep.run.config import TrainConfig
from linesweep.run.loggers import RunLoggers

log = logging.getLogger("linesweep.run")
# Lines for the run's train.log only (conf/hydra/job_logging): the traceback of an unexpected
# error (the console gets one line), a shape table the console has already shown.
file_log = logging.getLogger("linesweep.file")


@dataclass(frozen=True)
class RunResult:
    """A run that trained every epoch: its objective, one value per objective metric."""

    objective: tuple[float, ...]
    run_dir: Path

    @property
    def value(self) -> float | tuple[float, ...]:
        """What a sweeper receives: one float, or a tuple for several objectives."""
        return self.objective[0] if len(self.objective) == 1 else self.objective


@dataclass(frozen=True)
class MemberEnd:
    """How one member ended: its history, status (complete, pruned, diverged) and reason."""

    history: list[EpochMetrics]
    status: Status
    reason: str | None
    seeds: dict[str, int]


def finish_run(
    cfg: TrainConfig,
    run_dir: Path,
    file: RecordFile,
    n_params: int,
    members: Sequence[MemberEnd],
    plots: list[Path],
    loggers: RunLoggers,
    console: bool,
    tag: dict[str, str],
    trial: TrialLink | None = None,
) -> RunResult:
    """Record the end of a run whose members all trained (weights and plots already written);
    raise Diverged or Pruned unless it ended complete.

    One member: its status and values are the run's. Several: the run's values are
    `replicate.statistic` over the members' (a diverged one counts as a failure), it diverged
    only when every member did, and a pruned run's members were all stopped together.
    `console`: whether its lines go to the console too (not when a sweep's line says it).
    `trial`: a sweep's trial, told the run's result for the sweep's answer (`_tell_trial`).
    """
    metrics, rep = cfg.objective.metrics, cfg.replicate
    per_member = [
        tuple(math.nan for _ in metrics)
        if member.status == Status.DIVERGED
        else objective_values(member.history, n_params, metrics, cfg.objective.epoch)
        for member in members
    ]
    if len(members) == 1:
        status, reason, values = members[0].status, members[0].reason, per_member[0]
    else:
        values = population_objective(per_member, metrics, rep.statistic, rep.success_threshold)
        statuses = [member.status for member in members]
        if all(s == Status.DIVERGED for s in statuses):
            status, reason = Status.DIVERGED, f"every replicate diverged ({members[0].reason}, ...)"
        elif Status.PRUNED in statuses:
            status, reason = Status.PRUNED, members[statuses.index(Status.PRUNED)].reason
        else:
            status, reason = Status.COMPLETE, None
    first = members[0].history
    file.finish(
        status,
        error=reason if status == Status.DIVERGED else None,
        reason=reason,
        objective=Objective(
            metrics=list(metrics),
            directions=directions(metrics),
            epoch=cfg.objective.epoch,
            values=[v if math.isfinite(v) else None for v in values],
            statistic=rep.statistic if len(members) > 1 else None,
        ),
        epochs_run=len(first),
        final=first[-1].as_row(),
        best=best_epoch(first, "val_accuracy").as_row(),
        n_params=n_params,
        shape_check="agree",
        plots=[p.name for p in plots],
        replicates=_replicates(cfg, members, per_member) if len(members) > 1 else None,
    )
    if trial is not None:
        _tell_trial(trial, cfg, n_params, members, per_member)
    loggers.log_result(dict(zip(metrics, values, strict=True)), plots)
    say = log.info if console else file_log.info
    if len(members) > 1:
        assert file.record.replicates is not None
        _log_replicates(cfg, members, file.record.replicates, say, tag)
    shown = ", ".join(f"{m}={v:.4g}" for m, v in zip(metrics, values, strict=True))
    statistic = f" ({rep.statistic} of {len(members)} replicates)" if len(members) > 1 else ""
    say("run %s: %s%s, folder %s", status, shown, statistic, run_dir, extra=tag)
    if status == Status.DIVERGED:
        raise Diverged(f"{reason} (recorded in {file.path})", len(first))
    if status == Status.PRUNED:
        raise Pruned(reason or f"pruned after epoch {len(first)}", len(first))
    return RunResult(values, run_dir)


def _tell_trial(
    trial: TrialLink,
    cfg: TrainConfig,
    n_params: int,
    members: Sequence[MemberEnd],
    per_member: list[tuple[float, ...]],
) -> None:
    """The run's result on its trial, for the sweep's answer (linesweep/core/trial_link.py)."""
    metric = cfg.objective.metrics[0]
    trial.record_result(
        TrialResult(
            metric=metric,
            direction=directions([metric])[0],
            epoch_rule=cfg.objective.epoch,
            values=[row[0] if math.isfinite(row[0]) else None for row in per_member],
            seeds=[dict(member.seeds) for member in members],
            n_params=n_params,
            epochs_run=max(len(member.history) for member in members),
            success_threshold=cfg.replicate.success_threshold,
        )
    )


def _replicates(
    cfg: TrainConfig, members: Sequence[MemberEnd], per_member: list[tuple[float, ...]]
) -> Replicates:
    rep, metrics = cfg.replicate, cfg.objective.metrics
    stats = {
        metric: spread([row[i] for row in per_member], metric, rep.success_threshold)
        for i, metric in enumerate(metrics)
    }
    return Replicates(
        count=len(members),
        statistic=rep.statistic,
        success_threshold=rep.success_threshold,
        diverged=sum(m.status == Status.DIVERGED for m in members),
        members=[
            Member(
                replicate=r,
                status=member.status,
                reason=member.reason,
                seeds=member.seeds,
                epochs_run=len(member.history),
                final=member.history[-1].as_row(),
                values=[v if math.isfinite(v) else None for v in per_member[r]],
            )
            for r, member in enumerate(members)
        ],
        stats={
            m: {k: v if math.isfinite(v) else None for k, v in s.items()} for m, s in stats.items()
        },
    )


def _log_replicates(
    cfg: TrainConfig,
    members: Sequence[MemberEnd],
    replicates: Replicates,
    say: Callable[..., None],
    tag: dict[str, str],
) -> None:
    for record in replicates.members:
        final = record.final
        say(
            "replicate %d: %s after %d epochs  val_loss %.4g  val_acc %.4g",
            record.replicate, record.status, record.epochs_run,
            final["val_loss"], final["val_accuracy"], extra=tag,
        )  # fmt: skip
    for metric, st in replicates.stats.items():
        say(
            "%s over %d of %d replicates: mean %s  std %s  min %s  max %s  success rate %.2f "
            "(threshold %g)",
            metric, st["count"], len(members), *(_g(st[k]) for k in ("mean", "std", "min", "max")),
            st["success_rate"], cfg.replicate.success_threshold, extra=tag,
        )  # fmt: skip


def _g(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


def write_member_weights(run_dir: Path, models: Sequence[nn.Module]) -> None:
    """Each member's weights, its own: model.pt for member 0, replicates/model_<r>.pt after."""
    for r, model in enumerate(models):
        write_weights(run_dir, model.state_dict(), r)
