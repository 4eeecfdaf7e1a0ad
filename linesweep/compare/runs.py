"""Run folders: finding them below any path, and reading one into a `Run` record.

A run folder is any folder holding `.hydra/`, `summary.json`, `metrics.csv` or `shapes.yaml`:
single runs, `-m` multiruns and Optuna sweeps alike. Reading never raises: a folder with a problem
(no summary, a corrupt file) still becomes a Run, with its state and a warning.
States: complete, pruned, diverged, failed, infeasible, interrupted, running, killed (running,
but its process is gone), incomplete (no readable summary.json), unreadable (nothing parses).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.processes import alive_here
from linesweep.core.record import (
    METRICS,
    RUN_MARKERS,
    SHAPES,
    SUMMARY,
    CorruptRow,
    read_metrics,
    read_summary,
)
from linesweep.core.status import Status

# What a trainer may write into summary.json; compare's own words (incomplete...) are not.
STATUSES_WRITTEN = frozenset(
    s.value for s in Status if s not in (Status.INCOMPLETE, Status.UNREADABLE, Status.KILLED)
)
# libyaml's parser is ~10x faster than PyYAML's pure-Python one: it matters at 1,000 runs.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Run:
    """One run folder as the table sees it; what a folder lacks stays empty."""

    folder: Path
    state: Status = Status.UNREADABLE
    config: dict[str, Any] | None = None  # flattened: {"model.out_1": 4, "optimizer.lr": 0.01}
    objective: dict[str, float | None] = field(default_factory=dict)  # metric -> value
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # the row with the best val_accuracy
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, one per epoch
    n_params: int | None = None
    epochs_run: int | None = None
    wall_time_s: float | None = None
    overrides: list[str] | None = None
    note: str | None = None  # the error, or why the run stopped
    sweep: Path | None = None  # the sweep or multirun folder that holds it
    warnings: list[str] = field(default_factory=list)

    def cell(self, column: str) -> Any:
        """The value of a table column, or of any config key; None when the run lacks it."""
        if column.startswith("obj."):
            return self.objective.get(column[4:])
        if column in _CELLS:
            return _CELLS[column](self)
        return None if self.config is None else self.config.get(column)


def objective_epoch(run: Run) -> int | None:
    """The epoch the objective was measured at: the last trained (objective.epoch=last; a pruned
    run's is the epoch it stopped at), or the first metric's best epoch (objective.epoch=best)."""
    if all(value is None for value in run.objective.values()):
        return None
    metric = next((m for m in run.objective if m != "n_params"), None)
    if metric is None:
        return None  # the parameter count is not measured at an epoch
    if (run.config or {}).get("objective.epoch") == "best":
        sign = 1.0 if METRIC_DIRECTIONS.get(metric) == "maximize" else -1.0
        scored = [row for row in run.history if _finite(row.get(metric)) is not None]
        best = max(scored, key=lambda row: sign * row[metric], default=None)
        return None if best is None else int(best["epoch"])
    return run.epochs_run


_CELLS = {
    "obj_epoch": objective_epoch,
    "val_acc": lambda run: run.final.get("val_accuracy"),
    "best_acc": lambda run: run.best.get("val_accuracy"),
    "val_loss": lambda run: run.final.get("val_loss"),
    "n_params": lambda run: run.n_params,
    "epochs": lambda run: run.epochs_run,
    "wall_s": lambda run: run.wall_time_s,
    "state": lambda run: run.state,
    "folder": lambda run: str(run.folder),
    "note": lambda run: run.note,
}


# ---------------------------------------------------------------- discovery


def natural_key(path: Path) -> list[Any]:
    """Sort trial folders 2 before 10, as people count them."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Every run folder at or below `paths`, once each; a run folder is not searched further."""
    found: dict[Path, Path] = {}  # resolved -> as the user spelled it

    def walk(folder: Path) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        if any(entry.name in RUN_MARKERS for entry in entries):
            found.setdefault(folder.resolve(), folder)
            return
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path))

    for path in paths:
        walk(path)
    return sorted(found.values(), key=natural_key)


def is_sweep(folder: Path) -> bool:
    """A `-m` multirun or Optuna sweep folder: Hydra leaves multirun.yaml at its root."""
    return (folder / "multirun.yaml").is_file()


# ---------------------------------------------------------------- reading one run


