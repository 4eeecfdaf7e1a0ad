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
"""

from __future__ import annotations

import csv
import getpass
import importlib.metadata
import io
import json
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from linesweep.core.files import atomic_write_bytes, write_csv, write_json, write_yaml
from linesweep.core.metrics import EpochMetrics
from linesweep.core.processes import this_process
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


def read_summary(folder: Path) -> dict[str, Any]:
    """summary.json as a dict; OSError or ValueError when it is missing or not a JSON object."""
    data = json.loads((folder / SUMMARY).read_bytes())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


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


def read_metrics(folder: Path, replicate: int | None = 0) -> list[dict[str, float]]:
    """metrics.csv as rows of floats; ValueError names the first line that is not one.

    A population's file holds every replicate's rows: `replicate` picks one (0, the plain run's
    seeds, by default, so a reader of plain runs sees one history), None keeps them all.
    """
    text = (folder / METRICS).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"epoch", "val_accuracy", "val_loss"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"lacks the columns {', '.join(sorted(missing))}")
    history = []
    for row in reader:
        if None in row or None in row.values():
            raise CorruptRow(reader.line_num, "wrong number of cells", history)
        try:
            values = {key: float(value) for key, value in row.items()}
        except ValueError as err:
            raise CorruptRow(reader.line_num, str(err), history) from None
        if replicate is None or values.get(REPLICATE_COLUMN, 0) == replicate:
            history.append(values)
    return history


class CorruptRow(ValueError):
    """A metrics.csv line that does not parse; `kept` holds the epochs before it."""

    def __init__(self, line: int, problem: str, kept: list[dict[str, float]]) -> None:
        super().__init__(
            f"line {line} is corrupt ({problem}): kept the {len(kept)} epochs before it"
        )
        self.kept = kept


def write_shapes(folder: Path, record: dict[str, Any]) -> None:
    write_yaml(folder / SHAPES, record)


def weights_path(folder: Path, replicate: int = 0) -> Path:
    """model.pt for replicate 0 (a plain run), replicates/model_<r>.pt for the others."""
    return folder / WEIGHTS if replicate == 0 else folder / REPLICATES / f"model_{replicate}.pt"


def write_weights(folder: Path, state: dict[str, Any], replicate: int = 0) -> None:
    """The weights as torch.save writes them, every tensor on the CPU."""
    import torch  # only a run that trained has weights to write

    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    path = weights_path(folder, replicate)
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def read_weights(folder: Path, replicate: int = 0) -> dict[str, Any]:
    """A state_dict, loaded with weights_only=True: a shared folder cannot run code through it."""
    import torch

    return torch.load(weights_path(folder, replicate), weights_only=True, map_location="cpu")


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
