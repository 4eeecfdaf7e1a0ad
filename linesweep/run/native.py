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

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from linesweep.core.processes import IN_A_FORK_SERVER

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_step.c")
FLAGS = ("-O3", "-funroll-loops", "-fopenmp-simd", "-shared", "-fPIC", "-std=c11")
FOR_THIS_PROCESSOR = ("-march=native",)  # tried first (`library`)
ENV_SWITCH = "LINESWEEP_NATIVE"  # "0": never compile, the torch step


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
        base = str(Path.home() / ".cache")
    return Path(base) / "linesweep" / "native"


def _compiler() -> list[str] | None:
    """The C compiler's command: $CC (which may carry flags), else cc, gcc or clang."""
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def _built(compiler: list[str], flags: tuple[str, ...]) -> Path:
    """The library for this source, compiler, flags and processor: from the cache, or built
    there, atomically (workers building at once each write their own temporary file, and the
    last rename wins: the files are the same)."""
    key = hashlib.sha256(
        b"\0".join(x.encode() for x in (*compiler, *flags, _processor()))
        + SOURCE.read_bytes()
    ).hexdigest()[:16]  # fmt: skip
    target = _cache_dir() / f"native_step-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run(
            [*compiler, *flags, "-o", str(built), str(SOURCE), "-lm"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        os.replace(built, target)
    return target


def _load(compiler: list[str], flags: tuple[str, ...]) -> ctypes.CDLL:
    """The library, loaded; a cached file that does not load (cut short by a full disk, say)
    is built again once."""
    target = _built(compiler, flags)
    try:
        return _typed(ctypes.CDLL(str(target)))
    except (OSError, AttributeError):
        target.unlink(missing_ok=True)
        return _typed(ctypes.CDLL(str(_built(compiler, flags))))


def _typed(lib: ctypes.CDLL) -> ctypes.CDLL:
    """The functions' C types: ctypes then converts Python ints and None (NULL) itself."""
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.lines_step.argtypes = [
        pointer, i64, i64,  # arch, members, batch
        pointer, i64, i64,  # images, their member stride, their image stride (0: planes)
        pointer, i64,  # labels, their member stride
        pointer, pointer, i64,  # params, grads, their row stride
        pointer, pointer, pointer,  # loss, logits, scratch
    ]  # fmt: skip
    lib.lines_step.restype = i64
    lib.lines_scratch.argtypes = [pointer, i64]
    lib.lines_scratch.restype = i64
    return lib


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (switched off, no compiler, or it failed: said once).

    Built for this processor first (`-march=native`: its vector instructions), and without
    that where the compiler refuses it.
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    compiler = _compiler()
    if compiler is None:
        log.warning("no C compiler found (cc, gcc, clang, $CC): the step runs in torch, slower")
        return None
    failure: Exception | None = None
    for flags in ((*FOR_THIS_PROCESSOR, *FLAGS), FLAGS):
        try:
            return _load(compiler, flags)
        except (OSError, AttributeError, subprocess.SubprocessError) as error:
            failure = failure or error
    detail = (getattr(failure, "stderr", None) or str(failure)).strip().splitlines()
    log.warning("the C step did not compile (%s): the step runs in torch, slower",
                detail[-1] if detail else type(failure).__name__)  # fmt: skip
    return None


if IN_A_FORK_SERVER:  # every trial forked from the server inherits the loaded library
    library()
