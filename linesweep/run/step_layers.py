"""The layers of the hand-written step (`linesweep.run.step`), each forward beside its backward.

Activations are (R, C, H, W, B): R members, C channels, the images innermost. Every function
here takes and returns tensors in that layout (or a convolution's columns), and a backward
undoes the forward written just above it. Shapes: O output channels, Ho x Wo a layer's
output, L = Ho*Wo its pixels.

Two regimes, split at `LARGE` numbers per tensor. A small step (one member: a single run) is
a few hundred numbers per operation, and its time is the operations' own cost, a few µs each:
there the fewest operations win (torch's max-pooling kernel, `F.fold`, fresh tensors). A step
of hundreds of members moves megabytes per operation, and its time is memory traffic: there
tensors are written into buffers kept from step to step (`Workspace`), and max-pooling and
the convolutions' backward are done in whole-tensor passes that touch fewer numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linesweep.run.shapes import conv_output_shape, window_sees_only_padding

Pair = tuple[int, int]

# Numbers in a tensor from which a layer takes the large-step route (see the module docstring).
# 32768 float32 numbers are 128 KiB, the size from which the C allocator maps fresh pages.
LARGE = 1 << 15


@dataclass(frozen=True)
class Window:
    """A sliding window (convolution or max-pooling), per axis (height, width)."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair

    @classmethod
    def of(cls, layer: nn.Conv2d | nn.MaxPool2d) -> Window:
        values = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        pairs = ((v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in values)
        return cls(*pairs)

    def output_size(self, size: Pair) -> Pair:
        return conv_output_shape(size, self.kernel, self.stride, self.padding, self.dilation)

    def padded(self, size: Pair) -> Pair:
        return size[0] + 2 * self.padding[0], size[1] + 2 * self.padding[1]

    def sees_only_padding(self, size: Pair) -> bool:
        """Whether some window on a `size` input covers no pixel, only padding (per axis)."""
        return window_sees_only_padding(size, self.kernel, self.stride, self.padding, self.dilation)


# ---------------------------------------------------------------- buffers kept between steps
class Workspace:
    """The large tensors one layer writes on every step, allocated once per name and shape.

    A step of many members writes tensors of megabytes. Fresh ones come from the C allocator,
    which maps and unmaps their pages as the step takes and frees them: at R=256 about a
    thousand page faults a step, a fifth of its time (counted with `getrusage`). Writing into
    the same buffers every step (`out=`) takes none. A buffer holds its value until its layer
    writes it again, at the next step: what the backward reads, never what a caller keeps
    (losses and logits are fresh tensors). Small tensors are not kept: `get` answers None and
    the operation allocates, which for them is cheaper than its `out=` form.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def get(self, name: str, like: Tensor, *shape: int) -> Tensor | None:
        """The buffer `name` of `shape` (like's dtype and device), or None for a small one."""
        return self.take(name, like, *shape) if math.prod(shape) >= LARGE else None

    def take(self, name: str, like: Tensor, *shape: int) -> Tensor:
        """The buffer `name` of `shape`, whatever its size (uninitialised when new)."""
        buffer = self._buffers.get((name, shape))
        if buffer is None:
            buffer = self._buffers[(name, shape)] = like.new_empty(shape)
        return buffer

    def zeros(self, name: str, like: Tensor, *shape: int) -> Tensor:
        """The buffer `name` of `shape`, zeros when made: padding, whose border no one writes."""
        buffer = self._buffers.get((name, shape))
        if buffer is None:
            buffer = self._buffers[(name, shape)] = like.new_zeros(shape)
        return buffer


def pad(x: Tensor, padding: Pair, ws: Workspace, name: str) -> Tensor:
    """x (..., C, H, W, B) with `padding` zeros around each image: (..., C, H+2ph, W+2pw, B)."""
    (ph, pw), (h, w, b) = padding, x.shape[-3:]
    if not (ph or pw):
        return x
    if x.numel() < LARGE:
        return F.pad(x, (0, 0, pw, pw, ph, ph))
    padded = ws.zeros(name, x, *x.shape[:-3], h + 2 * ph, w + 2 * pw, b)  # (..., Hp, Wp, B)
    padded[..., ph : ph + h, pw : pw + w, :].copy_(x)  # the border stays zero
    return padded


# ---------------------------------------------------------------- matmuls into the gradient buffer
def bmm_into(out: Tensor, a: Tensor, b: Tensor) -> None:
    """out = a @ b, member by member: (R, n, k) @ (R, k, m) -> (R, n, m), `out` a gradient view.

    The gradient views' members are rows of the (R, P) buffer, not adjacent matrices; torch's
    bmm writes such an `out` one member at a time. For several members, multiplying into a
    fresh tensor and copying is faster; for one, writing in place is (conv1's weight gradient,
    `python benchmarks/bench_population.py --part bmm`: R=1, 1.5 µs against 3.0; R=8, 12.9
    against 5.7; R=32, 47.3 against 12.7).
    """
    if len(out) == 1:
        torch.bmm(a, b, out=out)
    else:
        out.copy_(torch.bmm(a, b))


def shared(columns: Tensor, members: int) -> bool:
    """Whether `members` (more than one) share one set of columns (1, C*kh*kw, L*B).

    Members that train on the same images in the same order (replicates of an unshuffled
    experiment) and every member's validation on one split see the same conv1 columns: they
    are unfolded once, not once per member (`image_columns`).
    """
    return members > 1 and columns.shape[0] == 1


# ---------------------------------------------------------------- im2col and its adjoint
def unfold(x: Tensor, window: Window, out: Pair, ws: Workspace, name: str = "columns") -> Tensor:
    """im2col: (..., C, H, W, B) -> columns (..., C*kh*kw, Ho*Wo*B), one column per output pixel.

    Column (y, x, b) holds the C*kh*kw input pixels under the window at output pixel (y, x) of
    image b, so a convolution is one matmul with the weights (R, O, C*kh*kw). The windows are a
    strided view of the (padded) input, tap (i, j) of output (y, x) being pixel
    (y*sh + i*dh, x*sw + j*dw), copied out once. Leading dimensions (members, or members and
    batches: `HandStep.epoch`) are kept.
    """
    (kh, kw), (sh, sw), (dh, dw) = window.kernel, window.stride, window.dilation
    large = x.numel() >= LARGE
    if large and x.stride(-1) != 1:  # images (R, B, C, H, W): B innermost first, then the
        x = ws.take(name + ".images", x, *x.shape).copy_(x)  # taps copy runs of B
    if window.padding != (0, 0):
        x = pad(x, window.padding, ws, name + ".padded")  # (..., C, Hp, Wp, B)
    *lead, c, _, _, b = x.shape
    *s_lead, s_c, s_h, s_w, s_b = x.stride()
    taps = x.as_strided(
        (*lead, c, kh, kw, *out, b),
        (*s_lead, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w, s_b),
        x.storage_offset(),
    )  # (..., C, kh, kw, Ho, Wo, B)
    if not large:
        return taps.reshape(*lead, c * kh * kw, -1)  # (..., C*kh*kw, Ho*Wo*B), a copy
    columns = ws.take(name, x, *lead, c * kh * kw, out[0] * out[1] * b)
    columns.view(taps.shape).copy_(taps)
    return columns  # (..., C*kh*kw, Ho*Wo*B)


def fold(columns: Tensor, window: Window, c: int, size: Pair, out: Pair) -> Tensor:
    """col2im, the adjoint of `unfold`: (R, C*kh*kw, Ho*Wo*B) -> (R, C, H, W, B).

    Each entry of a column is added back onto the pixel it was read from, so a pixel under
    several windows receives the sum: tap (i, j) of every window, a (R, C, Ho, Wo, B) block of
    the columns, is added onto the strided view of the input that `unfold` read it from.

    With stride 1 across and a small step, torch's `F.fold` does it in one operation: each row
    of images, W*B numbers, is one row of a 2-d image whose window reaches dw*B numbers apart.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        window.kernel, window.stride, window.padding, window.dilation
    )  # fmt: skip
    r, b = columns.shape[0], columns.shape[2] // (out[0] * out[1])
    if sw == 1 and columns.numel() < LARGE:
        summed = F.fold(
            columns, (size[0], size[1] * b), window.kernel, (dh, dw * b), (ph, pw * b), (sh, 1)
        )  # (R, C, H, W*B)
        return summed.view(r, c, *size, b)
    hp, wp = window.padded(size)
    taps = columns.view(r, c, kh * kw, *out, b).unbind(2)  # kh*kw of (R, C, Ho, Wo, B)
    summed = columns.new_zeros(r, c, hp, wp, b)  # (R, C, Hp, Wp, B)
    s_r, s_c, s_h, s_w, s_b = summed.stride()
    strides = (s_r, s_c, sh * s_h, sw * s_w, s_b)
    for tap, block in enumerate(taps):
        i, j = divmod(tap, kw)
        summed.as_strided(block.shape, strides, i * dh * s_h + j * dw * s_w).add_(block)
    return summed[:, :, ph : ph + size[0], pw : pw + size[1]] if ph or pw else summed


# ---------------------------------------------------------------- convolution
def conv_forward(columns: Tensor, weight: Tensor, bias: Tensor, out: Pair, ws: Workspace) -> Tensor:
    """A convolution from its input's columns (R, C*kh*kw, Ho*Wo*B) -> (R, O, Ho, Wo, B).

    Columns (1, C*kh*kw, Ho*Wo*B) are every member's (`shared`): the members' weights then
    stack into one matrix, and the convolution is one matmul (R*O, C*kh*kw) @ columns.
    """
    r, o, _ = weight.shape
    z = ws.get("z", columns, r, o, columns.shape[2])
    if shared(columns, r):  # (R*O, Ho*Wo*B) = W @ columns + b
        flat = None if z is None else z.view(r * o, -1)
        z = torch.addmm(bias.reshape(r * o, 1), weight.reshape(r * o, -1), columns[0], out=flat)
    else:  # (R, O, Ho*Wo*B) = W @ columns + b
        z = torch.baddbmm(bias, weight, columns, out=z)
    return z.view(r, o, *out, -1)


def conv_weight_backward(dz: Tensor, columns: Tensor, grads: tuple[Tensor, Tensor]) -> Tensor:
    """The gradients of z = W @ columns + b for W and b, given dL/dz (R, O, Ho, Wo, B).

        dW = dz @ columns^T      (R, O, L*B) @ (R, L*B, C*kh*kw) -> (R, O, C*kh*kw)
        db = dz summed           (R, O, L*B) -> (R, O, 1)

    Each weight met every column once, on the pixel of its tap: its gradient sums those pixels
    times dz over output positions (L = Ho*Wo) and images. Written into `grads`, views of the
    gradient buffer; returns dz as (R, O, L*B).
    """
    r, o = dz.shape[:2]
    dz = dz.reshape(r, o, -1)  # (R, O, L*B), a view unless dz was cropped out of padding
    if shared(columns, r):  # one matmul for all members: (R*O, L*B) @ (L*B, C*kh*kw)
        grads[0].copy_(torch.mm(dz.view(r * o, -1), columns[0].T).view(r, o, -1))
    else:
        bmm_into(grads[0], dz, columns.transpose(1, 2))  # (R, O, C*kh*kw)
    torch.sum(dz, dim=2, keepdim=True, out=grads[1])  # (R, O, 1)
    return dz


def conv_input_backward(
    dz: Tensor, weight: Tensor, window: Window, size: Pair, out: Pair, ws: Workspace
) -> Tensor:
    """The gradient for the input (R, C, H, W, B) of z = W @ columns + b, from dz (R, O, L*B).

    Each input pixel fed every window covering it: its gradient sums what those windows send
    back:

        dcolumns = W^T @ dz       (R, C*kh*kw, O) @ (R, O, L*B) -> (R, C*kh*kw, L*B)
        dx = fold(dcolumns)       (R, C*kh*kw, L*B) -> (R, C, H, W, B)

    For a large step with stride 1 that sum is itself a convolution, of dz padded by the
    kernel's reach with the kernel flipped and its in and out channels swapped (a transposed
    convolution), which writes and reads fewer numbers (the notebook's conv2: 2.5x fewer; its
    matmul above is a column times a row, O=1):

        dx = Wflip @ unfold(dz)   (R, C, O*kh*kw) @ (R, O*kh*kw, Hp*Wp*B) -> (R, C, Hp, Wp, B)
    """
    (kh, kw), (ph, pw), (dh, dw) = window.kernel, window.padding, window.dilation
    r, o, _ = weight.shape
    c = weight.shape[2] // (kh * kw)
    (hp, wp), b = window.padded(size), dz.shape[2] // (out[0] * out[1])
    if window.stride != (1, 1) or r * c * hp * wp * b < LARGE:
        d_columns = torch.bmm(weight.transpose(1, 2), dz)  # (R, C*kh*kw, L*B)
        return fold(d_columns, window, c, size, out)  # (R, C, H, W, B)
    reach = Window(window.kernel, (1, 1), ((kh - 1) * dh, (kw - 1) * dw), window.dilation)
    columns = unfold(dz.view(r, o, *out, b), reach, (hp, wp), ws, "d_columns")
    flipped = weight.view(r, o, c, kh, kw).flip(3, 4).transpose(1, 2)  # (R, C, O, kh, kw)
    dx = torch.bmm(flipped.reshape(r, c, -1), columns, out=ws.take("dx", dz, r, c, hp * wp * b))
    dx = dx.view(r, c, hp, wp, b)  # (R, C, Hp*Wp*B) = Wflip @ columns
    return dx[:, :, ph : ph + size[0], pw : pw + size[1]] if ph or pw else dx


# ---------------------------------------------------------------- ReLU, then max-pooling
_relu_backward = torch.ops.aten.threshold_backward.grad_input  # out= (in place) form


class PoolTape(NamedTuple):
    """What max-pooling's backward needs: where each window's maximum was, and ReLU's output."""

    pooled: Tensor  # (R, C, Ho, Wo, B), relu(max): zero where ReLU blocks the gradient
    index: Tensor | None  # small: the maximum's pixel in its plane, (R*C, Ho*Wo, B)
    across: list[Tensor]  # large: the width pass's gates, one per tap after the first
    down: list[Tensor]  # and the height pass's, (R*C, Hp, Wo, B) and (R*C, Ho, Wo, B)


def pool_forward(
    z: Tensor, window: Window, out: Pair, keep: bool, ws: Workspace
) -> tuple[Tensor, PoolTape]:
    """ReLU then max-pooling, (R, C, H, W, B) -> (R, C, Ho, Wo, B): relu(max) = max(relu).

    ReLU is applied after pooling, on the smaller output: max commutes with it. A window whose
    maximum is not positive has a zero output and sends no gradient (ReLU's mask), whichever
    pixel held its maximum. Where each maximum was is kept for the backward (`keep`):

    - small: torch's max_pool2d_with_indices on the R*C planes, with B "channels" stored
      channels-last (its vectorised kernel), and its index;
    - large: two passes of a running maximum over shifted views of whole tensors, kw taps
      across then kh down (a window's maximum is the maximum of its rows' maxima), one
      `torch.maximum` per tap, and float gates: gate t is 1 where tap t beat every tap before
      it, strictly. torch's kernel visits a window's pixels one by one for every output: at
      R=256 it pooled conv1's output in 2.5 ms, these passes in 0.3 ms.

    Both give a tie to the first maximum in torch's scan order (rows, then columns), as autograd
    does. Padding is zeros for the passes, rather than -inf: a zero holds a window's maximum
    only when nothing in it is positive, where ReLU sends nothing back anyway.
    """
    r, c, h, w, b = z.shape
    # The passes win from a quarter of `LARGE` on: at 8192 numbers rather than 32768 the
    # 20-trial sweep's populations (R=9 of 8x4, R=11 of 4x4) stepped 1.11-1.21x faster, nothing
    # measured slower (benchmarks/README.md, Step: the route of max-pooling).
    if z.numel() < LARGE // 4:
        planes = z.view(r * c, h, w, b).permute(0, 3, 1, 2)  # (R*C, B, H, W), channels-last
        y, index = F.max_pool2d_with_indices(
            planes, window.kernel, window.stride, window.padding, window.dilation
        )  # (R*C, B, Ho, Wo) each, channels-last
        pooled = y.permute(0, 2, 3, 1).relu_().view(r, c, *out, b)  # (R, C, Ho, Wo, B)
        index = index.permute(0, 2, 3, 1).view(r * c, -1, b)  # (R*C, Ho*Wo, B)
        return pooled, PoolTape(pooled, index, [], [])
    (kh, kw), (sh, sw), (dh, dw) = window.kernel, window.stride, window.dilation
    z = pad(z, window.padding, ws, "padded")  # (R, C, Hp, Wp, B)
    hp, wp = z.shape[2:4]
    across: list[Tensor] = []
    down: list[Tensor] = []
    x = z.view(r * c, hp, wp, b)
    rows = _max_along(x, 2, kw, sw, dw, out[1], ws, "across", across if keep else None)
    y = _max_along(rows, 1, kh, sh, dh, out[0], ws, "down", down if keep else None)
    if not y.is_contiguous():  # a 1x1 window's strided view of its input
        y = ws.take("pooled", y, *y.shape).copy_(y)
    pooled = y.relu_().view(r, c, *out, b)  # (R, C, Ho, Wo, B)
    return pooled, PoolTape(pooled, None, across, down)


def pool_backward(dy: Tensor, tape: PoolTape, window: Window, size: Pair, ws: Workspace) -> Tensor:
    """ReLU and max-pooling's backward: dL/dpooled (R, C, Ho, Wo, B) -> dL/dz (R, C, H, W, B).

    ReLU passes the gradient where its output is positive (sign(pooled): 1 there, 0 at 0,
    torch's choice at the kink); each window then sends it to the pixel that held its
    maximum: at torch's index (a scatter), or undoing the height pass, then the width pass.
    A pixel that was the maximum of several overlapping windows receives their sum.
    """
    r, c, ho, wo, b = dy.shape
    n = r * c
    if tape.index is not None:  # small: two quick operations
        dy = dy.mul_(torch.sign(tape.pooled))  # the caller's buffer
    else:  # large: one pass, as autograd's ReLU backward (gradient where the output is > 0)
        dy = _relu_backward(dy, tape.pooled, 0, grad_input=dy)
    if tape.index is not None:
        dz = dy.new_zeros(n, size[0] * size[1], b)  # (R*C, H*W, B)
        dz.scatter_add_(1, tape.index, dy.reshape(n, -1, b))
        return dz.view(r, c, *size, b)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        window.kernel, window.stride, window.padding, window.dilation
    )  # fmt: skip
    hp, wp = window.padded(size)
    dy = dy.reshape(n, ho, wo, b)
    d_rows = _spread_along(dy, tape.down, (n, hp, wo, b), 1, kh, sh, dh, ws, "down")
    dz = _spread_along(d_rows, tape.across, (n, hp, wp, b), 2, kw, sw, dw, ws, "across")
    dz = dz.view(r, c, hp, wp, b)  # (R, C, Hp, Wp, B)
    return dz[:, :, ph : ph + size[0], pw : pw + size[1]] if ph or pw else dz


