"""One path for every run: a single run, a run's replicates, a sweep's trials in a population.

    python -m linesweep.train                                  # one run: a population of one
    python -m linesweep.train replicates=8                     # one run, eight members
    python -m linesweep.train -m hparams_search=channels_lr    # trials trained as populations

`train_runs` takes runs (a composed config and a folder each) and takes each through the same
steps: open (validate, plan, record `running`), set up its members (seeds, data, models at
their own widths), train every member of a group of runs as one population
(`linesweep.run.population`), and record each run the moment its last member ends
(`linesweep.run.recording`). A run of R replicates is R members; a sweep's trial is a run like
any other. Whatever ends a run (refused, infeasible, diverged, a full disk, Ctrl-C, a bug), it
ends here, recorded, with its typed outcome handed to the caller: one exception boundary for
all (`_ending_on_error`).

Runs train together when their configs differ only in what a member may have of its own
(`linesweep.run.grouping`): the seed, the optimizer's hyperparameters and the channel counts.
An optimizer outside the hand-written step's family (amsgrad) trains alone, through autograd.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig

from linesweep.core.errors import LinesweepError, RunStopped, interrupted_by
from linesweep.core.files import NO_ROOM, make_folder
from linesweep.core.metrics import EpochMetrics, spread
from linesweep.core.record import (
    SHAPES,
    RecordFile,
    RunRecord,
    finished_so_far,
    write_metrics,
    write_shapes,
)
from linesweep.core.status import Status
from linesweep.core.trial_link import TrialLink
from linesweep.run.budget import check_population_fits
from linesweep.run.config import TrainConfig
from linesweep.run.data import Split, make_splits
from linesweep.run.drawing import Drawing, drawing_beside, run_caption
from linesweep.run.grouping import group_runs
from linesweep.run.loggers import RunLoggers, open_loggers
from linesweep.run.model import LinesCNN, build_model, check_plan
from linesweep.run.population import PopulationOutcome, fit_population, population_rule
from linesweep.run.recording import (
    MemberEnd,
    RunResult,
    file_log,
    finish_run,
    log,
    write_member_weights,
)
from linesweep.run.seeds import Seeds, derive_seeds
from linesweep.run.shapes import ShapePlan, plan_cnn
from linesweep.run.step import Unsupported, UpdateRule
from linesweep.run.trainer import cpu_settings, fit, resolve_device, resolve_threads
from linesweep.run.validation import to_train_config

# Run i's outcome, the moment it ends: its RunResult, or the exception a run ending so raises.
RunEnd = Callable[[int, "RunResult | BaseException"], None]


@dataclass(frozen=True)
class RunSpec:
    """A run to train: its composed task config (no hydra node), its folder and its trial."""

    cfg: DictConfig
    run_dir: Path
    trial: TrialLink | None = None
    overrides: Sequence[str] = ()  # as typed: recorded, and on every picture's caption


@dataclass
class _Run:
    """A run between its opening and its end."""

    index: int
    spec: RunSpec
    cfg: TrainConfig
    file: RecordFile
    loggers: RunLoggers
    plan: ShapePlan
    members: list[int] = field(default_factory=list)  # its members' places in the population
    ended: bool = False

    @property
    def tag(self) -> dict[str, str]:
        """`extra` for its log lines: a population's log files each keep their run's own."""
        return {"linesweep_run": str(self.spec.run_dir)}

    @property
    def label(self) -> str:
        trial = self.spec.trial
        return f"trial {trial.context.number}: " if trial is not None else ""

    def shown(self, text: str) -> str:
        """`text` as it may be written: the sweep storage's password masked."""
        return self.spec.trial.redact(text) if self.spec.trial is not None else text


