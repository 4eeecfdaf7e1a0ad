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
import shlex
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
FLAGS = ("-O3", "-fopenmp-simd", "-shared", "-fPIC", "-std=c11")
FOR_THIS_PROCESSOR = ("-march=native",)  # tried first (`library`)
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
    lib.lines_step.restype = None
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


def _address(tensor: Tensor | None) -> int | None:
    """Where a tensor's numbers start, for C; None (NULL) for no tensor."""
    return None if tensor is None else tensor.data_ptr()


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
        self._arch_address = ctypes.addressof(self._arch)
        self._classes = channels[3]
        h, w = sizes[0]
        self._image_strides = (h * w, w, 1)  # (C0, H, W) contiguous
        self._scratch: dict[int, Tensor] = {}

    def gradient(self, images: Tensor, labels: Tensor, rows: Tensor, grad_rows: Tensor) -> Tensor:
        """Each member's mean loss (R,) on `images` with `labels` (R, B); the gradient of each
        member's row of `rows` (R, P') into `grad_rows`. images: (R, B, C0, H, W) as torch
        holds them, or, for R > 1, planes (1, C0, H, W, B) that every member shares (the
        images innermost: `linesweep.run.step.image_planes`)."""
        loss = rows.new_empty(len(rows))
        self._run(images, labels, rows, grad_rows, loss, None)
        return loss

    def logits(self, images: Tensor, rows: Tensor) -> Tensor:
        """Each member's logits (R, K, B) on `images`, as `gradient` takes them."""
        b = images.shape[-1] if self._shared(images, rows) else images.shape[1]
        logits = rows.new_empty(len(rows), self._classes, b)
        self._run(images, None, rows, None, None, logits)
        return logits

    @staticmethod
    def _shared(images: Tensor, rows: Tensor) -> bool:
        """Whether `images` are planes every member shares (see `gradient`)."""
        return len(images) == 1 < len(rows)

    def _run(self, images: Tensor, labels: Tensor | None, rows: Tensor, grad_rows: Tensor | None,
             loss: Tensor | None, logits: Tensor | None) -> None:  # fmt: skip
        """One call of `lines_step` (a step's Python around it is a few µs: kept lean)."""
        r, shared = len(rows), self._shared(images, rows)
        if shared:
            images = images.contiguous()  # (1, C0, H, W, B), already so when from image_inputs
        elif images.stride()[2:] != self._image_strides:  # each image (C0, H, W) contiguous
            images = images.contiguous()
        b = images.shape[-1] if shared else images.shape[1]
        if labels is not None:
            if labels.dtype != torch.int64 or labels.stride(1) != 1:
                labels = labels.to(torch.int64).contiguous()
            assert labels.shape == (r, b)
        assert rows.dtype == torch.float32 and rows.stride(1) == 1 and len(images) in (1, r)
        assert grad_rows is None or grad_rows.stride() == rows.stride()
        self._lib.lines_step(
            self._arch_address, r, b,
            images.data_ptr(), 0 if len(images) == 1 else images.stride(0),
            0 if shared else images.stride(1),
            _address(labels), 0 if labels is None else labels.stride(0),
            rows.data_ptr(), _address(grad_rows), rows.stride(0),
            _address(loss), _address(logits), self._scratch_for(b).data_ptr(),
        )  # fmt: skip

    def _scratch_for(self, batch: int) -> Tensor:
        if batch not in self._scratch:
            n = self._lib.lines_scratch(self._arch_address, batch)
            self._scratch[batch] = torch.empty(n, dtype=torch.float32)
        return self._scratch[batch]


if IN_A_FORK_SERVER:  # every trial forked from the server inherits the loaded library
    library()