def _taps(x: Tensor, axis: int, k: int, stride: int, dilation: int, n: int) -> list[Tensor]:
    """The k shifted views of x along `axis` that a 1-d window reads: tap t of output o is
    element o*stride + t*dilation; each view has n elements along `axis`."""
    shape, strides, offset = list(x.shape), list(x.stride()), x.storage_offset()
    step = strides[axis]
    shape[axis], strides[axis] = n, stride * step
    return [x.as_strided(shape, strides, offset + t * dilation * step) for t in range(k)]


def _max_along(
    x: Tensor, axis: int, k: int, stride: int, dilation: int, n: int, ws: Workspace, name: str,
    gates: list[Tensor] | None,
) -> Tensor:  # fmt: skip
    """A 1-d max-pooling of x along `axis`; appends to `gates` (if given) for each tap t > 0 a
    float mask, 1 where tap t is larger than every tap before it."""
    taps = _taps(x, axis, k, stride, dilation, n)
    if k == 1:
        return taps[0]  # a view: nothing to compare
    y = torch.maximum(taps[0], taps[1], out=ws.take(name, x, *taps[0].shape))
    for t in range(1, k):
        if gates is not None:  # against the maximum so far: taps[0], then y
            ahead = taps[0] if t == 1 else y
            gates.append(torch.gt(taps[t], ahead, out=ws.take(f"{name}.gate{t}", x, *y.shape)))
        if t > 1:
            torch.maximum(y, taps[t], out=y)
    return y


