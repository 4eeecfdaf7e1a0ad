"""Train the lines CNN once, leaving everything about the run in its output folder.

    python -m linesweep.train                                   # the notebook's experiment
    python -m linesweep.train model.out_1=4 optimizer.lr=0.01 data.offset=1 data.p=0.7
    python -m linesweep.train experiment=hard plots=none
    python -m linesweep.train -m model.out_1=1,2,4              # three runs, one folder each
    python -m linesweep.train -m hparams_search=channels_lr     # an Optuna study
    python -m linesweep.train --cfg job                         # print the composed config
    python -m linesweep.plan model.conv1.kernel_size=5          # the shape plan, no training

The thin Hydra wrapper around `linesweep.run.task.run`: it finds the folder and is the one place
where a run's typed ending becomes what its caller understands. Alone, an exit status (2: refused
or infeasible, 3: diverged). Under a sweeper that asked for typed outcomes (it set the trial
environment variable, as linesweep's does), the exception itself. Under any other sweeper,
NaN: Hydra's basic sweeper would stop at an exception, and Optuna-based ones fail a NaN trial.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

try:  # a Ctrl-C while Python loads Hydra, the first fraction of a second, is one line too
    from linesweep.core import collector

    with collector.paused():  # objects that live as long as the process (collector.py)
        import hydra
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        from omegaconf import DictConfig, OmegaConf

        from linesweep.core.errors import LinesweepError, RunStopped, interrupted_by
        from linesweep.core.trial_link import TrialLink
        from linesweep.run.config import register_configs

    register_configs()  # Hydra composes the config before main() runs: the schemas must be stored
except KeyboardInterrupt:
    print("interrupted by SIGINT", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="pkg://linesweep.conf", config_name="train")
def main(cfg: DictConfig) -> float | tuple[float, ...]:
    """Hydra entrypoint: train once and return the objective (one float, or a tuple)."""
    from linesweep.core.files import NO_ROOM
    from linesweep.run.task import file_log, run  # imported by `cli`, or by the trial server

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        # Set by a sweeper that wants typed outcomes; a single run ignores one left in the shell.
        trial = TrialLink.from_environment() if multirun else None
    except LinesweepError as err:
        log.error("%s: %s", err.status, err)
        sys.exit(err.exit_code)
    try:
        result = run(
            cfg,
            Path(hydra_cfg.runtime.output_dir),
            trial=trial,
            # As typed: an override such as `x=${oc.env:NOPE}` must not be resolved here.
            overrides=OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False),
            plans_seen=Path(hydra_cfg.sweep.dir) / ".plans" if multirun else None,
        )
    except (LinesweepError, RunStopped) as err:
        if trial is not None:  # the sweep says it in its one line for the trial; the file keeps it
            file_log.error("%s: %s", err.status, err)
            raise
        log.error("%s: %s", err.status, err)
        if multirun:
            return math.nan
        sys.exit(err.exit_code)
    except KeyboardInterrupt as err:  # recorded by run(): one line, and the shell's exit status
        if trial is not None or multirun:
            raise  # the sweep stops, and says so
        name = interrupted_by(err)
        log.error("interrupted by %s; recorded in %s", name, hydra_cfg.runtime.output_dir)
        sys.exit(_exit_status(name))
    except OSError as err:  # a full disk, a file-size limit: no bug, no traceback
        if err.errno not in NO_ROOM or trial is not None:
            raise  # a bug's traceback; in a sweep, the trial's reason
        where = err.filename or hydra_cfg.runtime.output_dir
        log.error("failed: could not write %s: %s", where, err.strerror)
        if multirun:
            return math.nan
        sys.exit(1)
    return result.value


def cli() -> None:
    """`python -m linesweep.train`, `linesweep-train`: Ctrl-C while Hydra starts or ends is one
    line too, with the shell's exit status 130 (SIGTERM there ends the process at once, 143).

    The command's entry point, for a process that ends when it returns: it leaves Ctrl-C
    ignored and Python's collector frozen, for a quiet and quick exit. From Python, train with
    `linesweep.run.task.run` (or compose and call `main`'s task) instead."""
    try:
        _refuse_gone_folder()
        _refuse_unknown_keys(sys.argv[1:])
        with collector.paused():
            if _sweeps(sys.argv[1:]):
                # Its trials fork from a server that imports torch and the training on the
                # other core while Hydra composes here (this process never needs torch).
                from linesweep.run import native
                from linesweep.sweep import trial_server

                native.prepare_for_trials()  # built here, once, before the server loads it
                trial_server.warm(trial_server.LINESWEEP_APP)
            else:  # torch, here where Ctrl-C is caught
                import linesweep.run.task  # noqa: F401
        gc.freeze()  # what the imports made: later collections need not walk it (collector.py)
        main()
    except KeyboardInterrupt as err:
        name = interrupted_by(err)
        print(f"interrupted by {name}", file=sys.stderr)
        sys.exit(_exit_status(name))
    finally:
        # The run is recorded: a Ctrl-C now would only cut Python's exit short with a traceback
        # from an atexit handler (torch's); the process ends within a moment anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Python's last collections at exit walk every object torch, Hydra and Optuna made:
        # about 0.4 s of every command's end (benchmarks/README.md). Frozen, they are skipped;
        # files, loggers and atexit handlers close as they always do.
        gc.freeze()


def _refuse_gone_folder() -> None:
    """The current folder deleted under the shell: one line, exit 2, before anything uses it."""
    try:
        os.getcwd()
    except FileNotFoundError:
        print(
            f"[{datetime.now():%H:%M:%S}][ERROR] the current folder: it was deleted; "
            "allowed: a folder that exists (cd into one)",
            file=sys.stderr,
        )
        sys.exit(2)


def _refuse_unknown_keys(arguments: list[str]) -> None:
    """A key the config does not have: one line naming the nearest, exit 2 (as a sweep says
    it), before Hydra composes and refuses it in eight lines."""
    if any(a in ("--help", "-h", "--hydra-help") for a in arguments):
        return
    from linesweep.run.overrides import check_command_line

    try:
        check_command_line(arguments)
    except LinesweepError as err:
        print(f"[{datetime.now():%H:%M:%S}][ERROR] {err}", file=sys.stderr)
        sys.exit(2)


def _sweeps(arguments: list[str]) -> bool:
    """Whether the command runs linesweep's sweeper (a search preset, or the sweeper named)
    with trial processes of its own (not through a Hydra launcher such as joblib's)."""
    multirun = any(a in ("-m", "--multirun") for a in arguments)
    named = [a for a in arguments if a.startswith(("hparams_search=", "hydra/sweeper="))]
    launcher = any(
        a.startswith("hydra/launcher=") or a == "hydra.sweeper.executor=launcher" for a in arguments
    )
    return multirun and bool(named) and "hydra/sweeper=basic" not in named and not launcher


def _exit_status(signal_name: str) -> int:
    """The shell's status for a process a signal stopped: 128 + its number (Ctrl-C: 130)."""
    stopped_by = signal.Signals.__members__.get(signal_name, signal.SIGINT)
    return 128 + stopped_by.value


if __name__ == "__main__":
    cli()
