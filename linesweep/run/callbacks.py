"""Hydra callbacks: checks that must run before Hydra creates a run's folder.

Registered in conf/train.yaml under `hydra.callbacks`. Hydra makes the output folder before
any task code runs, so a folder that cannot be written would otherwise end in a traceback, and
an empty one would scatter a run's files in the current directory; here each ends in one line
and exit status 2, before any training. An Optuna study's folder is named after the study: a
name that would put it outside outputs/sweeps/ is refused before the folder exists.

Hydra also writes before the task runs (train.log, .hydra/), through whatever stands at those
names: a folder holding another run, or a link someone planted, is refused here first (see
folder.py); `overwrite=true` clears another run's files, once the new run's config is known
to be valid, so that a refused run never costs the one already there.
"""

from __future__ import annotations

import copy
import logging
import re
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import atomic_write_text, ensure_writable_folder, make_folder, what_is
from linesweep.core.record import RunRecord, read_record
from linesweep.core.storage import check_study_name
from linesweep.run.folder import OVERWRITE_KEY, RunFolder, check_run_folder, clear

log = logging.getLogger(__name__)


class OutputFolderCheck(Callback):
    """Refuse a run or sweep folder that is empty or cannot be written; a study without -m.

    A single run's `.hydra/` files are written by this callback, not by Hydra: Hydra opens
    each in place (through a link, if one is there, and with a traceback when the disk is full);
    here each is a new file renamed into place, and a full disk is one line and exit status 1.
    """

    def __init__(self) -> None:
        self._hydra_subdir: str | None = None  # a single run's: saved by on_job_start

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        study = OmegaConf.select(config, "hydra.runtime.choices.hparams_search", default=None)
        _refuse_on_error(lambda: _check_single_run(study))
        _refuse_on_error(lambda: _own_run_folder(config))
        if config.hydra.output_subdir is not None:
            self._hydra_subdir = str(config.hydra.output_subdir)
            with read_write(config.hydra):  # Hydra then saves nothing: on_job_start does
                config.hydra.output_subdir = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self._hydra_subdir is None:
            return
        try:
            save_hydra_files(config, self._hydra_subdir)
        except OSError as err:
            where = err.filename or config.hydra.runtime.output_dir
            print(f"error: could not write {where}: {err.strerror or err}", file=sys.stderr)
            sys.exit(1)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        study = str(sweeper.get("_target_", "")).endswith("LinesweepOptunaSweeper")
        if study:
            _refuse_on_error(lambda: check_study_name(sweeper.get("study_name")))
        _refuse_on_error(lambda: _own_sweep_folder(config, study))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A basic multirun's end in a few lines, as every Optuna sweep ends (linesweep's
        sweeper says its own): the runs by state, the best, and the command that compares."""
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        if sweeper.endswith("LinesweepOptunaSweeper"):
            return
        for line in multirun_answer(Path(str(config.hydra.sweep.dir))):
            log.info("%s", line)


def save_hydra_files(config: DictConfig, subdir: str) -> None:
    """What Hydra's `run_job` saves in `<run>/<subdir>/`, the same YAML, written atomically into
    a folder of the run's own: config.yaml, hydra.yaml (saying `output_subdir: <subdir>`, as
    Hydra's own does) and overrides.yaml."""
    folder = make_folder(Path(str(config.hydra.runtime.output_dir)) / subdir)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
    with read_write(hydra_cfg.hydra):
        hydra_cfg.hydra.output_subdir = subdir
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(task))
    atomic_write_text(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    atomic_write_text(folder / "overrides.yaml", OmegaConf.to_yaml(config.hydra.overrides.task))


def _run_folder(config: DictConfig, path: Path) -> RunFolder:
    subdir = config.hydra.output_subdir
    return RunFolder(path, str(config.hydra.job.name), None if subdir is None else str(subdir))


def _overwrite(config: DictConfig) -> bool:
    return OmegaConf.select(config, OVERWRITE_KEY, default=False) is True


def _own_run_folder(config: DictConfig) -> None:
    """A single run's folder: empty or new, writable; another run's only with overwrite=true,
    cleared once the new run's config has passed its checks."""
    key, folder = "hydra.run.dir", config.hydra.run.dir
    if not str(folder).strip():
        raise ConfigError(key, "", "a folder for the run's files", f"give {key} a path")
    run = _run_folder(config, Path(str(folder)))
    taken = check_run_folder(run, key, _overwrite(config))
    ensure_writable_folder(run.path, key)
    if taken:
        _check_before_clearing(config)
        log.info(
            "overwrite=true: deleting the run in %s (%s)",
            run.path,
            ", ".join(p.name for p in taken),
        )
        clear(run, taken)


def _check_before_clearing(config: DictConfig) -> None:
    """The checks a run makes before training, made before another run's files are deleted:
    a run refused for its config leaves the old one where it was. (linesweep's app only.)"""
    if OmegaConf.select(config, "model.conv1", default=None) is None:
        return
    from linesweep.run.budget import check_population_fits
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.validation import to_train_config

    typed = to_train_config(config)
    check_population_fits(typed, plan_cnn(typed.model, typed.data.image_size))


def _own_sweep_folder(config: DictConfig, study: bool) -> None:
    """A sweep's folder: not a link; for Hydra's own sweepers, its job folders as a run's
    (an Optuna study's trial folders are the sweeper's to check, trial by trial)."""
    key, folder = "hydra.sweep.dir", config.hydra.sweep.dir
    if not str(folder).strip():
        raise ConfigError(key, "", "a folder for the run's files", f"give {key} a path")
    path = Path(str(folder))
    found = what_is(path)
    if found not in (None, "a folder"):
        raise ConfigError(key, str(path), f"a folder of the sweep's own, and it is {found}")
    if not study and found is not None:
        overwrite = _overwrite(config)
        saved = path / "multirun.yaml"  # Hydra's basic sweeper saves it in place
        what = what_is(saved)
        if what not in (None, "a file") and not (overwrite and what.startswith("a symbolic")):
            raise ConfigError(
                key,
                str(path),
                f"a sweep folder whose multirun.yaml is a file, and {saved} is {what}",
                f"remove it, or give {key} a new folder",
            )
        plans = what_is(path / ".plans")  # a run's marker files go there (task.log_plan)
        if plans not in (None, "a folder"):
            raise ConfigError(
                key,
                str(path),
                f"a sweep folder of its own, and {path / '.plans'} is {plans}",
                f"remove {path / '.plans'}",
            )
        jobs = [
            _run_folder(config, p) for p in sorted(path.iterdir()) if JOB_FOLDER.fullmatch(p.name)
        ]
        cleared = [(run, check_run_folder(run, key, overwrite)) for run in jobs]  # all, then clear
        if what is not None and what != "a file":
            saved.unlink()
        for run, taken in cleared:
            clear(run, taken)
    ensure_writable_folder(path, key)


JOB_FOLDER = re.compile(r"\d+")  # hydra.sweep.subdir: ${hydra.job.num}


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


def _refuse_on_error(check: Any) -> None:
    try:
        check()
    except LinesweepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