def _spread_along(
    dy: Tensor, gates: list[Tensor], shape: tuple[int, ...], axis: int, k: int, stride: int,
    dilation: int, ws: Workspace, name: str,
) -> Tensor:  # fmt: skip
    """The backward of `_max_along`: each output's gradient to the tap that held its maximum.

    The last tap whose gate is 1 held it. Going backwards from the last tap, what is left for
    taps t, t-1, ..., 0 is rest_t (rest_{k-1} = dy); tap t takes rest_t * gate_t and leaves
    rest_{t-1} = rest_t * (1 - gate_t); tap 0 takes rest_0. Each is one `addcmul` (exact: the
    gates are 0 or 1). The gradient (shape of x) is written tap by tap: with stride 1 tap 0
    covers all but the last (k-1)*dilation elements, so it is written first (no zero fill) and
    the others are added onto it.
    """
    n = dy.shape[axis]
    if k == 1 and stride == 1 and shape[axis] == n:
        return dy
    dx = ws.take(f"d_{name}", dy, *shape)
    taps = _taps(dx, axis, k, stride, dilation, n)
    covering = stride == 1 and k > 1
    if not covering:
        dx.zero_()
    rests = [dy]  # rest_{k-1}, rest_{k-2}, ..., rest_0
    for t in range(k - 1, 0, -1):
        out = taps[0] if t == 1 and covering else ws.take(f"d_{name}.rest{t - 1}", dy, *dy.shape)
        rests.append(torch.addcmul(rests[-1], rests[-1], gates[t - 1], value=-1, out=out))
    if covering:
        dx.narrow(axis, n, shape[axis] - n).zero_()  # the last (k-1)*dilation: no tap 0 there
    else:
        taps[0].add_(rests[-1])
    for t in range(k - 1, 0, -1):
        taps[t].addcmul_(rests[k - 1 - t], gates[t - 1])  # rest_t * gate_t
    return dx


# ---------------------------------------------------------------- the loss
def cross_entropy(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy per member (R,) and its gradient (R, K, B), in closed form.

    loss = mean_b(logsumexp(z_b) - z_b[y_b]), so dloss/dz_b = (softmax(z_b) - onehot(y_b)) / B,
    computed as autograd does: softmax * (1/B), then -1/B added at the true class.
    """
    b = logits.shape[2]
    target = y.unsqueeze(1)  # (R, 1, B)
    log_p = torch.log_softmax(logits, dim=1)  # (R, K, B)
    loss = log_p.gather(1, target).mean(dim=(1, 2)).neg_()  # (R,)
    d_logits = log_p.exp_().mul_(1 / b)  # (R, K, B): softmax / B, in log_p's buffer
    d_logits.scatter_(1, target, -1 / b, reduce="add")  # (R, K, B): minus onehot / B
    return loss, d_logits
