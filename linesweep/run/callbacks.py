"""Hydra callbacks: checks that must run before Hydra creates a run's folder.

Registered in conf/train.yaml under `hydra.callbacks`. Hydra makes the output folder before
any task code runs, so a folder that cannot be written would otherwise end in a traceback, and
an empty one would scatter a run's files in the current directory; here each ends in one line
and exit status 2, before any training. An Optuna study's folder is named after the study: a
name that would put it outside outputs/sweeps/ is refused before the folder exists.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from linesweep.core.errors import ConfigError, LinesweepError
from linesweep.core.files import ensure_writable_folder
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
