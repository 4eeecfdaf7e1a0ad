"""`python -m linesweep.train ARGS` run in the test's own process, through the same `cli()`.

A command refused in one line spends about 2 s of CPU in a process of its own before it says
so (Python, torch, Hydra starting), and the suite has dozens of them: a third of its CPU went
into such starts (benchmarks/README.md, "The suite"). Here the command runs as the process would
run it: `sys.argv` as `python -m` sets it, the current folder, Hydra's logging configured from
the command's own config (the console's lines on stderr, the run's train.log), and the exit
status that `SystemExit` carries. What it changes in this process is put back afterwards: the
loggers, the SIGINT handler and the frozen garbage collector `cli()` leaves for the process's
exit, Hydra's global state.

What only a real process shows (the status Python exits with, output at interpreter exit) is
checked by the command-line tests that still start one (test_cli.py, test_run_faults.py).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LoggerState = tuple[list[logging.Handler], int, bool, bool]


def run_train_cli(*args: str, cwd: Path, capfd) -> subprocess.CompletedProcess:
    """The command's exit status, stdout and stderr, as `subprocess.run` would return them."""
    from hydra.core.global_hydra import GlobalHydra

    import linesweep.train
    from linesweep.run.config import register_configs

    capfd.readouterr()  # only what this command writes
    code: int | str | None = 0
    with _process_state(cwd, [str(ROOT / "linesweep" / "train.py"), *args]):
        register_configs()  # the singletons were restored to a state from before any import
        GlobalHydra.instance().clear()
        try:
            linesweep.train.cli()
        except SystemExit as stop:
            code = stop.code
        finally:
            GlobalHydra.instance().clear()
    output = capfd.readouterr()
    status = code if isinstance(code, int) else (0 if code is None else 1)  # as Python exits
    if isinstance(code, str):  # sys.exit("message"): Python prints it on stderr
        output = output._replace(err=f"{output.err}{code}\n")
    return subprocess.CompletedProcess(["linesweep.train", *args], status, output.out, output.err)


@contextmanager
def _process_state(cwd: Path, argv: list[str]) -> Iterator[None]:
    """Run inside `cwd` with `argv`; afterwards the folder, argv, environment, loggers, SIGINT
    handler and garbage collector are as they were."""
    before_cwd, before_argv, before_env = os.getcwd(), sys.argv, dict(os.environ)
    before_sigint = signal.getsignal(signal.SIGINT)
    loggers = _loggers_state()
    os.chdir(cwd)
    sys.argv = argv
    os.environ["HYDRA_FULL_ERROR"] = "0"  # as run_cli sets it: Hydra's short error
    try:
        yield
    finally:
        os.chdir(before_cwd)
        sys.argv = before_argv
        for key in set(os.environ) - set(before_env):
            del os.environ[key]
        os.environ.update(before_env)
        signal.signal(signal.SIGINT, before_sigint)
        gc.unfreeze()  # cli() freezes what exists for a process about to end
        _restore_loggers(loggers)


def _all_loggers() -> list[logging.Logger]:
    found = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(lg for lg in found if isinstance(lg, logging.Logger))]


def _loggers_state() -> dict[logging.Logger, LoggerState]:
    return {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in _all_loggers()}


def _restore_loggers(state: dict[logging.Logger, LoggerState]) -> None:
    """Every logger as it was; the handlers Hydra's logging config added (the console's, the
    run's train.log) closed."""
    for logger in _all_loggers():
        handlers, level, propagate, disabled = state.get(logger, ([], logging.NOTSET, True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled
        logger.setLevel(level)
