"""Trial processes: how one starts, finds its task, runs its Hydra job, and dies with its parent.

The executors (executors.py, population_executor.py) decide which trials run and when; this is
the plumbing of the processes they start. A trial forks from a server that imported the task,
torch and Optuna while the sweep started (trial_server.py), so it starts in milliseconds; on
Windows it spawns. A trial ends when the sweep process goes away,
however it went (`exit_with_parent`), and sends back a `JobReturn` of plain data (`portable`).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.basecontainer import BaseContainer

from linesweep.sweep import trial_server
from linesweep.sweep.interrupts import deferred, reset_in_child
from linesweep.sweep.outcomes import as_objective


@dataclass(frozen=True)
class TaskReference:
    """How a worker process finds the task function: module, name, and decorator layers."""

    module: str
    qualname: str
    unwrap: int  # how many `__wrapped__` steps lead from the module attribute to the function

    @classmethod
    def of(cls, task: TaskFunction) -> TaskReference | None:
        """A reference a fresh process can import, or None (a closure, say)."""
        name, qualname = getattr(task, "__module__", None), getattr(task, "__qualname__", None)
        if name is None or qualname is None or "<locals>" in qualname:
            return None
        module = sys.modules.get(name)
        if name == "__main__":  # `python -m package.module`: importable under its real name
            spec = getattr(module, "__spec__", None)
            if spec is None:
                return None
            name = spec.name
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        for steps in range(4):  # decorators such as @hydra.main keep the task in __wrapped__
            if obj is task:
                return cls(name, qualname, steps)
            obj = getattr(obj, "__wrapped__", None)
        return None

    def resolve(self) -> TaskFunction:
        obj: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        for _ in range(self.unwrap):
            obj = obj.__wrapped__
        return obj


def exit_with_parent(alive: multiprocessing.connection.Connection) -> None:
    """End this trial when the sweep process goes away, however it went.

    The sweep process closes its end of `alive` when it stops the trial, or when it dies; the
    parent this process started with going away (the sweep process, or the server it forked
    from, which ends with the sweep) says the same. A SIGTERM first lets the task record
    `interrupted` in its folder; a task that does not stop within seconds is ended regardless.
    """
    parent = os.getppid()
    while not alive.poll(0.2):
        if os.getppid() != parent:
            break
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(70)


def enter_child(alive: multiprocessing.connection.Connection, environment: dict[str, str]) -> None:
    """What every trial process does first: take its interrupts from the sweep, watch for the
    sweep's end, and see the environment the sweep process had when it started this one (a
    process forked from the server would otherwise see the server's, from before the sweep set
    its storage's password variable)."""
    reset_in_child()  # the sweep process decides about interrupts
    threading.Thread(target=exit_with_parent, args=(alive,), daemon=True).start()
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)


def worker_main(
    results: multiprocessing.connection.Connection,
    alive: multiprocessing.connection.Connection,
    job: tuple[HydraContext, DictConfig, TaskFunction | TaskReference, dict, dict[str, str]],
) -> None:
    """Body of a trial process: run one Hydra job, send back its JobReturn."""
    hydra_context, config, task, singletons, environment = job
    enter_child(alive, environment)
    setup_globals()
    # Resolvers are functions and do not pickle: this process has those its imports registered.
    Singleton.set_state({"instances": singletons, "omegaconf_resolvers": BaseContainer._resolvers})
    HydraConfig.instance().set_config(config)
    try:
        ret = run_job(
            hydra_context=hydra_context,
            task_function=task.resolve() if isinstance(task, TaskReference) else task,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    except (Exception, KeyboardInterrupt) as err:  # an interrupt too: a verdict, no traceback
        ret = JobReturn(status=JobStatus.FAILED, _return_value=err)
    results.send(portable(ret))
    results.close()


def portable(ret: JobReturn) -> JobReturn:
    """The JobReturn as plain data: configs without their schema classes, a picklable value.

    (Hydra re-imports plugin modules in a fresh process, so their config classes are not the
    ones pickle would find by name.)
    """
    for name in ("cfg", "hydra_cfg"):
        node = getattr(ret, name)
        if node is not None:
            setattr(ret, name, OmegaConf.create(OmegaConf.to_container(node, resolve=False)))
    if ret.status == JobStatus.COMPLETED:
        # Plain floats: a torch tensor would cross the pipe as a handle to shared memory that
        # dies with this process, and numpy scalars need not be importable on the other side.
        with contextlib.suppress(TypeError, ValueError):
            values = as_objective(ret._return_value)
            ret._return_value = values[0] if len(values) == 1 else tuple(values)
    try:
        pickle.dumps(ret._return_value)
    except Exception:
        ret._return_value = RuntimeError(repr(ret._return_value))
    return ret


def stop_processes(processes: list[Any], grace_s: float = 5.0) -> None:
    """SIGTERM each (a run records `interrupted` itself), then SIGKILL what is left after
    `grace_s` seconds for them all."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the out-of-memory killer sends this)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {exitcode} before reporting a result"


def start_method(
    task: TaskFunction, preload: list[str], shared: object = None
) -> tuple[Any, TaskFunction | TaskReference]:
    """How trial processes start, and how they will find the task; `shared` is what every
    trial process is sent besides its own config (Hydra's context and singletons).

    Linux and macOS: fork from a server process that imported the task, Optuna and `preload`
    once (trial_server.py: linesweep's command starts it before Hydra composes; otherwise it
    starts here, before the first trials are composed). A trial starts in milliseconds with all
    of it loaded, and the sweep process itself never needs torch. (The sweep process is not
    forked itself: forking a macOS process that has loaded system frameworks is unsafe, and a
    server leaves the sweep's own threads, locks and storage connections behind.) On Linux a
    task that is not importable (a closure), or a context that does not pickle (a Hydra
    callback holding a lock, say), forks the sweep process instead. Windows spawns a fresh
    interpreter per trial.
    """
    reference = TaskReference.of(task)
    if reference is not None and trial_server.AVAILABLE and _pickles(shared):
        main = getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", None)
        task_module = [] if reference.module == main else [reference.module]  # see trial_server
        trial_server.warm([*task_module, "linesweep.sweep.study", *preload])
        return multiprocessing.get_context("forkserver"), reference
    if sys.platform.startswith("linux"):
        for module in preload:
            importlib.import_module(module)
        return multiprocessing.get_context("fork"), task
    if reference is None:
        raise ValueError("the task function is not importable (a closure?)")
    return multiprocessing.get_context("spawn"), reference


START_TRIES = 5  # servers killed one after another as a trial is sent to them


def start(process: Any) -> None:
    """Start a trial's process, with SIGINT and SIGTERM held meanwhile: cut short, the job it
    is sent (through the server, a pickle) would reach it in part, and it would die of that
    with a traceback; the sweep takes the signal once the process runs.

    A server that dies while the job is sent to it (killed) breaks the connection: the start is
    tried again, on a server started again (`START_TRIES` in all), rather than taken for the
    storage's failure."""
    from_server = getattr(process, "_start_method", None) == "forkserver"  # its context says
    if from_server:
        trial_server.ensure_running()
    with deferred():
        for tries_left in range(START_TRIES - 1, -1, -1):
            try:
                process.start()
                return
            except (ConnectionError, EOFError):
                if not from_server or not tries_left:
                    raise
                trial_server.replace_broken()


def _pickles(shared: object) -> bool:
    """Whether `shared` can be sent to a process that did not fork from this one."""
    try:
        pickle.dumps(shared)
    except Exception:  # whatever pickle raises, the answer is no
        return False
    return True