def train_runs(specs: Sequence[RunSpec], on_end: RunEnd, plans_seen: Path | None = None) -> None:
    """Train and record every run of `specs`; each one's outcome to `on_end(index, outcome)`.

    A run refused by validation ends alone, before any training; runs that may share a
    population train as one. Ctrl-C or SIGTERM (a KeyboardInterrupt) records every open run
    interrupted, tells `on_end`, then propagates. `plans_seen`: in a sweep, a folder that
    remembers which shape plans were printed already.
    """
    runs: list[_Run] = []
    with _ending_on_error(runs, on_end):  # Ctrl-C anywhere: every run still open says so
        for i, spec in enumerate(specs):
            if (run := _open(i, spec, on_end)) is not None:
                runs.append(run)
        for group in group_runs(runs, key=lambda run: run.cfg):
            with _ending_on_error(group, on_end):  # a group's error ends that group's runs
                _train_group(group, on_end, plans_seen)


def _open(index: int, spec: RunSpec, on_end: RunEnd) -> _Run | None:
    """Validate and plan a run, its record `running`; None when it was refused (and ended)."""
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    trial = spec.trial
    record = RunRecord.started(
        overrides=list(spec.overrides), trial=trial.describe() if trial is not None else None
    )
    file = RecordFile(spec.run_dir, record)
    try:
        cfg = to_train_config(spec.cfg)
        plan = plan_cnn(cfg.model, cfg.data.image_size)  # InfeasibleArchitecture before any work
        if cfg.replicates > 1:
            population_rule(cfg.optimizer, cfg.replicates)  # amsgrad: refused now
        loggers = open_loggers(cfg, spec.run_dir, trial)  # a missing extra: one line, up front
    except LinesweepError as err:
        file.finish(err.status, error=trial.redact(str(err)) if trial is not None else str(err))
        on_end(index, err)
        return None
    except KeyboardInterrupt as err:
        file.finish(Status.INTERRUPTED, error=f"interrupted by {interrupted_by(err)}")
        on_end(index, err)
        raise
    return _Run(index, spec, cfg, file, loggers, plan)


def _end(run: _Run, outcome: RunResult | BaseException, on_end: RunEnd) -> None:
    run.ended = True
    run.loggers.close(run.file.record.status.value, run.file.record.error)
    on_end(run.index, outcome)


