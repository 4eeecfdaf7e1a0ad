"""The run record: what one run leaves in its folder, and the only code that writes or reads it.

A run folder holds Hydra's `.hydra/` and `train.log`, and linesweep's own files, named here:

    summary.json   how the run ended (`Status`), its objective, final and best metrics, seeds...
    metrics.csv    one row per epoch (`EpochMetrics`); with replicates, one per replicate and
                   epoch, the `replicate` column first
    shapes.yaml    the shape plan and what a real forward pass produced
    model.pt       the trained weights (a `state_dict`); replicate 0's with replicates
    replicates/    model_<r>.pt: replicate r's weights, r >= 1
    plots/         the run's figures

summary.json and shapes.yaml are typed records (`RunRecord`, `ShapesRecord`): each dataclass is
its file's schema, filled by the writer and checked field by field, once, by the reader
(`linesweep.core.checked`). The run writes these files (through `RecordFile`, `write_metrics`,
`write_shapes`, `write_weights`); compare and `load_runs` read them (through `read_record`,
`read_metrics`, `read_shapes`, `read_weights`); a sweeper reads none of them: it learns a
trial's outcome from the task's return value and exceptions (see `linesweep.core.errors`).

The readers take folders someone else may have written (a colleague's outputs, an archive), so
they read through `linesweep.core.safe_read`: regular files below `root` only (default: the run
folder), each at most its cap, parsed into plain data. A cap is far above what a real run
writes (a summary is ~2 KiB, a metrics row ~100 bytes) and far below what would hurt.
"""

from __future__ import annotations

import csv
import getpass
import importlib.metadata
import io
import math
import platform
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from linesweep.core.checked import Problems, checked, from_plain, to_plain
from linesweep.core.files import (
    atomic_write_bytes,
    make_folder,
    write_csv,
    write_json,
    write_yaml,
)
from linesweep.core.metrics import EpochMetrics
from linesweep.core.processes import this_process
from linesweep.core.safe_read import (
    MAX_INT,
    MiB,
    Unreadable,
    load_json,
    load_yaml,
    read_bytes,
    read_text,
)
from linesweep.core.status import Status

SUMMARY = "summary.json"
METRICS = "metrics.csv"
SHAPES = "shapes.yaml"
WEIGHTS = "model.pt"
PLOTS = "plots"
LOG = "train.log"
RUN_MARKERS = frozenset({".hydra", SUMMARY, METRICS, SHAPES})  # any of them makes a run folder
REPLICATES = "replicates"
METRICS_COLUMNS = list(EpochMetrics.__dataclass_fields__)
REPLICATE_COLUMN = "replicate"
SUMMARY_CAP = 1 * MiB
METRICS_CAP = 16 * MiB  # ~160,000 epochs
YAML_CAP = 1 * MiB  # shapes.yaml and Hydra's .hydra/*.yaml and multirun.yaml
WEIGHTS_CAP = 64 * MiB  # the usual models weigh KiBs; compare draws no larger one
PICTURE_CAP = 20 * MiB
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # no `$`: names reach plot titles


# ---------------------------------------------------------------- summary.json: the run record
def _count(value: int) -> bool:
    return 0 <= value <= MAX_INT


def _share(value: float) -> bool:
    return 0.0 <= value <= 1.0


def _names(value: list[str]) -> bool:
    return bool(value) and all(METRIC_NAME.fullmatch(name) for name in value)


def _writes(status: Status) -> bool:
    return status.written


@dataclass
class Objective:
    """What the run returns to a sweeper: one value per objective metric (NaN as None)."""

    metrics: list[str] = checked(_names, "a list of metric names", default_factory=list)
    directions: list[str] = field(default_factory=list)
    epoch: str = "last"  # last: the last trained epoch's; best: each metric's best epoch
    values: list[float | None] = field(default_factory=list)
    statistic: str | None = None  # with replicates: the statistic over them (mean, median...)

    def problems(self) -> list[str]:
        """Checks across fields: what does not agree is dropped, and said."""
        if len(self.values) != len(self.metrics):
            said = bool(self.metrics)  # no metrics: said already, values mean nothing
            self.values = [None] * len(self.metrics)
            return ["values (not one number per metric)"] if said else []
        return []


