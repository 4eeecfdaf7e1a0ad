"""Run folders: finding them below any path, and reading one into a `Run` record.

A run folder is any folder holding `.hydra/`, `summary.json`, `metrics.csv` or `shapes.yaml`:
single runs, `-m` multiruns and Optuna sweeps alike. Reading never raises: a folder with a problem
(no summary, a corrupt file) still becomes a Run, with its state and a warning.
States: complete, pruned, diverged, failed, infeasible, refused, interrupted, running, killed
(running, but its process is gone), incomplete (no readable summary.json), unreadable (nothing
parses).

Folders may come from anyone (a colleague's outputs, an archive), so discovery walks iteratively,
never through a symbolic link and at most MAX_SEARCH_DEPTH levels down, and every file is read
through `linesweep.core.safe_read`: regular files inside the run folder only (the sweep folder for
the sweep's own files), size-capped, parsed into plain data. Each value the table uses is then
type-checked: a malformed one is left out, and each file with any is one warning line. After
`read_run`, a Run holds everything the views show of the folder except pictures and weights, so
the views read no run file themselves.

A run trained with `replicates=R` holds R members (`Run.members`: each replicate's state, last and
best epoch, objective values), from summary.json's `replicates.members` and metrics.csv's
per-replicate rows. Its metric cells (`val_acc`, `best_acc`, `val_loss`) are then the mean over
the replicates, and the spread cells (`<metric>_mean`, `<metric>_std`, `success_rate`) sum up the
replicates' objective values with `linesweep.core.metrics.spread`, as the trainer does; a plain
run has no members, `replicates` 1 and no spread.

Why one module over 300 lines: each file of a run folder has one reading function here, each
with its type checks; they share the `Run` record they fill, and a reader of compare finds every
rule about what a hostile folder may contain in this one place.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from linesweep.core.flat import flatten, unflatten
from linesweep.core.metrics import METRIC_DIRECTIONS, spread
from linesweep.core.processes import alive_here
from linesweep.core.record import (
    METRICS,
    REPLICATE_COLUMN,
    RUN_MARKERS,
    SHAPES,
    SUMMARY,
    YAML_CAP,
    CorruptRow,
    RunRecord,
    ShapesRecord,
    read_metrics,
    read_record,
    read_shapes,
)
from linesweep.core.safe_read import Unreadable, is_regular, read_text
from linesweep.core.safe_read import load_yaml as parse_yaml
from linesweep.core.status import Status

MAX_SEARCH_DEPTH = 32  # outputs/sweeps/<study>/<trial> is 3 levels; a deeper tree is not searched
CONFIG = Path(".hydra", "config.yaml")
OVERRIDES = Path(".hydra", "overrides.yaml")
MULTIRUN = "multirun.yaml"
MAX_REPLICATES = 1_000_000  # a population this size would not fit a summary.json's cap anyway


@dataclass
class Member:
    """One replicate of a run (or, in a group of seeds, one run): what its numbers were."""

    replicate: int
    state: Status | None = None  # None: no summary said (a running population)
    final: dict[str, float] = field(default_factory=dict)  # its last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # its epoch with the best val_accuracy
    values: dict[str, float | None] = field(default_factory=dict)  # objective metric -> value
    folder: Path | None = None  # set when the member is a run of its own (a group of seeds)


@dataclass
class Run:
    """One run folder as the table sees it; what a folder lacks stays empty. Plain data only."""

    folder: Path
    state: Status = Status.UNREADABLE
    config: dict[str, Any] | None = None  # flattened: {"model.out_1": 4, "optimizer.lr": 0.01}
    config_text: str | None = None  # .hydra/config.yaml as written, for the report
    objective: dict[str, float | None] = field(default_factory=dict)  # metric -> value
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics row
    best: dict[str, float] = field(default_factory=dict)  # the row with the best val_accuracy
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, one per epoch
    shapes: ShapesRecord | None = None  # shapes.yaml, checked
    n_params: int | None = None
    epochs_run: int | None = None
    wall_time_s: float | None = None
    overrides: list[str] | None = None  # .hydra/overrides.yaml, else summary.json's
    note: str | None = None  # the error, or why the run stopped
    sweep: Path | None = None  # the sweep or multirun folder that holds it
    warnings: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)  # its replicates; empty for a plain run
    success_threshold: float | None = None  # a replicate succeeds when objective[0] reaches it
    grouped: list[Path] = field(default_factory=list)  # a group of seeds: its runs' folders
    malformed_objective: bool = False  # summary.json's objective was there, and unsound

    def cell(self, column: str) -> Any:
        """The value of a table column, or of any config key; None when the run lacks it."""
        if column.startswith("obj."):
            return self.objective.get(column[4:])
        if column in _CELLS:
            return _CELLS[column](self)
        metric, _, stat = column.rpartition("_")
        if stat in ("mean", "std") and metric in METRIC_DIRECTIONS:
            stats = replicate_spread(self, metric)
            return None if stats is None else stats[stat]
        return None if self.config is None else self.config.get(column)

    @property
    def replicates(self) -> int:
        """How many replicates stand behind the run's numbers: 1 for a plain run."""
        return max(1, len(self.members))