@contextlib.contextmanager
def _ending_on_error(runs: Sequence[_Run], on_end: RunEnd) -> Iterator[None]:
    """Whatever stops training here ends every run still open, recorded, and tells `on_end`."""
    try:
        yield
    except LinesweepError as err:  # an estimate refused it, a storage failed...
        for run in [r for r in runs if not r.ended]:
            run.file.finish(err.status, error=run.shown(str(err)))
            _end(run, err, on_end)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM (the task's handler), a sweep stopping
        for run in [r for r in runs if not r.ended]:
            with contextlib.suppress(OSError):  # told, as a trial's process tells its verdict
                run.file.finish(
                    Status.INTERRUPTED,
                    error=f"interrupted by {interrupted_by(err)}",
                    **finished_so_far(run.spec.run_dir),
                )
                _end(run, err, on_end)
        raise
    except Exception as err:
        trace = traceback.format_exc()
        for run in [r for r in runs if not r.ended]:
            with contextlib.suppress(OSError):  # the disk that failed the run may refuse this too
                run.file.finish(
                    Status.FAILED,
                    error=run.shown(f"{type(err).__name__}: {err}"),
                    **finished_so_far(run.spec.run_dir),
                )
            if not (isinstance(err, OSError) and err.errno in NO_ROOM):
                shown = run.shown(trace).rstrip()
                file_log.error("run failed with an unexpected error:\n%s", shown, extra=run.tag)
            _end(run, err, on_end)


# ---------------------------------------------------------------- one group, one population


@dataclass(frozen=True)
class _Member:
    run: _Run
    replicate: int
    seeds: Seeds


def _train_group(runs: list[_Run], on_end: RunEnd, plans_seen: Path | None) -> None:
    first = runs[0].cfg
    _check_fits(runs, sum(run.cfg.replicates for run in runs))  # before building anything
    members = [
        _Member(run, r, derive_seeds(run.cfg.seed, r))
        for run in runs
        for r in range(run.cfg.replicates)
    ]
    for m, member in enumerate(members):
        member.run.members.append(m)
    for run in runs:
        log_plan(run.plan.table(), plans_seen, run.tag if len(runs) > 1 else None)
    device, threads = (
        resolve_device(first.trainer.device),
        resolve_threads(first.trainer.num_threads),
    )
    for run in runs:
        seeds = members[run.members[0]].seeds
        run.file.record.seeds, run.file.record.device = seeds.as_dict(), str(device)
        run.file.record.num_threads = threads
    with cpu_settings(threads):
        splits: dict[tuple[int, int], tuple[Split, Split]] = {}  # one pair per data seed pair
        for member in members:
            pair = (member.seeds.train_data, member.seeds.val_data)
            if pair not in splits:
                train, val = make_splits(member.run.cfg.data, *pair)
                splits[pair] = (train.to(device), val.to(device))
        data = [splits[m.seeds.train_data, m.seeds.val_data] for m in members]
        models = [
            build_model(m.run.cfg.model, m.run.plan, m.seeds.model_init).to(device) for m in members
        ]
        for run in runs:
            check = check_plan(models[run.members[0]], run.plan)
            write_shapes(run.spec.run_dir, check.to_record())
            if not check.agrees:  # a bug in the arithmetic, never the user's fault
                raise RuntimeError(
                    "shape plan disagrees with torch: " + "; ".join(check.mismatches())
                )
            run.loggers.log_plan(run.spec.run_dir / SHAPES)
            run.file.write()
        _say_population(runs, members, len(splits))
        alone = len(runs) == 1
        with contextlib.ExitStack() as stack:
            drawing = None
            if alone:  # one run: its pictures drawn beside the training, by a second process
                run = runs[0]
                caption = run_caption(run.spec.run_dir, run.spec.overrides)
                drawing = stack.enter_context(
                    drawing_beside(
                        run.spec.run_dir / "plots", run.cfg.plots, data[0][0], models[0], caption
                    )
                )
            _Training(runs, members, models, data, drawing, on_end).fit()


def _check_fits(runs: list[_Run], count: int) -> None:
    """The memory estimate of the whole population, at its widest member's channel counts."""
    first = runs[0].cfg
    out_1 = max(run.cfg.model.out_1 for run in runs)
    out_2 = max(run.cfg.model.out_2 for run in runs)
    model = replace(first.model, out_1=out_1, out_2=out_2)
    plan = plan_cnn(model, first.data.image_size)
    key = "replicates" if len(runs) == 1 else "hydra.sweeper.population_size"
    check_population_fits(replace(first, model=model, replicates=count), plan, key=key)


def _say_population(runs: list[_Run], members: list[_Member], n_splits: int) -> None:
    run = runs[0]
    n_params = ", ".join(sorted({str(r.plan.n_params) for r in runs}, key=int))
    if len(members) == 1:
        log.info("shape plan checked against a forward pass: %d parameters", run.plan.n_params)
    elif len(runs) == 1:
        log.info(
            "shape plan checked against a forward pass: %d parameters; %d replicates train as one "
            "population", run.plan.n_params, len(members),
        )  # fmt: skip
    else:
        out_1 = max(r.cfg.model.out_1 for r in runs)
        out_2 = max(r.cfg.model.out_2 for r in runs)
        log.info(
            "%d runs (%d members) train as one population, padded to out_1=%d out_2=%d: %s "
            "parameters, %d data split(s)", len(runs), len(members), out_1, out_2, n_params,
            n_splits,
        )  # fmt: skip


class _Training:
    """One population's training, and each run's end the moment its last member ends."""

    def __init__(
        self,
        runs: list[_Run],
        members: list[_Member],
        models: list[LinesCNN],
        data: list[tuple[Split, Split]],
        drawing: Drawing | None,
        on_end: RunEnd,
    ) -> None:
        self.runs, self.members, self.models, self.data = runs, members, models, data
        self.drawing, self.on_end = drawing, on_end
        self.done: set[int] = set()  # members that ended
        self.trainer = runs[0].cfg.trainer
        self.outcome: PopulationOutcome | None = None

    def fit(self) -> None:
        run = self.runs[0]
        if len(self.members) == 1 and not _hand_step_runs(run.cfg):
            self._fit_with_autograd(run)
            return
        self.outcome = fit_population(
            self.models,
            [m.run.cfg.optimizer for m in self.members],
            [train for train, _ in self.data],  # members of one split share its object
            [val for _, val in self.data],
            self.trainer,
            [m.seeds.shuffle for m in self.members],
            self._after_epoch,
            self._member_end,
        )
        for run in self.runs:
            if not run.ended:
                self.done.update(run.members)
                self._finish(run, self.outcome)

    def _fit_with_autograd(self, run: _Run) -> None:
        """The fallback for an optimizer outside the hand step's family: torch's autograd."""
        (member,) = self.members
        train, val = self.data[0]

        def after_epoch(history: Sequence[EpochMetrics]) -> bool:
            return 0 in self._after_epoch([history])

        fitted = fit(self.models[0], run.cfg.optimizer, train, val, self.trainer,
                     member.seeds.shuffle, after_epoch)  # fmt: skip
        status = Status(fitted.status)
        self.outcome = PopulationOutcome([fitted.history], [status], [fitted.reason])
        self.done.add(0)
        self._finish(run, self.outcome)

    def _after_epoch(self, histories: Sequence[Sequence[EpochMetrics]]) -> set[int]:
        """Each open run's epoch recorded, logged and reported to its trial; the members of runs
        its pruner (or its failed storage) stops."""
        epoch = max(len(h) for h in histories)
        stop: set[int] = set()
        training = [
            m for m in range(len(histories)) if m not in self.done and len(histories[m]) == epoch
        ]
        for run in self.runs:
            live = [m for m in run.members if m in training]
            if run.ended or not live:
                continue
            mine = [histories[m] for m in run.members]
            write_metrics(run.spec.run_dir, *mine)
            if len(mine[0]) == epoch:
                run.loggers.log_epoch(mine[0][-1].as_row())  # member 0: the plain run's
            self._say_epoch(run, mine, epoch)
            if self._pruned(run, mine, epoch):
                stop.update(live)
        if len(self.runs) > 1:
            accuracies = [histories[m][-1].val_accuracy for m in training]
            log.info(
                "epoch %d/%d  %d of %d members training  val_acc mean %.4g  min %.4g  max %.4g",
                epoch, self.trainer.epochs, len(training), len(histories),
                sum(accuracies) / len(accuracies), min(accuracies), max(accuracies),
            )  # fmt: skip
        return stop

    def _pruned(self, run: _Run, mine: list[Sequence[EpochMetrics]], epoch: int) -> bool:
        """Whether `run`'s trial says to stop it after `epoch`, judged on the run's statistic.

        A storage that fails ends this run alone (failed), and stops its members.
        """
        trial, metric = run.spec.trial, run.cfg.objective.metrics[0]
        if trial is None or metric == "n_params":
            return False
        now = [getattr(h[-1], metric) if len(h) == epoch else math.nan for h in mine]
        if len(now) == 1:
            value = now[0]
        else:
            rep = run.cfg.replicate
            value = spread(now, metric, rep.success_threshold)[rep.statistic]
        try:
            return trial.report(epoch, value)
        except LinesweepError as err:
            run.file.finish(
                err.status, error=run.shown(str(err)), **finished_so_far(run.spec.run_dir)
            )
            _end(run, err, self.on_end)
            return True

    def _say_epoch(self, run: _Run, mine: list[Sequence[EpochMetrics]], epoch: int) -> None:
        say = log.info if len(self.runs) == 1 else file_log.info
        total = self.trainer.epochs
        if len(mine) == 1:
            row = mine[0][-1]
            say(
                "%sepoch %d/%d  cost %.4f  val_loss %.4f  val_acc %.4f  (%.2f s)",
                run.label, epoch, total, row.train_cost, row.val_loss, row.val_accuracy,
                row.epoch_s, extra=run.tag,
            )  # fmt: skip
            return
        rows = [h[-1] for h in mine if len(h) == epoch]
        accuracies = [row.val_accuracy for row in rows]
        say(
            "%sepoch %d/%d  %d/%d replicates training  val_acc mean %.4f  min %.4f  (%.2f s)",
            run.label, epoch, total, len(rows), len(mine), sum(accuracies) / len(accuracies),
            min(accuracies), rows[0].epoch_s, extra=run.tag,
        )  # fmt: skip

    def _member_end(self, m: int, outcome: PopulationOutcome) -> None:
        """Member m left the population early: its run ends once all its members have."""
        self.done.add(m)
        run = self.members[m].run
        if not run.ended and all(k in self.done for k in run.members):
            self._finish(run, outcome)

    def _finish(self, run: _Run, outcome: PopulationOutcome) -> None:
        """Weights, pictures and record of a run whose members all ended; `on_end` told."""
        with _ending_on_error([run], self.on_end):  # a full disk here fails this run alone
            ends = [
                MemberEnd(outcome.histories[m], outcome.statuses[m], outcome.reasons[m],
                          {"model_init": self.members[m].seeds.model_init,
                           "shuffle": self.members[m].seeds.shuffle})
                for m in run.members
            ]  # fmt: skip
            models = [self.models[m] for m in run.members]
            write_member_weights(run.spec.run_dir, models)
            plots = self._draw(run, ends[0].history)
            try:
                result: RunResult | RunStopped = finish_run(
                    run.cfg, run.spec.run_dir, run.file, run.plan.n_params, ends, plots,
                    run.loggers, console=len(self.runs) == 1 and run.spec.trial is None,
                    tag=run.tag, trial=run.spec.trial,
                )  # fmt: skip
            except RunStopped as stopped:
                result = stopped
            _end(run, result, self.on_end)

    def _draw(self, run: _Run, history: list[EpochMetrics]) -> list[Path]:
        if self.drawing is not None:
            return self.drawing.finish(history)
        first = run.members[0]
        caption = run_caption(run.spec.run_dir, run.spec.overrides)
        drawing = Drawing(run.spec.run_dir / "plots", run.cfg.plots, self.data[first][0],
                          self.models[first], caption)  # fmt: skip
        return drawing.finish(history)  # in this process: the population waits


def _hand_step_runs(cfg: TrainConfig) -> bool:
    """Whether the hand-written step runs this config's optimizer (else autograd trains it)."""
    try:
        UpdateRule.of_config(cfg.optimizer)
    except Unsupported:
        return False
    return True


def log_plan(table: str, plans_seen: Path | None, tag: dict[str, str] | None = None) -> None:
    """The shape table: in the run's log always, on the console once per architecture.

    A sweep's trials mostly repeat a few architectures: the first trial of each prints its table
    (it creates a marker named by the table's digest; creation is atomic across processes), the
    others keep it in their own train.log only.
    """
    message = "shape plan (one image):\n%s"
    if plans_seen is not None:
        marker = plans_seen / hashlib.sha1(table.encode()).hexdigest()[:16]
        try:
            make_folder(plans_seen)  # a folder of the sweep's own, never a link planted there
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            file_log.info(message, table, extra=tag or {})
            return
        except OSError:
            pass  # cannot remember: print it
    log.info(message, table, extra=tag or {})