def load_yaml(path: Path) -> Any:
    with open(path, "rb") as handle:
        return yaml.load(handle, Loader=_YAML_LOADER)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"out_1": 4}} -> {"model.out_1": 4}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _problem(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def _finite(value: Any) -> float | None:
    """A metric value, or None for a missing, non-numeric or non-finite one (a diverged run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class SweepConfigs:
    """Each sweep's multirun.yaml, parsed once: the base config of runs without .hydra/."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, Any] | None] = {}

    def base(self, sweep: Path) -> dict[str, Any] | None:
        if sweep not in self._cache:
            try:
                tree = load_yaml(sweep / "multirun.yaml")
                tree = {k: v for k, v in tree.items() if k != "hydra"}
                self._cache[sweep] = flatten(tree)
            except (OSError, yaml.YAMLError, AttributeError):
                self._cache[sweep] = None
        return self._cache[sweep]


def read_run(folder: Path, sweeps: SweepConfigs | None = None) -> Run:
    """Everything the table needs from one folder; problems become warnings, never exceptions."""
    run = Run(folder, sweep=folder.parent if is_sweep(folder.parent) else None)
    summary = _read_summary(run)
    run.history = _read_metrics(run)
    run.config = _read_config(run, summary, sweeps or SweepConfigs())
    if summary is not None:
        _apply_summary(run, summary)
    elif run.history or run.config is not None:
        run.state = Status.INCOMPLETE
    if run.history and not run.final:  # no summary yet (running, killed): the epochs so far
        run.final = run.history[-1]
        run.best = max(run.history, key=lambda row: row.get("val_accuracy", -math.inf))
    if run.epochs_run is None and run.history:
        run.epochs_run = len(run.history)
    if run.wall_time_s is None and run.history:
        run.wall_time_s = run.history[-1].get("elapsed_s")
    if run.n_params is None and (
        run.state.trained or run.state in (Status.RUNNING, Status.KILLED, Status.INCOMPLETE)
    ):
        run.n_params = _n_params_from_shapes(run)
    if run.state.trained and not (run.folder / METRICS).exists():
        run.warnings.append(f"no {METRICS}: no learning curve")
    return run


def _read_summary(run: Run) -> dict[str, Any] | None:
    try:
        return read_summary(run.folder)
    except FileNotFoundError:
        run.warnings.append(f"no {SUMMARY} (stopped before its first write)")
    except (OSError, ValueError) as err:
        run.warnings.append(f"{SUMMARY} is unreadable ({_problem(err)})")
    return None


def _apply_summary(run: Run, summary: dict[str, Any]) -> None:
    status = summary.get("status")
    if status not in STATUSES_WRITTEN:
        run.warnings.append(f"{SUMMARY} has no status linesweep writes: {str(status)[:40]!r}")
        run.state = Status.INCOMPLETE
    else:
        run.state = Status(status)
    run.note = summary.get("error") or summary.get("reason")
    if run.state == Status.RUNNING and alive_here(summary) is False:  # other hosts: unknowable
        run.state = Status.KILLED
        run.note = f"process {summary.get('pid')} on {summary.get('host')} is gone"
    if isinstance(summary.get("final"), dict):
        run.final = {k: v for k, v in summary["final"].items() if _finite(v) is not None}
    if isinstance(summary.get("best"), dict):
        run.best = {k: v for k, v in summary["best"].items() if _finite(v) is not None}
    n_params = summary.get("n_params")
    run.n_params = n_params if isinstance(n_params, int) else None
    epochs = summary.get("epochs_run")
    run.epochs_run = epochs if isinstance(epochs, int) else None
    run.wall_time_s = _finite(summary.get("wall_time_s"))
    overrides = summary.get("overrides")
    run.overrides = [str(o) for o in overrides] if isinstance(overrides, list) else None
    objective = summary.get("objective")
    if isinstance(objective, dict):
        metrics = objective.get("metrics") or []
        values = objective.get("values") or [None] * len(metrics)
        run.objective = {str(m): _finite(v) for m, v in zip(metrics, values, strict=False)}
    elif run.state == Status.COMPLETE:
        run.warnings.append(f"{SUMMARY} has no objective: not ranked")


def _read_metrics(run: Run) -> list[dict[str, float]]:
    try:
        return read_metrics(run.folder)
    except FileNotFoundError:
        return []
    except CorruptRow as err:
        run.warnings.append(f"{METRICS} {err}")
        return err.kept
    except (OSError, ValueError) as err:
        run.warnings.append(f"{METRICS} is unreadable ({_problem(err)})")
        return []


def _read_config(
    run: Run, summary: Mapping[str, Any] | None, sweeps: SweepConfigs
) -> dict[str, Any] | None:
    path = run.folder / ".hydra" / "config.yaml"
    try:
        tree = load_yaml(path)
        if not isinstance(tree, dict):
            raise yaml.YAMLError("not a mapping")
        return flatten({k: v for k, v in tree.items() if k != "hydra"})
    except FileNotFoundError:
        problem = "no .hydra/config.yaml"
    except (OSError, yaml.YAMLError) as err:
        problem = f".hydra/config.yaml is unreadable ({_problem(err)})"
    base = sweeps.base(run.sweep) if run.sweep is not None else None
    overrides = (summary or {}).get("overrides")
    if base is None or not isinstance(overrides, list):
        run.warnings.append(f"{problem}: its config values are unknown")
        return None
    run.warnings.append(f"{problem}: config rebuilt from ../multirun.yaml and its overrides")
    config = dict(base)
    for override in overrides:
        key, sep, value = str(override).partition("=")
        if sep and key in config:  # group choices (experiment=hard) are already in the base
            config[key] = parse_value(value)
    return config


def parse_value(text: str) -> Any:
    """A value as Hydra reads it from a command line: YAML, plus 1e-3 (YAML 1.1 wants 1.0e-3)."""
    try:
        value = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _n_params_from_shapes(run: Run) -> int | None:
    try:
        n_params = load_yaml(run.folder / SHAPES).get("n_params")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return n_params if isinstance(n_params, int) else None


def read_overrides(run: Run) -> list[str]:
    """The run's task overrides: .hydra/overrides.yaml, else the ones summary.json recorded."""
    try:
        overrides = load_yaml(run.folder / ".hydra" / "overrides.yaml")
        if isinstance(overrides, list):
            return [str(o) for o in overrides]
    except (OSError, yaml.YAMLError):
        pass
    return list(run.overrides or [])


def reproduce_command(run: Run) -> str:
    """The command line that trains this run again (same config, so the same seeds)."""
    return " ".join(["python -m linesweep.train", *map(shlex.quote, read_overrides(run))])