def replicate_spread(run: Run, metric: str) -> dict[str, float] | None:
    """`spread` of the replicates' objective values of `metric` (None for a plain run).

    A replicate without a value (diverged: NaN) is left out of the moments and counts as a
    failure, as in the trainer's own summary. The success rate needs a threshold and is about
    the first objective metric only; for other metrics, and without a threshold, it is None.
    """
    if len(run.members) < 2 or metric not in METRIC_DIRECTIONS:
        return None
    values = [member.values.get(metric) for member in run.members]
    if all(v is None for v in values):
        return None
    threshold = run.success_threshold
    first = next(iter(run.objective), None)
    stats = spread([math.nan if v is None else v for v in values], metric, threshold or 0.0)
    if threshold is None or metric != first:
        stats["success_rate"] = None  # type: ignore[assignment]
    return stats


def _success_rate(run: Run) -> float | None:
    first = next(iter(run.objective), None)
    stats = None if first is None else replicate_spread(run, first)
    return None if stats is None else stats["success_rate"]


def _member_mean(key: str, which: str) -> Callable[[Run], float | None]:
    """A metric cell: the run's own row, or for replicates the mean of theirs (finite ones)."""

    def cell(run: Run) -> float | None:
        if len(run.members) < 2:
            return getattr(run, which).get(key)
        values = [getattr(m, which).get(key) for m in run.members]
        finite = [v for v in values if v is not None]
        return sum(finite) / len(finite) if finite else None

    return cell


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
    "val_acc": _member_mean("val_accuracy", "final"),
    "best_acc": _member_mean("val_accuracy", "best"),
    "val_loss": _member_mean("val_loss", "final"),
    "n_params": lambda run: run.n_params,
    "epochs": lambda run: run.epochs_run,
    "wall_s": lambda run: run.wall_time_s,
    "state": lambda run: run.state,
    "folder": lambda run: str(run.folder),
    "note": lambda run: run.note,
    "success_rate": _success_rate,
    "replicates": lambda run: run.replicates,
}


# ---------------------------------------------------------------- discovery


def natural_key(path: Path) -> list[Any]:
    """Sort trial folders 2 before 10, as people count them.

    Only ASCII digits count (`'¹'.isdigit()`, but int() refuses it), and split() puts them at
    the odd places: two keys compare text with text and numbers with numbers.
    """
    parts = re.split(r"([0-9]+)", str(path))
    return [int(part) if i % 2 else part for i, part in enumerate(parts)]


def find_runs(paths: Iterable[Path], problems: list[str] | None = None) -> list[Path]:
    """Every run folder at or below `paths`, once each; a run folder is not searched further.

    Iterative (a tree thousands of levels deep is no RecursionError), never into a symbolic
    link, and at most MAX_SEARCH_DEPTH levels below each path; `problems` gets one line for
    each path whose tree went deeper.
    """
    found: dict[Path, Path] = {}  # resolved -> as the user spelled it
    for path in paths:
        stack, too_deep = [(path, 0)], False
        while stack:
            folder, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            if any(entry.name in RUN_MARKERS for entry in entries):
                found.setdefault(folder.resolve(), folder)
                continue
            below = [
                Path(entry.path)
                for entry in entries
                if not entry.name.startswith(".") and _is_folder(entry)
            ]
            if below and depth == MAX_SEARCH_DEPTH:
                too_deep = True
                continue
            stack += [(sub, depth + 1) for sub in below]
        if too_deep and problems is not None:
            problems.append(
                f"{path}: folders more than {MAX_SEARCH_DEPTH} levels below it were not searched"
            )
    return sorted(found.values(), key=natural_key)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def is_sweep(folder: Path) -> bool:
    """A `-m` multirun or Optuna sweep folder: Hydra leaves multirun.yaml at its root."""
    return is_regular(folder / MULTIRUN, folder, None)