@dataclass
class Member:
    """One replicate of a run: how it ended and its numbers."""

    replicate: int = checked(_count, "a count", default=0)
    status: Status | None = checked(_writes, "a status a run writes", default=None)
    reason: str | None = None
    seeds: dict[str, int] = field(default_factory=dict)  # model_init and shuffle
    epochs_run: int | None = checked(_count, "a count", default=None)
    final: dict[str, float | None] = field(default_factory=dict)  # its last epoch's metrics
    values: list[float | None] = field(default_factory=list)  # one per objective metric

    def problems(self) -> list[str]:
        return [] if self.status is not None else [" (not a replicate record with a status)"]


@dataclass
class Replicates:
    """A run's replicates: each one's record and, per objective metric, their spread."""

    count: int = checked(_count, "a count", default=0)
    statistic: str = "mean"
    success_threshold: float | None = checked(_share, "a number in [0, 1]", default=None)
    diverged: int = checked(_count, "a count", default=0)
    members: list[Member] = checked(None, "a list of replicate records", default_factory=list)
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass
class RunRecord:
    """summary.json: how a run ended (`Status`) and what it measured, as one typed record.

    The run fills it in as it goes (written `running` at its start, again at its end) through
    `RecordFile`; every reader gets it through `read_record`, which checks each field once
    against these annotations (`linesweep.core.checked`) and leaves out, by name, what does not
    fit. Test fixtures write run folders through the same type.
    """

    status: Status | None = checked(_writes, "a status a run writes", default=None)
    error: str | None = None  # why it did not complete, one line (a bug's traceback: train.log)
    reason: str | None = None  # why it stopped early (pruned, diverged)
    started_at: str | None = None
    finished_at: str | None = None
    wall_time_s: float | None = None
    host: str | None = None  # with pid and pid_start: is a `running` run's process alive?
    pid: int | None = checked(lambda p: 0 < p < 2**31, "a process id", default=None)
    pid_start: str | None = None
    user: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # as typed on the command line
    trial: dict[str, Any] | None = None  # the sweep trial it ran as (study, number)
    seeds: dict[str, int] = field(default_factory=dict)  # replicate 0's: the plain run's
    device: str | None = None
    num_threads: int | None = None
    objective: Objective | None = None
    epochs_run: int | None = checked(_count, "a count", default=None)
    final: dict[str, float | None] = field(default_factory=dict)  # the last epoch's metrics
    best: dict[str, float | None] = field(default_factory=dict)  # the best val_accuracy epoch's
    n_params: int | None = checked(_count, "a count", default=None)
    shape_check: str | None = None
    plots: list[str] = field(default_factory=list)  # the PNGs it drew into plots/
    replicates: Replicates | None = None  # with replicates=R > 1

    def problems(self) -> list[str]:
        """Checks across fields: replicates with one value per objective metric, or none."""
        metrics = self.objective.metrics if self.objective is not None else []
        members = self.replicates.members if self.replicates is not None else []
        if any(len(m.values) != len(metrics) for m in members if m.values):
            self.replicates.members = []  # type: ignore[union-attr]
            return ["replicates.members (not a list of replicate records with one value each)"]
        return []

    @classmethod
    def started(cls, **fields: Any) -> RunRecord:
        """The record of a run that starts now, in this process."""
        return cls(
            Status.RUNNING, started_at=_now(), **this_process(), user=_user(), versions=versions(),
            **fields,
        )  # fmt: skip


