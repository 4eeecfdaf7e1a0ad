"""Hydra callbacks: checks that must run before Hydra creates a run's folder.

Registered in conf/train.yaml under `hydra.callbacks`. Hydra makes the output folder before
any task code runs, so a folder that cannot be written would otherwise end in a traceback, and
an empty one would scatter a run's files in the current directory; here each ends in one line
and exit status 2, before any training. An Optuna study's folder is named after the study: a
name that would put it outside outputs/sweeps/ is refused before the folder exists.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import ensure_writable_folder
from linesweep.core.record import RunRecord, read_record
from linesweep.core.storage import check_study_name

log = logging.getLogger(__name__)


class OutputFolderCheck(Callback):
    """Refuse a run or sweep folder that is empty or cannot be written; a study without -m."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        study = OmegaConf.select(config, "hydra.runtime.choices.hparams_search", default=None)
        _refuse_on_error(lambda: _check_single_run(study))
        _refuse_on_error(lambda: _check_folder(config.hydra.run.dir, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if str(sweeper.get("_target_", "")).endswith("LinesweepOptunaSweeper"):
            _refuse_on_error(lambda: check_study_name(sweeper.get("study_name")))
        _refuse_on_error(lambda: _check_folder(config.hydra.sweep.dir, "hydra.sweep.dir"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A basic multirun's end in a few lines, as every Optuna sweep ends (linesweep's
        sweeper says its own): the runs by state, the best, and the command that compares."""
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        if sweeper.endswith("LinesweepOptunaSweeper"):
            return
        for line in multirun_answer(Path(str(config.hydra.sweep.dir))):
            log.info("%s", line)


def multirun_answer(folder: Path) -> list[str]:
    """The runs below `folder` (one level: a multirun's jobs) by state, and the best of them."""
    records = []
    for job in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            records.append((job, read_record(job)[0]))
        except (OSError, ValueError):
            continue
    if not records:
        return []
    states = Counter(str(r.status) for _, r in records)
    counts = ", ".join(f"{n} {state}" for state, n in states.most_common())
    lines = [f"multirun: {len(records)} run{'s' if len(records) > 1 else ''} ({counts})"]
    scored = [(job, r) for job, r in records if r.objective and r.objective.values[:1] != [None]]
    if scored:

        def value(item: tuple[Path, RunRecord]) -> float:
            objective = item[1].objective
            sign = 1.0 if objective.directions[0] == "maximize" else -1.0  # type: ignore[union-attr]
            return sign * objective.values[0]  # type: ignore[union-attr,operator]

        job, best = max(scored, key=value)
        shared = set.intersection(*(set(r.overrides) for _, r in records))
        own = " ".join(_short(o) for o in best.overrides if o not in shared) or "(the defaults)"
        metric, number = best.objective.metrics[0], best.objective.values[0]  # type: ignore[union-attr]
        lines.append(f"best {metric}={number:.4g} (job {job.name}, {best.status}): {own}")
    lines.append(f"compare the runs: python -m linesweep.compare {shlex.quote(str(folder))}")
    return lines


def _short(override: str) -> str:
    """`optimizer.lr=0.006431172050131994` -> `optimizer.lr=0.006431`: 4 significant digits."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if sep and "." in value else override


def _check_single_run(study: str | None) -> None:
    if study is not None:
        raise ConfigError(
            "hparams_search",
            study,
            "a study, which runs only as a multirun",
            f"add -m: python -m linesweep.train -m hparams_search={study}",
        )


def _check_folder(folder: Any, key: str) -> None:
    if not str(folder).strip():
        raise ConfigError(key, "", "a folder for the run's files", f"give {key} a path")
    ensure_writable_folder(Path(str(folder)), key)


def _refuse_on_error(check: Any) -> None:
    try:
        check()
    except LinesweepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
