"""Run folders: finding them below any path, and reading one into a `Run` (row.py).

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
type-checked (fields.py; summary.json's fields in summary.py): a malformed one is left out, and
each file with any is one warning line. After `read_run`, a Run holds everything the views show
of the folder except its pictures, so the views read no run file themselves.

A run trained with `replicates=R` holds R members, from summary.json's `replicates.members` and
metrics.csv's per-replicate rows (see row.py for what its cells then show).
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from linesweep.compare.console import UsageError
from linesweep.compare.fields import (
    MAX_REPLICATES,
    finite,
    problem,
    share,
    show,
    texts,
)
from linesweep.compare.row import Member, Run
from linesweep.compare.summary import apply_shapes, apply_summary
from linesweep.core.checked import Problems
from linesweep.core.flat import flatten
from linesweep.core.record import (
    METRICS,
    REPLICATE_COLUMN,
    RUN_MARKERS,
    SHAPES,
    SUMMARY,
    YAML_CAP,
    CorruptRow,
    RunRecord,
    read_metrics,
    read_record,
    read_shapes,
)
from linesweep.core.safe_read import Unreadable, below, is_regular, read_text
from linesweep.core.safe_read import load_yaml as parse_yaml
from linesweep.core.status import Status

MAX_SEARCH_DEPTH = 32  # outputs/sweeps/<study>/<trial> is 3 levels; a deeper tree is not searched
CONFIG = Path(".hydra", "config.yaml")
OVERRIDES = Path(".hydra", "overrides.yaml")
MULTIRUN = "multirun.yaml"


# ---------------------------------------------------------------- finding run folders


def expand(arguments: Sequence[str], problems: list[str] | None = None) -> list[Path]:
    """The folders the arguments name, globs expanded; UsageError for one that names nothing.

    A path the user typed is followed even if it is a link (their choice); a glob match reached
    through a link below the glob's fixed part is not (the folder's owner made that link), and
    gets a line in `problems`.
    """
    paths = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.exists():
            paths.append(path)
        elif any(c in argument for c in "*?["):
            pattern = os.path.expanduser(argument)
            try:
                matches = sorted(glob.glob(pattern, recursive=True))
            except RecursionError:  # `**` on a tree thousands of levels deep
                raise UsageError(f"{argument!r} reaches too deep; name the folders") from None
            if not matches:
                raise UsageError(f"no folder matches {argument!r}")
            fixed = _fixed_part(pattern)
            for match in map(Path, matches):
                if below(match, fixed):
                    paths.append(match)
                elif problems is not None:
                    problems.append(f"{match}: a symbolic link, not followed")
        else:
            raise UsageError(f"no such folder: {argument}")
    return paths


def _fixed_part(pattern: str) -> Path:
    """The folder a glob starts from: its components before the first wildcard."""
    parts = Path(pattern).parts
    n = next(i for i, part in enumerate(parts) if re.search(r"[*?\[]", part))
    return Path(*parts[:n]) if n else Path(".")


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
            subfolders = [
                Path(entry.path)
                for entry in entries
                if not entry.name.startswith(".") and _is_folder(entry)
            ]
            if subfolders and depth == MAX_SEARCH_DEPTH:
                too_deep = True
                continue
            stack += [(sub, depth + 1) for sub in subfolders]
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


def parse_value(written: str) -> Any:
    """A value as Hydra reads it from a command line: YAML, plus 1e-3 (YAML 1.1 wants 1.0e-3)."""
    try:
        value = parse_yaml(written)
    except Unreadable:
        return written
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


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


# ---------------------------------------------------------------- reading one run


def read_run(folder: Path, sweeps: SweepConfigs | None = None) -> Run:
    """Everything the table needs from one folder; problems become warnings, never exceptions."""
    run = Run(folder, sweep=folder.parent if is_sweep(folder.parent) else None)
    summary = _read_summary(run)  # (record, problems) or None
    run.history, by_replicate = _split_replicates(run, _read_metrics(run))
    run.config = _read_config(run, summary, sweeps or SweepConfigs())
    _read_shapes(run)
    if summary is not None:
        apply_summary(run, *summary)
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
        run.wall_time_s = finite(run.history[-1].get("elapsed_s"))
    if (
        run.n_params is None
        and run.shapes is not None
        and (run.state.trained or run.state in (Status.RUNNING, Status.KILLED, Status.INCOMPLETE))
    ):
        run.n_params = run.shapes.n_params
    if run.state.trained and not os.path.lexists(run.folder / METRICS):
        run.warnings.append(f"no {METRICS}: no learning curve")
    return run


def _read_summary(run: Run) -> tuple[RunRecord, Problems] | None:
    try:
        return read_record(run.folder)
    except FileNotFoundError:
        run.warnings.append(f"no {SUMMARY} (stopped before its first write)")
    except (OSError, ValueError) as err:
        run.warnings.append(f"{SUMMARY} is unreadable ({problem(err)})")
    return None


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
        run.warnings.append(f"{METRICS} is unreadable ({problem(err)})")
        return []


def _read_config(
    run: Run, summary: tuple[RunRecord, Problems] | None, sweeps: SweepConfigs
) -> dict[str, Any] | None:
    try:
        config_text = read_text(run.folder / CONFIG, run.folder, YAML_CAP)
        tree = parse_yaml(config_text)
        if not isinstance(tree, dict):
            raise Unreadable("not a mapping")
        run.config_text = config_text
        return flatten({k: v for k, v in tree.items() if k != "hydra"})
    except FileNotFoundError:
        trouble = f"no {CONFIG}"
    except (OSError, ValueError) as err:
        trouble = f"{CONFIG} is unreadable ({problem(err)})"
    base = sweeps.base(run.sweep) if run.sweep is not None else None
    overrides = summary[0].overrides if summary is not None else []
    if base is None or not overrides:
        run.warnings.append(f"{trouble}: its config values are unknown")
        return None
    run.warnings.append(f"{trouble}: config rebuilt from ../{MULTIRUN} and its overrides")
    config = dict(base)
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in config:  # group choices (experiment=hard) are already in the base
            config[key] = parse_value(value)
    return config


def _read_shapes(run: Run) -> None:
    try:
        apply_shapes(run, *read_shapes(run.folder))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:
        run.warnings.append(f"{SHAPES} is unreadable ({problem(err)})")


def _read_overrides(run: Run, summary: tuple[RunRecord, Problems] | None) -> list[str] | None:
    """The run's task overrides: .hydra/overrides.yaml, else the ones summary.json recorded."""
    recorded = summary[0].overrides if summary is not None else None
    try:
        overrides = load_yaml(run.folder / OVERRIDES, root=run.folder)
    except FileNotFoundError:
        return recorded
    except (OSError, ValueError) as err:
        run.warnings.append(f"{OVERRIDES} is unreadable ({problem(err)})")
        return recorded
    if texts(overrides) is None:
        run.warnings.append(f"{OVERRIDES} is not a list of overrides: {show(overrides)}")
        return recorded
    return overrides
