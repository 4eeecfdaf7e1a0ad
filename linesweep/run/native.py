"""The step's forward and backward in C (`native_step.c`), compiled once per machine.

This module builds and loads the library (and imports no torch: a sweep's own process asks
whether it is there, to plan its populations); `linesweep.run.step_native` calls it.

    LINESWEEP_NATIVE=0 python -m linesweep.train ...   # the torch layers instead

Why C: the torch step (`linesweep.run.step_layers`) does each layer as a pass over all R
members' activations at once, megabytes at R = 256, and its time is that memory traffic. The C
loop does one member's whole forward and backward in a few kilobytes of scratch that stay in
the core's cache (`native_step.c` says more). The parameter update stays torch's fused kernel.

The compiler is the machine's own C compiler (`cc`, or `$CC`), no torch headers: compiling takes
about half a second, once; the library is kept in the user's cache folder under a name that
hashes the source, the compiler's command and the processor, so a change of any of them
compiles anew, and a cache shared by machines of other processors never hands one a library
built for another. Where there is no compiler, or it fails, the step is torch's, said once in
the log: results agree to float rounding either way (tests/test_step.py runs its specification
on both). A sweep's trial server loads the library when it imports this module, so that every
trial forked from it has it loaded, and a machine without a compiler is told so once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from linesweep.core.processes import IN_A_FORK_SERVER

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_step.c")
FLAGS = ("-O3", "-funroll-loops", "-fopenmp-simd", "-shared", "-fPIC", "-std=c11")
FOR_THIS_PROCESSOR = ("-march=native",)  # tried first (`library`)
ENV_SWITCH = "LINESWEEP_NATIVE"  # off: never compile, the torch step (`switched_on`)
ON, OFF = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")
BUILD_TIMEOUT_S = 60  # a compile takes half a second


def _processor() -> str:
    """What the library was built for: `-march=native` depends on it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return platform.machine() + line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, or relative: the XDG spec says to ignore it
        base = str(Path.home() / ".cache")  # RuntimeError with no home: `library` says so
    return Path(base) / "linesweep" / "native"


def _where() -> str:
    try:
        return str(_cache_dir())
    except RuntimeError:
        return "the cache folder"


def prepare_for_trials() -> None:
    """In a process about to start trial processes (a sweep's): the library built or loaded
    here, where a signal ends the build at once, rather than in the trial server, whose start
    holds signals (a hung compiler would hold a Ctrl-C for `BUILD_TIMEOUT_S`). If it cannot
    be had, it is switched off for the processes this one starts (`LINESWEEP_NATIVE=0` in the
    environment they inherit): none tries again, and it is said once."""
    if library() is None:
        os.environ[ENV_SWITCH] = "0"


def _compiler() -> list[str] | None:
    """The C compiler's command: $CC (which may carry flags), else cc, gcc or clang."""
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])  # ValueError if unbalanced: `library` says so
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


class BuildFailed(Exception):
    """The compiler did not build the library; the message is what it said, in short."""


class TimedOut(BuildFailed):
    """The compiler hung: no other flags are tried."""


class NotLoadable(BuildFailed):
    """The library was built, but a process that loads it fails (`_check_loads`)."""


def _said(output: bytes) -> str:
    """A compiler's complaint in one line: its lines that say what went wrong (error, fatal,
    failed, no space), at most two, else its last line."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"error|fatal|failed|no space", line, re.I)]
    return " / ".join(telling[:2]) if telling else (lines[-1] if lines else "no output")


def _build(compiler: list[str], flags: tuple[str, ...], target: Path) -> None:
    """Compile into `target`, atomically: workers building at once each write their own
    temporary folder, and the last rename wins (the files are the same). A compile that hangs
    is stopped, with whatever it started, after `BUILD_TIMEOUT_S`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        command = [*compiler, *flags, "-o", str(built), str(SOURCE), "-lm"]
        try:  # a session of its own: a hung compiler's children are stopped with it
            compiling = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as error:  # no such program, not executable: the compiler's fault
            raise BuildFailed(f"{compiler[0]}: {error.strerror or error}") from None
        with compiling, _sigterm_raises():
            try:
                output, _ = compiling.communicate(timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(compiling.pid, signal.SIGKILL)
                compiling.communicate()
                raise TimedOut(f"{compiler[0]} took over {BUILD_TIMEOUT_S} s; stopped") from None
            except BaseException:  # Ctrl-C or SIGTERM while it compiles: it stops with us
                os.killpg(compiling.pid, signal.SIGKILL)
                raise
        if compiling.returncode != 0:
            said = _said(output)
            raise BuildFailed(f"{compiler[0]} exited with {compiling.returncode}: {said}")
        if not built.is_file():
            raise BuildFailed(f"{compiler[0]} ended well but wrote no library")
        _check_loads(built)
        os.replace(built, target)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a compiler runs in its own session, SIGTERM (which would end this process at once
    and leave the compiler running) raises SystemExit(143) instead, so that it is stopped
    first; only where SIGTERM has its default action, in the main thread (a trial server
    ignores it on purpose)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# Loaded and asked its scratch size in a process of its own, before it enters the cache: a
# library that would abort the process that loads it (built with -fsanitize=address, say) or
# lacks the functions is refused there, never loaded here.
_LOADS = "import ctypes, sys; ctypes.CDLL(sys.argv[1]).lines_scratch"


def _check_loads(built: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOADS, str(built)], capture_output=True, timeout=BUILD_TIMEOUT_S
    )
    if done.returncode != 0:
        said = _said(done.stderr).replace(f"{built}: ", "").replace(str(built), "the library")
        raise NotLoadable(said)


