"""The C forward and backward (`native_step.c`) for the members of a `HandStep`: its Python side.

`linesweep.run.native` builds and loads the library; here its arguments are laid out: the
architecture as a C struct, the images as the C loop reads them, the parameters and gradients
as the step's (R, P') rows. The update stays torch's fused kernel (`step_update.py`).

Measured (`python benchmarks/bench_step.py --engines`, benchmarks/README.md, Step): against
torch's layers in one process, 1.9-2.7x fewer µs a member-step at R = 64-256 and 3-6x at R = 1-8;
at R = 256, about 9 µs a member-step with shared images, 11 with the members' own.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import torch
from torch import Tensor

from linesweep.run.step_layers import Pair, Window


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
        self._image = (channels[0], h, w)  # (C0, H, W)
        self._image_strides = (h * w, w, 1)  # (C0, H, W) contiguous
        self._scratch: dict[int, Tensor] = {}

    def gradient(self, images: Tensor, labels: Tensor, rows: Tensor, grad_rows: Tensor) -> Tensor:
        """Each member's mean loss (R,) on `images` with `labels` (R, B); the gradient of each
        member's row of `rows` (R, P') into `grad_rows`. images: (R, B, C0, H, W) as torch
        holds them, or, for R > 1, planes (1, C0, H, W, B) that every member shares (the
        images innermost: `linesweep.run.step.image_inputs`)."""
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
        """One call of `lines_step`. What C cannot check is checked here, where torch's layers
        would raise: C would read or write out of bounds instead (a step's Python around the
        call is a few µs, so these are plain comparisons)."""
        r, shared = len(rows), self._shared(images, rows)
        if images.dtype != torch.float32 or not images.is_cpu:  # is_cpu: a sixth of .device
            raise TypeError(
                f"images are {images.dtype} on {images.device}; the step's parameters are "
                "float32 on the CPU"
            )
        if images.dim() != 5:
            raise ValueError(f"images {tuple(images.shape)}: (R, B, C0, H, W) are needed")
        if images.is_neg() or images.is_conj():  # views whose numbers C would read unresolved
            images = images.resolve_neg().resolve_conj()
        if shared:
            images = images.contiguous()  # (1, C0, H, W, B), already so when from image_inputs
            c0, (h, w), b = images.shape[1], images.shape[2:4], images.shape[-1]
        else:
            b, c0, (h, w) = images.shape[1], images.shape[2], images.shape[3:]
            if images.stride()[2:] != self._image_strides or images.stride(1) < 1:
                images = images.contiguous()  # each image (C0, H, W) contiguous, apart
        if (c0, h, w) != self._image or len(images) not in (1, r) or b < 1:
            raise ValueError(
                f"images {tuple(images.shape)} for {r} member(s) of a step built for "
                f"(R or 1, B >= 1, C0, H, W) = (C0, H, W) {self._image}"
            )
        if labels is not None:
            if labels.shape != (r, b):
                raise ValueError(f"labels {tuple(labels.shape)} for images of {r} x {b}")
            if labels.dtype not in (torch.int64, torch.int32) or not labels.is_cpu:
                raise TypeError(
                    f"labels are {labels.dtype} on {labels.device}; class indices (int64 on "
                    "the CPU) are needed"
                )
            if labels.dtype != torch.int64 or labels.stride(1) != 1:
                labels = labels.to(torch.int64).contiguous()
        refused = self._lib.lines_step(
            self._arch_address, r, b,
            images.data_ptr(), 0 if len(images) == 1 else images.stride(0), int(shared),
            0 if shared else images.stride(1),
            _address(labels), 0 if labels is None else labels.stride(0),
            rows.data_ptr(), _address(grad_rows), rows.stride(0),
            _address(loss), _address(logits), self._scratch_for(b).data_ptr(),
        )  # fmt: skip
        if refused:  # as torch's cross_entropy refuses it
            member, image = divmod(refused - 1, b)
            label = int(labels[member, image])  # type: ignore[index]
            raise IndexError(f"Target {label} is out of bounds (classes 0..{self._classes - 1})")

    def _scratch_for(self, batch: int) -> Tensor:
        if batch not in self._scratch:
            n = self._lib.lines_scratch(self._arch_address, batch)
            self._scratch[batch] = torch.empty(n, dtype=torch.float32)
        return self._scratch[batch]
