"""Train the lines CNN once, leaving everything about the run in its output folder.

    python -m linesweep.train                                   # the notebook's experiment
    python -m linesweep.train model.out_1=4 optimizer.lr=0.01 data.offset=1 data.p=0.7
    python -m linesweep.train experiment=hard plots=none
    python -m linesweep.train -m model.out_1=1,2,4              # three runs, one folder each
    python -m linesweep.train -m hparams_search=channels_lr     # an Optuna study
    python -m linesweep.train --cfg job                         # print the composed config
    python -m linesweep.plan model.conv1.kernel_size=5          # the shape plan, no training

`train` is a plain function of a typed config and a folder; `main` is the thin Hydra wrapper that
finds the folder, links the run to an Optuna trial when a sweep launched it, and turns the result
into an exit status (single run) or a return value (multirun).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import io
import logging
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

from linesweep.core.errors import InfeasibleArchitecture, LinesweepError
from linesweep.core.files import atomic_write_bytes, write_csv, write_json, write_yaml
from linesweep.core.metrics import EpochMetrics, best_epoch, directions, objective_values
from linesweep.core.processes import this_process
from linesweep.run.config import TrainConfig, register_configs
from linesweep.run.data import make_splits
from linesweep.run.loggers import RunLoggers, open_loggers
from linesweep.run.model import build_model, check_plan
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.trainer import cpu_settings, fit, resolve_device, resolve_threads
from linesweep.run.validation import to_train_config
from linesweep.sweep.trial_link import TrialLink

log = logging.getLogger(__name__)

METRICS_COLUMNS = list(EpochMetrics.__dataclass_fields__)


@dataclass(frozen=True)
class RunResult:
    status: str  # complete, diverged or pruned (errors raise)
    objective: tuple[float, ...]
    reason: str | None
    run_dir: Path


class RunSummary:
    """summary.json, rewritten atomically as the run moves from `running` to its final status."""

    def __init__(self, run_dir: Path, **fields: Any) -> None:
        self.path = run_dir / "summary.json"
        self.data: dict[str, Any] = {
            "status": "running",
            "error": None,
            "started_at": _now(),
            **this_process(),  # host, pid, pid_start: so a `running` run can be told alive or dead
            **fields,
        }
        self._start = time.perf_counter()
        write_json(self.path, self.data)

    def finish(self, status: str, **fields: Any) -> None:
        self.data.update(fields, status=status, finished_at=_now())
        self.data["wall_time_s"] = time.perf_counter() - self._start
        write_json(self.path, self.data)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("linesweep", "torch", "numpy", "hydra-core", "omegaconf", "optuna"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def train(
    cfg: TrainConfig,
    run_dir: Path,
    summary: RunSummary,
    trial: TrialLink | None = None,
    loggers: RunLoggers | None = None,
) -> RunResult:
    """Plan, check, train, and record one run in `run_dir`; raise LinesweepError on bad input."""
    plan = plan_cnn(cfg.model, cfg.data.image_size)  # InfeasibleArchitecture before any work
    loggers = loggers or RunLoggers()  # none: only the run's own files
    log.info("shape plan (one image):\n%s", plan.table())

    seeds = derive_seeds(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    threads = resolve_threads(cfg.trainer.num_threads)
    summary.data.update(seeds=seeds.as_dict(), device=str(device), num_threads=threads)

    with cpu_settings(threads):
        train_split, val_split = make_splits(cfg.data, seeds.train_data, seeds.val_data)
        model = build_model(cfg.model, plan, seeds.model_init).to(device)
        check = check_plan(model, plan)
        write_yaml(run_dir / "shapes.yaml", check.to_record())
        if not check.agrees:  # a bug in the arithmetic, never the user's fault
            raise RuntimeError("shape plan disagrees with torch: " + "; ".join(check.mismatches()))
        loggers.log_plan(run_dir / "shapes.yaml")  # the loggers start here: after the plan check
        log.info("shape plan checked against a forward pass: %d parameters", plan.n_params)

        def make_optimizer(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
            return instantiate(asdict(cfg.optimizer), params=params)

        prune_on = cfg.objective.metrics[0]

        def after_epoch(history: Sequence[EpochMetrics]) -> bool:
            write_csv(run_dir / "metrics.csv", (row.as_row() for row in history), METRICS_COLUMNS)
            loggers.log_epoch(history[-1].as_row())
            if trial is None or prune_on == "n_params":
                return False
            return trial.report(history[-1].epoch, getattr(history[-1], prune_on))

        outcome = fit(
            model,
            make_optimizer,
            train_split.to(device),
            val_split.to(device),
            cfg.trainer,
            seeds.shuffle,
            after_epoch,
        )
        atomic_write_bytes(run_dir / "model.pt", _serialise(model.state_dict()))
        from linesweep.run.plots import save_run_plots  # matplotlib loads only when a run plots

        plots = save_run_plots(
            run_dir / "plots", cfg.plots, outcome.history, model.cpu(), train_split
        )

    if outcome.status == "diverged":  # no trustworthy value: NaN makes any sweeper fail the trial
        values = tuple(math.nan for _ in cfg.objective.metrics)
    else:
        values = objective_values(
            outcome.history, plan.n_params, cfg.objective.metrics, cfg.objective.epoch
        )
    summary.finish(
        outcome.status,
        error=outcome.reason if outcome.status == "diverged" else None,
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
    log.info("run %s: objective %s, folder %s", outcome.status, values, run_dir)
    return RunResult(outcome.status, values, outcome.reason, run_dir)


def _serialise(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    return buffer.getvalue()


def run(
    cfg: DictConfig,
    run_dir: Path,
    trial: TrialLink | None = None,
    overrides: list[str] | None = None,
) -> RunResult:
    """Validate a composed config and train, recording any failure in summary.json first."""
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(
        run_dir,
        overrides=overrides or [],
        trial=trial.describe() if trial is not None else None,
        user=_user(),
        versions=versions(),
    )
    loggers = None
    try:
        typed = to_train_config(cfg)
        loggers = open_loggers(typed, run_dir, trial)  # a missing extra: one line, before training
        return train(typed, run_dir, summary, trial, loggers)
    except InfeasibleArchitecture as err:
        summary.finish("infeasible", error=str(err))
        raise
    except LinesweepError as err:
        summary.finish("failed", error=str(err))
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, or a sweep stopping on SIGINT/SIGTERM
        summary.finish("interrupted", error=f"interrupted by {err or 'SIGINT'}")
        raise
    except Exception as err:
        summary.finish("failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:  # every ending passes here, with its final status
        if loggers is not None:
            loggers.close(summary.data["status"], summary.data["error"])


register_configs()  # Hydra composes the config before main() runs: the schemas must be stored


@hydra.main(version_base="1.3", config_path="pkg://linesweep.conf", config_name="train")
def main(cfg: DictConfig) -> float | tuple[float, ...]:
    """Hydra entrypoint: train once and return the objective (one float, or a tuple)."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    trial = TrialLink.from_environment()  # set when linesweep's sweeper launched this run
    try:
        result = run(
            cfg,
            Path(hydra_cfg.runtime.output_dir),
            trial=trial,
            overrides=list(hydra_cfg.overrides.task),
        )
    except LinesweepError as err:
        log.error("%s", err)
        if trial is not None:
            raise  # linesweep's sweeper records the reason and moves on
        if multirun:
            return (
                math.nan
            )  # Hydra's basic sweeper would stop at an exception; summary.json says why
        sys.exit(2)
    if result.status == "pruned":
        from optuna import TrialPruned

        raise TrialPruned(result.reason)
    if result.status == "diverged":
        log.error("diverged: %s (recorded in %s)", result.reason, result.run_dir / "summary.json")
        if not multirun:
            sys.exit(3)
    return result.objective[0] if len(result.objective) == 1 else result.objective


if __name__ == "__main__":
    main()