# ---------------------------------------------------------------- reading files


def load_yaml(path: Path, root: Path | None = None, cap: int = YAML_CAP) -> Any:
    """A YAML file below `root` (default: its own folder) as plain data, read within bounds.

    FileNotFoundError when it is missing, OSError when it cannot be read, Unreadable (a
    ValueError) for a link, a FIFO, a file over `cap` or YAML compare will not parse.
    """
    return parse_yaml(read_text(path, root or path.parent, cap))


def config_tree(run: Run) -> dict[str, Any]:
    """The run's config as a tree for OmegaConf; ValueError if any value is an interpolation.

    OmegaConf resolves `${...}` when a value is read: `${oc.env:TOKEN}` in a shared run's config
    would pull the user's environment into an error message, a warning, the report. linesweep's
    own run configs hold none (Hydra's interpolations live under `hydra`, which is left out).
    """
    for key, value in (run.config or {}).items():
        if "${" in json.dumps(value):
            raise ValueError(f"{key}={_show(value)} is an interpolation compare does not resolve")
    return unflatten(run.config or {})


def _problem(err: Exception) -> str:
    """An error as a short reason: Unreadable's message as it is, others with their type."""
    text = " ".join(str(err).split())
    if isinstance(err, Unreadable):
        return text
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def _show(value: Any) -> str:
    """A value from a file, short and printable (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


# ---------------------------------------------------------------- typed values


def _finite(value: Any) -> float | None:
    """A metric value, or None for a missing, non-numeric or non-finite one (a diverged run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None  # plain data: ints fit a float


# ---------------------------------------------------------------- reading one run


class SweepConfigs:
    """Each sweep's multirun.yaml, parsed once: the base config of runs without .hydra/."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, Any] | None] = {}

    def base(self, sweep: Path) -> dict[str, Any] | None:
        if sweep not in self._cache:
            try:
                tree = load_yaml(sweep / MULTIRUN, root=sweep)
            except (OSError, Unreadable):
                tree = None
            ok = isinstance(tree, dict)
            self._cache[sweep] = (
                flatten({k: v for k, v in tree.items() if k != "hydra"}) if ok else None
            )
        return self._cache[sweep]


def read_run(folder: Path, sweeps: SweepConfigs | None = None) -> Run:
    """Everything the table needs from one folder; problems become warnings, never exceptions."""
    run = Run(folder, sweep=folder.parent if is_sweep(folder.parent) else None)
    summary = _read_summary(run)
    run.history, by_replicate = _split_replicates(run, _read_metrics(run))
    run.config = _read_config(run, summary, sweeps or SweepConfigs())
    _read_shapes(run)
    if summary is not None:
        _apply_summary(run, summary)
    elif run.history or run.config is not None:
        run.state = Status.INCOMPLETE
    _fill_members(run, by_replicate)
    run.overrides = _read_overrides(run, summary)
    if run.history and not run.final:  # no summary yet (running, killed): the epochs so far
        run.final = run.history[-1]
        run.best = max(run.history, key=lambda row: row.get("val_accuracy", -math.inf))
    if run.epochs_run is None and run.history:
        run.epochs_run = len(run.history)
    if run.wall_time_s is None and run.history:
        run.wall_time_s = _finite(run.history[-1].get("elapsed_s"))
    if (
        run.n_params is None
        and run.shapes is not None
        and (run.state.trained or run.state in (Status.RUNNING, Status.KILLED, Status.INCOMPLETE))
    ):
        run.n_params = run.shapes.n_params
    if run.state.trained and not os.path.lexists(run.folder / METRICS):
        run.warnings.append(f"no {METRICS}: no learning curve")
    return run


def _read_summary(run: Run) -> RunRecord | None:
    try:
        record, problems = read_record(run.folder)
    except FileNotFoundError:
        run.warnings.append(f"no {SUMMARY} (stopped before its first write)")
        return None
    except (OSError, ValueError) as err:
        run.warnings.append(f"{SUMMARY} is unreadable ({_problem(err)})")
        return None
    if problems:
        run.warnings.append(f"{SUMMARY} has malformed values, left out: {', '.join(problems)}")
        run.malformed_objective = any(p.startswith("objective") for p in problems)
    return record


def _apply_summary(run: Run, record: RunRecord) -> None:
    """The record's fields, as the table holds them (its reader checked every one)."""
    if record.status is None:
        run.warnings.append(f"{SUMMARY} has no status linesweep writes")
        run.state = Status.INCOMPLETE
    else:
        run.state = record.status
    run.note = record.error or record.reason
    run.final, run.best = _numbers(record.final), _numbers(record.best)
    run.n_params, run.epochs_run, run.wall_time_s = (
        record.n_params, record.epochs_run, record.wall_time_s
    )  # fmt: skip
    if record.objective is not None:
        metrics = record.objective.metrics
        run.objective = dict(zip(metrics, record.objective.values, strict=True))
    elif run.state == Status.COMPLETE and not run.malformed_objective:
        run.warnings.append(f"{SUMMARY} has no objective: not ranked")
    if record.replicates is not None:
        run.success_threshold = record.replicates.success_threshold
        run.members = [
            Member(
                m.replicate,
                m.status,
                _numbers(m.final),
                values=dict(zip(run.objective, m.values, strict=True)),
            )
            for m in record.replicates.members
        ]
    if run.state == Status.RUNNING and record.host is not None and record.pid is not None:
        owner = {"host": record.host, "pid": record.pid, "pid_start": record.pid_start}
        if alive_here(owner) is False:  # other hosts: unknowable
            run.state = Status.KILLED
            run.note = f"process {record.pid} on {record.host} is gone"


def _numbers(row: dict[str, float | None]) -> dict[str, float]:
    """A metrics row without the values JSON could not hold (NaN, written as null)."""
    return {k: v for k, v in row.items() if v is not None}


def share(value: Any) -> float | None:
    """A share (a success threshold): a finite number in [0, 1], else None."""
    number = _finite(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None


def _split_replicates(
    run: Run, rows: list[dict[str, float]]
) -> tuple[list[dict[str, float]], dict[int, list[dict[str, float]]]]:
    """metrics.csv's rows as (replicate 0's history, every replicate's rows by its number).

    A plain run's file has no `replicate` column: its rows are its history, and no replicates.
    """
    if not any(REPLICATE_COLUMN in row for row in rows):
        return rows, {}
    by_replicate: dict[int, list[dict[str, float]]] = {}
    odd = 0
    for row in rows:
        number = row.get(REPLICATE_COLUMN, math.nan)
        if not (math.isfinite(number) and number.is_integer() and 0 <= number < MAX_REPLICATES):
            odd += 1
            continue
        epoch = {k: v for k, v in row.items() if k != REPLICATE_COLUMN}
        by_replicate.setdefault(int(number), []).append(epoch)
    if odd:
        run.warnings.append(f"{METRICS} has {odd} rows whose replicate is not a count, left out")
    return by_replicate.get(0, []), by_replicate


def _fill_members(run: Run, by_replicate: Mapping[int, list[dict[str, float]]]) -> None:
    """Each member's best epoch from its metrics.csv rows; without summary.json's members (a
    population still running, killed, its summary unreadable), the members those rows show."""
    if not run.members and len(by_replicate) > 1:
        run.members = [Member(r, final=rows[-1]) for r, rows in sorted(by_replicate.items())]
    for member in run.members:
        rows = [row for row in by_replicate.get(member.replicate, []) if "val_accuracy" in row]
        scored = [row for row in rows if math.isfinite(row["val_accuracy"])]
        if scored:
            member.best = max(scored, key=lambda row: row["val_accuracy"])
    if run.success_threshold is None and len(run.members) > 1:
        run.success_threshold = share((run.config or {}).get("replicate.success_threshold"))


def _read_metrics(run: Run) -> list[dict[str, float]]:
    try:
        return read_metrics(run.folder, replicate=None)
    except FileNotFoundError:
        return []
    except CorruptRow as err:
        run.warnings.append(f"{METRICS} {err}")
        return err.kept
    except (OSError, ValueError) as err:
        run.warnings.append(f"{METRICS} is unreadable ({_problem(err)})")
        return []


def _read_config(
    run: Run, summary: RunRecord | None, sweeps: SweepConfigs
) -> dict[str, Any] | None:
    try:
        text = read_text(run.folder / CONFIG, run.folder, YAML_CAP)
        tree = parse_yaml(text)
        if not isinstance(tree, dict):
            raise Unreadable("not a mapping")
        run.config_text = text
        return flatten({k: v for k, v in tree.items() if k != "hydra"})
    except FileNotFoundError:
        problem = f"no {CONFIG}"
    except (OSError, ValueError) as err:
        problem = f"{CONFIG} is unreadable ({_problem(err)})"
    base = sweeps.base(run.sweep) if run.sweep is not None else None
    overrides = summary.overrides if summary is not None else None
    if base is None or not overrides:
        run.warnings.append(f"{problem}: its config values are unknown")
        return None
    run.warnings.append(f"{problem}: config rebuilt from ../{MULTIRUN} and its overrides")
    config = dict(base)
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in config:  # group choices (experiment=hard) are already in the base
            config[key] = parse_value(value)
    return config


def parse_value(text: str) -> Any:
    """A value as Hydra reads it from a command line: YAML, plus 1e-3 (YAML 1.1 wants 1.0e-3)."""
    try:
        value = parse_yaml(text)
    except Unreadable:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _read_shapes(run: Run) -> None:
    try:
        record, problems = read_shapes(run.folder)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:
        run.warnings.append(f"{SHAPES} is unreadable ({_problem(err)})")
        return
    run.shapes = record
    if problems:
        run.warnings.append(f"{SHAPES} has malformed values, left out: {', '.join(problems)}")


def _read_overrides(run: Run, summary: RunRecord | None) -> list[str] | None:
    """The run's task overrides: .hydra/overrides.yaml, else the ones summary.json recorded."""
    recorded = summary.overrides if summary is not None else None
    try:
        overrides = load_yaml(run.folder / OVERRIDES, root=run.folder)
    except FileNotFoundError:
        return recorded
    except (OSError, ValueError) as err:
        run.warnings.append(f"{OVERRIDES} is unreadable ({_problem(err)})")
        return recorded
    if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        run.warnings.append(f"{OVERRIDES} is not a list of overrides: {_show(overrides)}")
        return recorded
    return overrides


def read_overrides(run: Run) -> list[str]:
    """The run's task overrides, as `read_run` found them."""
    return list(run.overrides or [])


def reproduce_command(run: Run) -> str:
    """The command line that trains this run again (same config, so the same seeds).

    A study's preset (`hparams_search=channels_lr`) runs only with `-m`: in its place come the
    config groups it chose for the run (`experiment=hard plots=light`), as the run's
    `.hydra/hydra.yaml` recorded them.
    """
    overrides = read_overrides(run)
    if any(o.startswith("hparams_search=") for o in overrides):
        chosen = _preset_choices(run)
        if chosen is not None:
            given = {o.split("=", 1)[0] for o in overrides}
            kept = [o for o in overrides if not o.startswith("hparams_search=")]
            overrides = [c for c in chosen if c.split("=", 1)[0] not in given] + kept
    return " ".join(["python -m linesweep.train", *map(shlex.quote, overrides)])


HYDRA_RECORD = Path(".hydra", "hydra.yaml")


def _preset_choices(run: Run) -> list[str] | None:
    """`group=option` for each task config group whose option differs from train.yaml's default
    (what a preset chose), from the run's hydra.yaml; None when that file cannot say."""
    try:
        tree = load_yaml(run.folder / HYDRA_RECORD, root=run.folder)
        choices = tree["hydra"]["runtime"]["choices"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(choices, dict):
        return None
    defaults = _train_yaml_choices()
    return [
        f"{group}={option}"
        for group, option in choices.items()
        if isinstance(group, str) and isinstance(option, str)
        and group in defaults and group != "hparams_search" and option != defaults[group]
    ]  # fmt: skip


@functools.cache
def _train_yaml_choices() -> dict[str, str | None]:
    """The task config groups of linesweep's primary config and their default options."""
    text = (importlib.resources.files("linesweep.conf") / "train.yaml").read_text("utf-8")
    entries = yaml.safe_load(text)["defaults"]
    return {
        group: option
        for entry in entries
        if isinstance(entry, dict)
        for group, option in entry.items()
        if not group.startswith(("override", "hydra"))
    }