def _clear_leftovers(folder: Path) -> None:
    """Temporary folders of builds that were killed (an hour old: no build takes that long)."""
    for leftover in folder.glob("tmp*"):
        try:
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _library_path(compiler: list[str], flags: tuple[str, ...]) -> Path:
    """Where the library for this source, compiler, flags and processor is kept."""
    key = hashlib.sha256(
        b"\0".join(x.encode() for x in (*compiler, *flags, _processor()))
        + SOURCE.read_bytes()
    ).hexdigest()[:16]  # fmt: skip
    return _cache_dir() / f"native_step-{key}.so"


def _load(compiler: list[str], flags: tuple[str, ...]) -> ctypes.CDLL:
    """The library, from the cache or built there (and checked: `_check_loads`). A cached
    file that does not load (cut short by a full disk, say) is built again once."""
    target = _library_path(compiler, flags)
    if target.parent.is_dir():
        _clear_leftovers(target.parent)
    if target.is_file():
        try:
            return _typed(ctypes.CDLL(str(target)))
        except (OSError, AttributeError):
            target.unlink(missing_ok=True)
    _build(compiler, flags, target)
    return _typed(ctypes.CDLL(str(target)))


def _typed(lib: ctypes.CDLL) -> ctypes.CDLL:
    """The functions' C types: ctypes then converts Python ints and None (NULL) itself."""
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.lines_step.argtypes = [
        pointer, i64, i64,  # arch, members, batch
        pointer, i64, i64, i64,  # images, their member stride, planes or not, image stride
        pointer, i64,  # labels, their member stride
        pointer, pointer, i64,  # params, grads, their row stride
        pointer, pointer, pointer,  # loss, logits, scratch
    ]  # fmt: skip
    lib.lines_step.restype = i64
    lib.lines_scratch.argtypes = [pointer, i64]
    lib.lines_scratch.restype = i64
    return lib


def _switch() -> str:
    return os.environ.get(ENV_SWITCH, "").strip().lower()


def switched_on() -> bool:
    """Whether `LINESWEEP_NATIVE` lets the C step be used: unset, 1/true/yes/on; 0/false/no/off
    turn it off; anything else is said once and leaves it on."""
    value = _switch()
    if value in OFF:
        return False
    if value not in ON:
        log.warning("%s=%r is not one of %s (on) or %s (off): the C step stays on", ENV_SWITCH,
                    os.environ[ENV_SWITCH], "/".join(ON[1:]), "/".join(OFF))  # fmt: skip
    return True


def compiler_found() -> bool:
    """Whether the C step can be built here, as far as can be told without building it: for a
    process that plans (`linesweep.run.grouping`), where building would only repeat the work
    and the warning of the processes that train."""
    try:
        return _switch() not in OFF and bool(_compiler())
    except ValueError:
        return False


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None: switched off (`LINESWEEP_NATIVE=0`), or it could not be
    built or loaded, which one warning line says, with why; the step is then torch's.

    Built for this processor first (`-march=native`: its vector instructions), and without
    that where the compiler refuses it.
    """
    if not switched_on():
        return None
    try:
        compiler = _compiler()
        if compiler is None:
            log.warning("no C compiler found (cc, gcc, clang, $CC): the step runs in torch, slower")
            return None
        failure: Exception | None = None
        for flags in ((*FOR_THIS_PROCESSOR, *FLAGS), FLAGS):
            try:
                return _load(compiler, flags)
            except TimedOut:
                raise
            except BuildFailed as error:  # perhaps -march=native: try without
                failure = error
        raise failure  # type: ignore[misc]
    except NotLoadable as error:
        log.warning("the C step was built but does not load (%s): the step runs in torch, "
                    "slower", error)  # fmt: skip
    except OSError as error:  # the cache folder: unwritable, a file, too long a name
        log.warning("the C step could not be built in %s (%s; XDG_CACHE_HOME moves it): the "
                    "step runs in torch, slower", _where(), error.strerror or error)  # fmt: skip
    except Exception as error:  # whatever it is, it only costs speed: torch's layers train
        log.warning("the C step did not compile (%s): the step runs in torch, slower",
                    str(error).strip() or type(error).__name__)  # fmt: skip
    return None


if IN_A_FORK_SERVER:  # every trial forked from the server inherits the loaded library
    library()
