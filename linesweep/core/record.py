"""The run record: what one run leaves in its folder, and the only code that writes or reads it.

A run folder holds Hydra's `.hydra/` and `train.log`, and linesweep's own files, named here:

    summary.json   how the run ended (`Status`), its objective, final and best metrics, seeds...
    metrics.csv    one row per epoch (`EpochMetrics`); with replicates, one per replicate and
                   epoch, the `replicate` column first
    shapes.yaml    the shape plan and what a real forward pass produced
    model.pt       the trained weights (a `state_dict`); replicate 0's with replicates
    replicates/    model_<r>.pt: replicate r's weights, r >= 1
    plots/         the run's figures

The trainer writes these files (through `RunSummary`, `write_metrics`, `write_shapes`,
`write_weights`); compare reads them (through `read_summary`, `read_metrics`, `read_shapes`,
`read_weights`); a sweeper reads none of them: it learns a trial's outcome from the task's return
value and exceptions (see `linesweep.core.errors`).

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
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from linesweep.core.files import (
    atomic_write_bytes,
    make_folder,
    write_csv,
    write_json,
    write_yaml,
)
from linesweep.core.metrics import EpochMetrics
from linesweep.core.processes import this_process
from linesweep.core.safe_read import MiB, Unreadable, load_json, load_yaml, read_bytes, read_text
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


class RunSummary:
    """summary.json, rewritten atomically as the run moves from `running` to its final status."""

    def __init__(self, run_dir: Path, **fields: Any) -> None:
        self.path = run_dir / SUMMARY
        self.data: dict[str, Any] = {
            "status": Status.RUNNING.value,
            "error": None,
            "started_at": _now(),
            **this_process(),  # host, pid, pid_start: so a `running` run can be told alive or dead
            "user": _user(),
            "versions": versions(),
            **fields,
        }
        self._start = time.perf_counter()
        write_json(self.path, self.data)

    def finish(self, status: Status, **fields: Any) -> None:
        self.data.update(fields, status=status.value, finished_at=_now())
        self.data["wall_time_s"] = time.perf_counter() - self._start
        write_json(self.path, self.data)


def read_summary(folder: Path, root: Path | None = None) -> dict[str, Any]:
    """summary.json as plain data; FileNotFoundError, or Unreadable (a ValueError) saying why."""
    data = load_json(read_text(folder / SUMMARY, root or folder, SUMMARY_CAP))
    if not isinstance(data, dict):
        raise Unreadable("not a JSON object")
    return data


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


def write_shapes(folder: Path, record: dict[str, Any]) -> None:
    write_yaml(folder / SHAPES, record)


def read_shapes(folder: Path, root: Path | None = None) -> dict[str, Any]:
    """shapes.yaml as plain data; FileNotFoundError, or Unreadable saying why."""
    data = load_yaml(read_text(folder / SHAPES, root or folder, YAML_CAP))
    if not isinstance(data, dict):
        raise Unreadable("not a mapping")
    return data


def weights_path(folder: Path, replicate: int = 0) -> Path:
    """model.pt for replicate 0 (a plain run), replicates/model_<r>.pt for the others."""
    return folder / WEIGHTS if replicate == 0 else folder / REPLICATES / f"model_{replicate}.pt"


def write_weights(folder: Path, state: dict[str, Any], replicate: int = 0) -> None:
    """The weights as torch.save writes them, every tensor on the CPU."""
    import torch  # only a run that trained has weights to write

    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
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
