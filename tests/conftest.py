"""Shared fixtures: the real config, composed with Hydra's compose API and shrunk for speed."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from linesweep.run.config import register_configs
from tests.in_process import run_train_cli
from tests.prepared import copy_sweep

ROOT = Path(__file__).resolve().parents[1]

# Tests that Ctrl-C a child need the child to take SIGINT. A shell starts background jobs with
# SIGINT ignored, and children inherit that (Python then never raises KeyboardInterrupt): handled
# here instead, it is back to the default in every child exec'd.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
TINY = ["experiment=smoke", "plots=none"]  # a run of well under a second


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """compose_config("model.out_1=4") -> the composed train config, exactly as a run sees it."""
    register_configs()

    def _compose(*overrides: str, with_hydra: bool = False) -> DictConfig:
        with initialize_config_module("linesweep.conf", version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=with_hydra)

    return _compose


def load_study(folder: Path | None, name: str = "linesweep", storage: str | None = None):
    """The study a sweep left: in its folder's default journal file, or at `storage`."""
    import optuna

    from linesweep.core.storage import JOURNAL_NAME, open_storage

    return optuna.load_study(
        study_name=name, storage=open_storage(storage or str(folder / JOURNAL_NAME))
    )


@pytest.fixture
def train_in_process(hydra_restore_singletons, capfd):
    """train_in_process(*args, cwd=folder) -> CompletedProcess: `python -m linesweep.train ARGS`
    run from `cwd` in this process, as the command runs it (tests/in_process.py)."""
    return functools.partial(run_train_cli, capfd=capfd)


@pytest.fixture(scope="session")
def prepared_sweep(tmp_path_factory):
    """prepared_sweep(folder, *overrides): `folder` as `python -m linesweep.train -m OVERRIDES`
    leaves it, the sweep run once for the session and copied (tests/prepared.py)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # all workers'
    return functools.partial(copy_sweep, shared)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """Run `python -m <args>` from `cwd` (outputs/ lands there) and capture everything."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SWEEP_BASE = [
    "hydra/sweeper=linesweep",
    "experiment=smoke",
    "plots=none",
    "hydra.sweeper.executor=launcher",  # in-process: fast; the process executor has its own tests
    "hydra.sweeper.sampler.seed=0",
]


@pytest.fixture
def sweep_in_process(hydra_restore_singletons):
    """sweep_in_process(folder, *overrides): run `python -m linesweep.train -m ...` in-process."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    import linesweep.train

    def _sweep(folder: Path, *overrides: str):
        register_configs()  # the singletons were restored to a state from before any import
        GlobalHydra.instance().clear()
        hydra_app = Hydra.create_main_hydra_file_or_module(
            calling_file=str(ROOT / "linesweep" / "train.py"),
            calling_module=None,
            config_path="pkg://linesweep.conf",
            job_name="train",
        )
        try:
            return hydra_app.multirun(
                config_name="train",
                task_function=linesweep.train.main.__wrapped__,
                overrides=[
                    *SWEEP_BASE,
                    *overrides,
                    f"hydra.sweep.dir={folder}",
                    "hydra.mode=MULTIRUN",
                ],
                with_log_configuration=False,
            )
        finally:
            GlobalHydra.instance().clear()

    return _sweep