class RecordFile:
    """summary.json, rewritten atomically as the run moves from `running` to its final status."""

    def __init__(self, run_dir: Path, record: RunRecord) -> None:
        self.path, self.record = run_dir / SUMMARY, record
        self._start = time.perf_counter()
        self.write()

    def write(self) -> None:
        write_json(self.path, to_plain(self.record))

    def finish(self, status: Status, **fields: Any) -> None:
        """The run's end: its status and whatever else it knows, written at once."""
        for name, value in fields.items():
            if not hasattr(self.record, name):
                raise AttributeError(f"RunRecord has no field {name!r}")
            setattr(self.record, name, value)
        self.record.status, self.record.finished_at = status, _now()
        self.record.wall_time_s = time.perf_counter() - self._start
        self.write()


def write_record(folder: Path, record: RunRecord) -> None:
    """summary.json as `record` holds it (a run writes through `RecordFile`)."""
    write_json(folder / SUMMARY, to_plain(record))


def read_record(folder: Path, root: Path | None = None) -> tuple[RunRecord, Problems]:
    """summary.json as a checked RunRecord, and what was left out of it (each field named).

    FileNotFoundError when there is none; Unreadable (a ValueError) when it is not JSON, or not
    an object at all.
    """
    data = load_json(read_text(folder / SUMMARY, root or folder, SUMMARY_CAP))
    problems = Problems()
    try:
        return from_plain(RunRecord, data, problems), problems
    except ValueError:
        raise Unreadable("not a JSON object") from None


def finished_so_far(folder: Path) -> dict[str, Any]:
    """What a run that stopped early had finished, from its metrics.csv: `epochs_run`, `final`
    and `best` (replicate 0's, for a population), as a finished run's summary holds them."""
    try:
        history = read_metrics(folder)
    except (OSError, ValueError):
        return {}
    if not history:
        return {}
    rows = [{**row, "epoch": int(row["epoch"])} for row in history]
    best = max(rows, key=lambda row: row.get("val_accuracy", -math.inf))
    return {"epochs_run": len(rows), "final": rows[-1], "best": best}


def write_metrics(folder: Path, *histories: Sequence[EpochMetrics]) -> None:
    """One history: a row per epoch, as a plain run always wrote. Several (a population): a row
    per epoch and replicate, epoch by epoch, the replicate's number in the first column."""
    if len(histories) == 1:
        write_csv(folder / METRICS, (row.as_row() for row in histories[0]), METRICS_COLUMNS)
        return
    epochs = max(len(h) for h in histories)
    rows = (
        {REPLICATE_COLUMN: r, **history[e].as_row()}
        for e in range(epochs)
        for r, history in enumerate(histories)
        if e < len(history)  # a diverged replicate's rows end at its last epoch
    )
    write_csv(folder / METRICS, rows, [REPLICATE_COLUMN, *METRICS_COLUMNS])


def read_metrics(
    folder: Path, replicate: int | None = 0, root: Path | None = None
) -> list[dict[str, float]]:
    """metrics.csv as rows of floats; ValueError names the first line that is not one.

    A population's file holds every replicate's rows: `replicate` picks one (0, the plain run's
    seeds, by default, so a reader of plain runs sees one history), None keeps them all.
    A cell over csv's field limit (128 KiB, never a number) is a corrupt line like any other:
    the limit is left as it is, for this reader and every other user of the csv module.
    """
    text = read_text(folder / METRICS, root or folder, METRICS_CAP)
    reader = csv.DictReader(io.StringIO(text))
    history: list[dict[str, float]] = []
    try:
        missing = {"epoch", "val_accuracy", "val_loss"} - set(reader.fieldnames or ())
        if missing:
            raise Unreadable(f"lacks the columns {', '.join(sorted(missing))}")
        for row in reader:
            if None in row or None in row.values():
                raise CorruptRow(reader.line_num, "wrong number of cells", history)
            try:
                values = {key: float(value) for key, value in row.items()}
            except ValueError as err:
                raise CorruptRow(reader.line_num, _clip(str(err)), history) from None
            if replicate is None or values.get(REPLICATE_COLUMN, 0) == replicate:
                history.append(values)
    except csv.Error as err:
        if reader.fieldnames is None or reader.line_num <= 1:
            raise Unreadable(f"its header does not parse ({_clip(str(err))})") from None
        raise CorruptRow(reader.line_num, _clip(str(err)), history) from None
    return history


