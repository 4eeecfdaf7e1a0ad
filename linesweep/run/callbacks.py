"""Hydra callbacks: checks that must run before Hydra creates a run's folder.

Registered in conf/train.yaml under `hydra.callbacks`. Hydra makes the output folder before
any task code runs, so a folder that cannot be written would otherwise end in a traceback; here
it ends in one line and exit status 2, before any training.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from linesweep.core.errors import LinesweepError
from linesweep.core.files import ensure_writable_folder

log = logging.getLogger(__name__)


class OutputFolderCheck(Callback):
    """Refuse a run or sweep folder that cannot be written, naming the key and the path."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    @staticmethod
    def _check(folder: Path, key: str) -> None:
        try:
            ensure_writable_folder(folder, key)
        except LinesweepError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
