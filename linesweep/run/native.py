"""The step's forward and backward in C (`native_step.c`), compiled once per machine.

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
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from linesweep.core.processes import IN_A_FORK_SERVER
from linesweep.run.step_layers import Pair, Window

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC", "-std=c11")
ENV_SWITCH = "LINESWEEP_NATIVE"  # "0": never compile, the torch step


class _Window(ctypes.Structure):  # window_t in native_step.c
    _fields_ = [(name, ctypes.c_int64) for name in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw")]

    @classmethod
    def of(cls, window: Window) -> _Window:
        return cls(*window.kernel, *window.stride, *window.padding, *window.dilation)


_SIZES = ("c0", "c1", "c2", "classes", "h0", "w0", "h1", "w1", "q1h", "q1w", "h2", "w2", "q2h",
          "q2w")  # fmt: skip


class _Arch(ctypes.Structure):  # arch_t in native_step.c
    _fields_ = [
        *((name, ctypes.c_int64) for name in _SIZES),
        *((name, _Window) for name in ("conv1", "pool1", "conv2", "pool2")),
    ]


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
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "linesweep" / "native"


def _compile(compiler: str, target: Path) -> None:
    """Build the library into `target`, atomically: workers compiling at once each write their
    own temporary file and the last rename wins (the files are the same)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run(
            [compiler, *FLAGS, "-o", str(built), str(SOURCE), "-lm"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        os.replace(built, target)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (switched off, no compiler, or it failed: said once)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        log.warning("no C compiler found (cc, $CC): the step runs in torch, slower")
        return None
    try:
        key = hashlib.sha256(
            b"\0".join([SOURCE.read_bytes(), compiler.encode(), " ".join(FLAGS).encode(),
                        _processor().encode()])
        ).hexdigest()[:16]  # fmt: skip
        target = _cache_dir() / f"native_step-{key}.so"
        if not target.exists():
            _compile(compiler, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        detail = (getattr(error, "stderr", None) or str(error)).strip().splitlines()
        log.warning("the C step did not compile (%s): the step runs in torch, slower",
                    detail[-1] if detail else type(error).__name__)  # fmt: skip
        return None
    lib.lines_step.restype = None
    lib.lines_scratch.restype = ctypes.c_int64
    return lib


class NativeStep:
    """The C forward and backward of one architecture and image size, for the members' rows of
    a (R, P') parameter buffer (`HandStep`'s, whose update stays torch's fused kernel)."""

    def __init__(
        self, lib: ctypes.CDLL, channels: Sequence[int], sizes: Sequence[Pair],
        windows: Sequence[Window],
    ) -> None:  # fmt: skip
        """channels (C0, C1, C2, K); sizes: the image's, then conv1's, pool1's, conv2's and
        pool2's outputs; windows: conv1's, pool1's, conv2's and pool2's."""
        self._lib = lib
        numbers = (n for size in sizes for n in size)
        self._arch = _Arch(*channels, *numbers, *(_Window.of(w) for w in windows))
        self._classes = channels[3]
        self._scratch: dict[int, Tensor] = {}

    def gradient(self, planes: Tensor, labels: Tensor, rows: Tensor, grad_rows: Tensor) -> Tensor:
        """Each member's mean loss (R,) on images `planes` (R or 1, C0, H, W, B) with `labels`
        (R, B); the gradient of each member's row of `rows` (R, P') into `grad_rows`."""
        loss = rows.new_empty(len(rows))
        self._run(planes, labels, rows, grad_rows, loss, None)
        return loss

    def logits(self, planes: Tensor, rows: Tensor) -> Tensor:
        """Each member's logits (R, K, B) on images `planes` (R or 1, C0, H, W, B)."""
        logits = rows.new_empty(len(rows), self._classes, planes.shape[-1])
        self._run(planes, None, rows, None, None, logits)
        return logits

    def _run(self, planes: Tensor, labels: Tensor | None, rows: Tensor, grad_rows: Tensor | None,
             loss: Tensor | None, logits: Tensor | None) -> None:  # fmt: skip
        r, b = len(rows), planes.shape[-1]
        if not planes[0].is_contiguous():
            planes = planes.contiguous()
        if labels is not None:
            labels = labels.to(torch.int64)
            if labels.stride(1) != 1:
                labels = labels.contiguous()
        assert rows.dtype == torch.float32 and rows.stride(1) == 1
        assert grad_rows is None or grad_rows.stride() == rows.stride()
        assert len(planes) in (1, r) and (labels is None or labels.shape == (r, b))
        lib, i64 = self._lib, ctypes.c_int64

        def pointer(t: Tensor | None) -> ctypes.c_void_p:
            return ctypes.c_void_p(None if t is None else t.data_ptr())

        lib.lines_step(
            ctypes.byref(self._arch), i64(r), i64(b),
            pointer(planes), i64(planes.stride(0) if len(planes) > 1 else 0),
            pointer(labels), i64(0 if labels is None else labels.stride(0)),
            pointer(rows), pointer(grad_rows), i64(rows.stride(0)),
            pointer(loss), pointer(logits), pointer(self._scratch_for(b)),
        )  # fmt: skip

    def _scratch_for(self, batch: int) -> Tensor:
        if batch not in self._scratch:
            n = self._lib.lines_scratch(ctypes.byref(self._arch), ctypes.c_int64(batch))
            self._scratch[batch] = torch.empty(n, dtype=torch.float32)
        return self._scratch[batch]


if IN_A_FORK_SERVER:  # every trial forked from the server inherits the loaded library
    library()