def _clip(text: str, most: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "…"


class CorruptRow(ValueError):
    """A metrics.csv line that does not parse; `kept` holds the epochs before it."""

    def __init__(self, line: int, problem: str, kept: list[dict[str, float]]) -> None:
        super().__init__(
            f"line {line} is corrupt ({problem}): kept the {len(kept)} epochs before it"
        )
        self.kept = kept


# ---------------------------------------------------------------- shapes.yaml: the shape plan
def _shape(value: list[int]) -> bool:
    return all(_count(n) for n in value)


@dataclass
class LayerShapes:
    """One layer of the plan: its name and kind, its input and output shape, its parameters."""

    layer: str = checked(bool, "a name", default="")
    type: str = checked(bool, "a layer type", default="")
    input: list[int] = checked(_shape, "a shape", default_factory=list)
    output: list[int] = checked(_shape, "a shape", default_factory=list)
    params: int | None = checked(_count, "a count", default=None)

    def problems(self) -> list[str]:
        whole = self.layer and self.type and self.input and self.output
        return [] if whole and self.params is not None else [" (not a whole layer record)"]


@dataclass
class ShapesRecord:
    """shapes.yaml: the shape plan, what a real forward pass produced, and whether they agree."""

    agree: bool | None = None
    input: list[int] = field(default_factory=list)
    flat_features: int | None = checked(_count, "a count", default=None)
    n_params: int | None = checked(_count, "a count", default=None)
    plan: list[LayerShapes] = checked(None, "a list of layers", default_factory=list)
    observed: dict[str, list[int]] = field(default_factory=dict)
    observed_params: int | None = checked(_count, "a count", default=None)


def write_shapes(folder: Path, record: ShapesRecord) -> None:
    write_yaml(folder / SHAPES, to_plain(record))


def read_shapes(folder: Path, root: Path | None = None) -> tuple[ShapesRecord, Problems]:
    """shapes.yaml as a checked ShapesRecord and what was left out; FileNotFoundError, or
    Unreadable saying why."""
    data = load_yaml(read_text(folder / SHAPES, root or folder, YAML_CAP))
    problems = Problems()
    try:
        return from_plain(ShapesRecord, data, problems), problems
    except ValueError:
        raise Unreadable("not a mapping") from None


def weights_path(folder: Path, replicate: int = 0) -> Path:
    """model.pt for replicate 0 (a plain run), replicates/model_<r>.pt for the others."""
    return folder / WEIGHTS if replicate == 0 else folder / REPLICATES / f"model_{replicate}.pt"


def write_weights(folder: Path, state: dict[str, Any], replicate: int = 0) -> None:
    """The weights as torch.save writes them, every tensor on the CPU."""
    import torch  # only a run that trained has weights to write

    # Copies: a member's parameters are views of its population's buffer, and torch.save
    # writes a view's whole storage (512 replicates of 119 parameters each left 121 MB).
    own = {
        n: t.detach().cpu().clone(memory_format=torch.contiguous_format) for n, t in state.items()
    }
    buffer = io.BytesIO()
    torch.save(own, buffer)
    path = weights_path(folder, replicate)
    if replicate:
        make_folder(path.parent)  # replicates/: a real folder, never a link planted there
    atomic_write_bytes(path, buffer.getvalue())


def read_weights(folder: Path, replicate: int = 0, root: Path | None = None) -> dict[str, Any]:
    """A state_dict, loaded with weights_only=True: a shared folder cannot run code through it."""
    import torch

    data = read_bytes(weights_path(folder, replicate), root or folder, WEIGHTS_CAP)
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("linesweep", "torch", "numpy", "hydra-core", "omegaconf", "optuna"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
