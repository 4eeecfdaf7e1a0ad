"""The training step of the lines CNN written out by hand: forward, backward and update.

    python benchmarks/bench_train.py --part steps    # this step against autograd's, side by side

Why by hand: a step of the notebook's model is well under 1 MFLOP, yet autograd spends about
115 µs recording the graph, 155 µs walking it back and 80 µs in `Optimizer.step` around the
arithmetic (benchmarks/README.md). Here each layer's forward keeps what its backward needs, the
backward is a few matmuls and scatters in reverse order, and the update is torch's fused kernel
over one flat parameter buffer: no graph, no hooks, no per-tensor loop. `tests/test_step.py`
checks every gradient against autograd's.

The whole step, for R members, batch B, L = Ho*Wo output pixels of a layer, K classes:

    forward                                   backward, in reverse
    cols1 = unfold(x)       (R, C0*k*k, L1*B)
    z1 = W1 @ cols1 + b1    (R, C1, H1, W1, B)   dW1 = dz1 @ cols1^T, db1 = sum dz1
    a1 = relu(z1)                                dz1 = da1 * sign(a1)
    p1, i1 = maxpool(a1)    (R, C1, P1h, P1w, B) da1 = scatter dp1 to the maxima i1
    cols2 = unfold(p1)      (R, C1*k*k, L2*B)    dp1 = fold(W2^T @ dz2)
    z2 = W2 @ cols2 + b2    (R, C2, H2, W2, B)   dW2 = dz2 @ cols2^T, db2 = sum dz2
    a2 = relu(z2)                                dz2 = da2 * sign(a2)
    p2, i2 = maxpool(a2)    (R, C2, P2h, P2w, B) da2 = scatter df to the maxima i2
    f = flatten(p2)         (R, F, B)            df = Wfc^T @ dlogits
    logits = Wfc @ f + bfc  (R, K, B)            dWfc = dlogits @ f^T, dbfc = sum dlogits
    loss = cross-entropy    (R,)                 dlogits = (softmax - onehot) / B

A population from the start: every parameter carries a leading member dimension R (R = 1 for a
single run), members may see different batches (x: (R, B, C0, H, W), y: (R, B)), and the
update keeps its state and learning rate per member. All parameters live in one buffer (R, P);
each layer's weight is a view of it in torch's layout, so member r's row loads into a LinesCNN.

Activations are laid out (R, C, H, W, B), the images innermost. A convolution is then one
matmul per member, weights (R, O, C*kh*kw) times columns (R, C*kh*kw, Ho*Wo*B), and its output
is already in that layout; max-pooling sees R*C planes of B "channels" stored channels-last,
torch's vectorised kernel (2-4x faster here than its plain one); the linear layer's input is a
view, (R, C*H*W, B) in torch's flatten order. conv1's columns depend on the images alone, so
an epoch's are unfolded at once (`HandStep.epoch`), and members that see the same images
(replicates of an unshuffled experiment; every member's validation on a shared split) share
one set of them: conv1 is then one matmul (R*C1, C0*k*k) @ columns for all members, forward
and weight gradient alike (`shared`).

Measured and not taken: the members innermost beside the images, (C, H, W, R, B), so that
max-pooling sees C planes of R*B channels. Pooling itself got 3.4x faster at R=8 (17 µs against
58), yet the whole step got slower (R=1 by 24%, R=8 by 10%, A/B in one process): unfold, fold
and the ReLU then copy runs of B floats where they now copy runs of Wo*B.

Unfold + one bmm per member, or grouped conv2d? One convolution's forward (2 -> 3 channels,
9x9, batch 10, one thread), `python benchmarks/bench_train.py --part conv`: R=1, 9.8 µs against
9.9 µs for conv2d; R=8, 19 µs against 90 µs for conv2d with groups=8. Unfold + bmm, then: as
fast for one member, five times faster for eight, and the backward needs the columns anyway
(the weight's gradient is a product with them), so the forward builds them once for both.

Why one module of ~650 lines: the forward and backward passes of each layer read best side by
side (each backward undoes its forward), as nanoGPT keeps its model in one file; splitting the
layers from the update would scatter one lesson over several files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linesweep.core.errors import InfeasibleArchitecture
from linesweep.run.config import AdamConfig, OptimizerConfig, SGDConfig
from linesweep.run.model import LinesCNN
from linesweep.run.shapes import conv_output_shape, window_sees_only_padding

Pair = tuple[int, int]


class Unsupported(Exception):
    """The model or optimizer is outside what the hand-written step reproduces; says why."""


# ---------------------------------------------------------------- the architecture of a model
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

    def unpadded(self) -> Window:
        return Window(self.kernel, self.stride, (0, 0), self.dilation)

    def sees_only_padding(self, size: Pair) -> bool:
        """Whether some window on a `size` input covers no pixel, only padding (per axis)."""
        return window_sees_only_padding(size, self.kernel, self.stride, self.padding, self.dilation)


FAMILY = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Linear)


@dataclass(frozen=True)
class Sizes:
    """The spatial size after each layer for one input size."""

    conv1: Pair  # (H1, W1)
    pool1: Pair  # (P1h, P1w), conv2's input
    conv2: Pair  # (H2, W2)
    pool2: Pair  # (P2h, P2w)


@dataclass(frozen=True)
class Architecture:
    """What the step needs to know about a model of the family, read off its layers."""

    conv1: Window
    pool1: Window
    conv2: Window
    pool2: Window
    names: tuple[str, ...]  # parameter names, in the flat buffer's order
    shapes: tuple[torch.Size, ...]  # their shapes, torch's layout

    @classmethod
    def of(cls, model: nn.Module) -> Architecture:
        """The architecture of `model`, or Unsupported naming the first thing outside the family."""
        layers = list(model.named_children())
        kinds = tuple(type(layer) for _, layer in layers)
        if type(model) not in (LinesCNN, nn.Sequential) or kinds != FAMILY:
            found = ", ".join(type(layer).__name__ for _, layer in layers)
            raise Unsupported(
                f"{type(model).__name__} ({found}) is not conv, ReLU, max-pool twice then linear"
            )
        for name, layer in layers:
            _check_layer(name, layer)
        named = list(model.named_parameters())
        frozen = [name for name, p in named if not p.requires_grad]
        if frozen:
            raise Unsupported(f"parameters {', '.join(frozen)} are frozen")
        conv1, _, pool1, conv2, _, pool2, _, _ = (layer for _, layer in layers)
        return cls(
            conv1=Window.of(conv1),
            pool1=Window.of(pool1),
            conv2=Window.of(conv2),
            pool2=Window.of(pool2),
            names=tuple(name for name, _ in named),
            shapes=tuple(p.shape for _, p in named),
        )

    def sizes(self, image: Pair) -> Sizes:
        """Every layer's output size for images of size `image` (the shape plan's arithmetic).

        A max-pooling window that would see only padding is InfeasibleArchitecture: torch's
        max_pool2d returns -inf there with an index outside the plane, and its own backward
        then writes out of bounds.
        """
        conv1 = self.conv1.output_size(image)
        pool1 = self.pool1.output_size(conv1)
        conv2 = self.conv2.output_size(pool1)
        pool2 = self.pool2.output_size(conv2)
        for name, window, size in (("pool1", self.pool1, conv1), ("pool2", self.pool2, conv2)):
            if window.sees_only_padding(size):
                raise InfeasibleArchitecture(
                    name,
                    f"a window sees only padding on its {size[0]}x{size[1]} input",
                    f"lower model.{name}.padding or model.{name}.dilation",
                )
        return Sizes(conv1, pool1, conv2, pool2)


def _check_layer(name: str, layer: nn.Module) -> None:
    problem = None
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            problem = f"groups={layer.groups}, padding={layer.padding!r} ({layer.padding_mode})"
        elif layer.bias is None:
            problem = "no bias"
    elif isinstance(layer, nn.MaxPool2d) and (layer.return_indices or layer.ceil_mode):
        problem = "return_indices or ceil_mode"
    elif isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
        problem = f"flattens dimensions {layer.start_dim}..{layer.end_dim}"
    elif isinstance(layer, nn.Linear) and layer.bias is None:
        problem = "no bias"
    if problem:
        raise Unsupported(f"layer {name} ({type(layer).__name__}): {problem}")


# ---------------------------------------------------------------- the flat parameter buffer
def stack_parameters(models: Iterable[nn.Module]) -> Tensor:
    """One row per model, every parameter flattened in `named_parameters` order: (R, P)."""
    rows = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]  # [(P,)]
    return torch.stack(rows)  # (R, P)


def parameter_views(arch: Architecture, flat: Tensor) -> dict[str, Tensor]:
    """Each parameter as a view of a (R, P) buffer, member first: (R, *torch's shape)."""
    views, start = {}, 0
    for name, shape in zip(arch.names, arch.shapes, strict=True):
        size = math.prod(shape)
        views[name] = flat[:, start : start + size].view(len(flat), *shape)  # (R, *shape)
        start += size
    return views


def bind_parameters(model: nn.Module, row: Tensor, grad_row: Tensor | None = None) -> None:
    """Make `model`'s parameters (and gradients) views of one member's row (P,) of a buffer.

    The model then shows the weights as they train: its state_dict, plots and `model.pt` need
    no copy back.
    """
    start = 0
    for p in model.parameters():
        size = p.numel()
        p.data = row[start : start + size].view_as(p)
        if grad_row is not None:
            p.grad = grad_row[start : start + size].view_as(p)  # backward accumulates in place
        start += size


@dataclass(frozen=True)
class Matrices:
    """The parameters (or their gradients) of a (R, P) buffer shaped as the step uses them."""

    conv1_w: Tensor  # (R, C1, C0*k1*k1)
    conv1_b: Tensor  # (R, C1, 1)
    conv2_w: Tensor  # (R, C2, C1*k2*k2)
    conv2_b: Tensor  # (R, C2, 1)
    fc_w: Tensor  # (R, K, F)
    fc_b: Tensor  # (R, K, 1)

    @cached_property
    def conv2_wt(self) -> Tensor:  # (R, C1*k2*k2, C2), for the backward
        return self.conv2_w.transpose(1, 2)

    @cached_property
    def fc_wt(self) -> Tensor:  # (R, F, K), for the backward
        return self.fc_w.transpose(1, 2)

    @classmethod
    def of(cls, arch: Architecture, flat: Tensor) -> Matrices:
        views = [v.reshape(len(flat), v.shape[1], -1) for v in parameter_views(arch, flat).values()]
        return cls(*views)  # weights (R, O, fan-in), biases (R, O, 1): all views of `flat`


# ---------------------------------------------------------------- the layers, forward and backward
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


def unfold(x: Tensor, window: Window, out: Pair) -> Tensor:
    """im2col: (R, C, H, W, B) -> columns (R, C*kh*kw, Ho*Wo*B), one column per output pixel.

    Column (y, x, b) holds the C*kh*kw input pixels under the window at output pixel (y, x) of
    image b, so a convolution is one matmul with the weights (R, O, C*kh*kw). The windows are a
    strided view of the (padded) input, tap (i, j) of output (y, x) being pixel
    (y*sh + i*dh, x*sw + j*dw); the reshape copies them out once.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        window.kernel, window.stride, window.padding, window.dilation
    )  # fmt: skip
    if ph or pw:
        x = F.pad(x, (0, 0, pw, pw, ph, ph))  # (R, C, H+2ph, W+2pw, B), zeros around
    r, c, _, _, b = x.shape
    s_r, s_c, s_h, s_w, s_b = x.stride()
    taps = x.as_strided(
        (r, c, kh, kw, *out, b), (s_r, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w, s_b)
    )  # (R, C, kh, kw, Ho, Wo, B)
    return taps.reshape(r, c * kh * kw, -1)  # (R, C*kh*kw, Ho*Wo*B), a copy


def fold(columns: Tensor, window: Window, c: int, size: Pair, out: Pair) -> Tensor:
    """col2im, the adjoint of `unfold`: (R, C*kh*kw, Ho*Wo*B) -> (R, C, H, W, B).

    Each entry of a column is added back onto the pixel it was read from, so a pixel under
    several windows receives the sum: tap (i, j) of every window, a (R, C, Ho, Wo, B) block of
    the columns, is added onto the strided view of the input that `unfold` read it from.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        window.kernel, window.stride, window.padding, window.dilation
    )  # fmt: skip
    r, (hp, wp) = columns.shape[0], window.padded(size)
    taps = columns.view(r, c, kh * kw, *out, -1).unbind(2)  # kh*kw of (R, C, Ho, Wo, B)
    summed = columns.new_zeros(r, c, hp, wp, taps[0].shape[-1])  # (R, C, Hp, Wp, B)
    s_r, s_c, s_h, s_w, s_b = summed.stride()
    strides = (s_r, s_c, sh * s_h, sw * s_w, s_b)
    for tap, block in enumerate(taps):
        i, j = divmod(tap, kw)
        summed.as_strided(block.shape, strides, i * dh * s_h + j * dw * s_w).add_(block)
    return summed[:, :, ph : ph + size[0], pw : pw + size[1]] if ph or pw else summed


def conv_forward(columns: Tensor, weight: Tensor, bias: Tensor, out: Pair) -> Tensor:
    """A convolution from its input's columns (R, C*kh*kw, Ho*Wo*B) -> (R, O, Ho, Wo, B).

    Columns (1, C*kh*kw, Ho*Wo*B) are every member's (`shared`): the members' weights then
    stack into one matrix, and the convolution is one matmul (R*O, C*kh*kw) @ columns.
    """
    r, o, _ = weight.shape
    if shared(columns, r):
        z = torch.addmm(bias.reshape(r * o, 1), weight.reshape(r * o, -1), columns[0])
        return z.view(r, o, *out, -1)  # (R*O, Ho*Wo*B) = W @ columns + b
    z = torch.baddbmm(bias, weight, columns)  # (R, O, Ho*Wo*B) = W @ columns + b
    return z.view(r, o, *out, -1)


def shared(columns: Tensor, members: int) -> bool:
    """Whether `members` (more than one) share one set of columns (1, C*kh*kw, L*B).

    Members that train on the same images in the same order (replicates of an unshuffled
    experiment) and every member's validation on one split see the same conv1 columns: they
    are unfolded once, not once per member (`image_columns`).
    """
    return members > 1 and columns.shape[0] == 1


def conv_weight_backward(dz: Tensor, columns: Tensor, grads: tuple[Tensor, Tensor]) -> Tensor:
    """The gradients of z = W @ columns + b for W and b, given dL/dz (R, O, Ho, Wo, B).

        dW = dz @ columns^T      (R, O, L*B) @ (R, L*B, C*kh*kw) -> (R, O, C*kh*kw)
        db = dz summed           (R, O, L*B) -> (R, O, 1)

    Each weight met every column once, on the pixel of its tap: its gradient sums those pixels
    times dz over output positions (L = Ho*Wo) and images. Written into `grads`, views of the
    gradient buffer; returns dz as (R, O, L*B).
    """
    r, o = dz.shape[:2]
    dz = dz.view(r, o, -1)  # (R, O, L*B)
    if shared(columns, r):  # one matmul for all members: (R*O, L*B) @ (L*B, C*kh*kw)
        grads[0].copy_(torch.mm(dz.view(r * o, -1), columns[0].T).view(r, o, -1))
    else:
        bmm_into(grads[0], dz, columns.transpose(1, 2))  # (R, O, C*kh*kw)
    torch.sum(dz, dim=2, keepdim=True, out=grads[1])  # (R, O, 1)
    return dz


def conv_input_backward(
    dz: Tensor, weight_t: Tensor, window: Window, size: Pair, out: Pair
) -> Tensor:
    """The gradient for the input of z = W @ columns + b, from dz (R, O, L*B).

        dcolumns = W^T @ dz      (R, C*kh*kw, O) @ (R, O, L*B) -> (R, C*kh*kw, L*B)
        dx = fold(dcolumns)      (R, C*kh*kw, L*B) -> (R, C, H, W, B)

    Each input pixel fed every window covering it: its gradient sums what those windows send
    back, which is `fold`.
    """
    d_columns = torch.bmm(weight_t, dz)  # (R, C*kh*kw, L*B)
    c = weight_t.shape[1] // (window.kernel[0] * window.kernel[1])
    return fold(d_columns, window, c, size, out)  # (R, C, H, W, B)


def pool_forward(x: Tensor, window: Window, out: Pair) -> tuple[Tensor, Tensor]:
    """Max-pooling (R, C, H, W, B) -> (R, C, Ho, Wo, B), and where each output's max was.

    The index (R*C, Ho*Wo, B) counts pixels within an H*W plane, as torch's max_pool2d does.
    """
    r, c, h, w, b = x.shape
    planes = x.view(r * c, h, w, b).permute(0, 3, 1, 2)  # (R*C, B, H, W), channels-last
    y, index = F.max_pool2d_with_indices(
        planes, window.kernel, window.stride, window.padding, window.dilation
    )  # (R*C, B, Ho, Wo) each, channels-last
    y = y.permute(0, 2, 3, 1).reshape(r, c, *out, b)  # (R, C, Ho, Wo, B)
    return y, index.permute(0, 2, 3, 1).reshape(r * c, -1, b)  # (R*C, Ho*Wo, B)


def pool_backward(dy: Tensor, index: Tensor, input_shape: torch.Size) -> Tensor:
    """Max-pooling's backward: (R, C, Ho, Wo, B) -> (R, C, H, W, B).

    An output was one input pixel, its window's max, so its gradient goes to that pixel and the
    rest of the window gets none. The forward's `index` names the pixel; a pixel that was the
    max of several overlapping windows receives their sum:

        dx = 0                                        (R*C, H*W, B)
        dx[plane, index[plane, o, b], b] += dy[plane, o, b]     for every output o    (scatter)
    """
    r, c, h, w, b = input_shape
    dx = dy.new_zeros(r * c, h * w, b)  # (R*C, H*W, B)
    dx.scatter_add_(1, index, dy.reshape(r * c, -1, b))  # (R*C, H*W, B)
    return dx.view(input_shape)


def relu_backward(dy: Tensor, y: Tensor) -> Tensor:
    """ReLU passes the gradient where its output y is positive and blocks it elsewhere.

    As y >= 0, its derivative is sign(y): 1 where y > 0, 0 where y = 0 (torch's choice at the
    kink). A float mask: multiplying by a boolean one costs three times as much here.
    """
    return dy.mul_(torch.sign(y))  # same shape as y; dy is the caller's own buffer


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


class Tape(NamedTuple):
    """What the forward keeps for the backward (a tuple: built on every step, it must be cheap)."""

    columns1: Tensor  # (R, C0*k*k, H1*W1*B)
    relu1: Tensor  # (R, C1, H1, W1, B)
    index1: Tensor  # (R*C1, P1h*P1w, B)
    columns2: Tensor  # (R, C1*k*k, H2*W2*B)
    relu2: Tensor  # (R, C2, H2, W2, B)
    index2: Tensor  # (R*C2, P2h*P2w, B)
    features: Tensor  # (R, F, B), F = C2*P2h*P2w in torch's flatten order


def image_columns(arch: Architecture, sizes: Sizes, x: Tensor) -> Tensor:
    """conv1's columns for images (R, B, C0, H, W): (R, C0*k*k, H1*W1*B), or (1, ...) `shared`
    by every member when the members' images are one batch expanded (stride 0 over members).

    They depend on the images alone, so a whole epoch's can be unfolded at once (`HandStep.epoch`).
    """
    if x.shape[0] > 1 and x.stride(0) == 0:
        x = x[:1]  # (1, B, C0, H, W): one unfold serves every member
    x = x.permute(0, 2, 3, 4, 1)  # (R, C0, H, W, B), a view: the images innermost from here on
    return unfold(x, arch.conv1, sizes.conv1)  # (R, C0*k*k, H1*W1*B)


def forward(arch: Architecture, sizes: Sizes, m: Matrices, columns1: Tensor) -> tuple[Tensor, Tape]:
    """Logits (R, K, B) from conv1's columns (R, C0*k*k, H1*W1*B), and the tape for `backward`."""
    z1 = conv_forward(columns1, m.conv1_w, m.conv1_b, sizes.conv1)  # (R, C1, H1, W1, B)
    a1 = torch.relu(z1)  # (R, C1, H1, W1, B)
    p1, index1 = pool_forward(a1, arch.pool1, sizes.pool1)  # (R, C1, P1h, P1w, B)
    columns2 = unfold(p1, arch.conv2, sizes.conv2)  # (R, C1*k*k, H2*W2*B)
    z2 = conv_forward(columns2, m.conv2_w, m.conv2_b, sizes.conv2)  # (R, C2, H2, W2, B)
    a2 = torch.relu(z2)  # (R, C2, H2, W2, B)
    p2, index2 = pool_forward(a2, arch.pool2, sizes.pool2)  # (R, C2, P2h, P2w, B)
    features = p2.view(p2.shape[0], -1, p2.shape[4])  # (R, C2*P2h*P2w, B): torch's flatten
    logits = torch.baddbmm(m.fc_b, m.fc_w, features)  # (R, K, B) = W @ features + b
    return logits, Tape(columns1, a1, index1, columns2, a2, index2, features)


def backward(
    arch: Architecture, sizes: Sizes, m: Matrices, g: Matrices, tape: Tape, d_logits: Tensor
) -> None:
    """Every parameter's gradient, from dL/dlogits (R, K, B), written into `g`."""
    bmm_into(g.fc_w, d_logits, tape.features.transpose(1, 2))  # (R, K, F)
    torch.sum(d_logits, dim=2, keepdim=True, out=g.fc_b)  # (R, K, 1)
    d_features = torch.bmm(m.fc_wt, d_logits)  # (R, F, B)
    d_a2 = pool_backward(d_features, tape.index2, tape.relu2.shape)  # (R, C2, H2, W2, B)
    d_z2 = relu_backward(d_a2, tape.relu2)  # (R, C2, H2, W2, B)
    d_z2 = conv_weight_backward(d_z2, tape.columns2, (g.conv2_w, g.conv2_b))  # (R, C2, H2*W2*B)
    d_p1 = conv_input_backward(d_z2, m.conv2_wt, arch.conv2, sizes.pool1, sizes.conv2)
    d_a1 = pool_backward(d_p1, tape.index1, tape.relu1.shape)  # (R, C1, H1, W1, B)
    d_z1 = relu_backward(d_a1, tape.relu1)  # (R, C1, H1, W1, B)
    conv_weight_backward(d_z1, tape.columns1, (g.conv1_w, g.conv1_b))


# ---------------------------------------------------------------- the update
@dataclass(frozen=True)
class UpdateRule:
    """An optimizer the step reproduces with torch's arithmetic: Adam, AdamW, or SGD."""

    kind: str  # adam, adamw or sgd
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    @classmethod
    def of_config(cls, cfg: OptimizerConfig) -> UpdateRule:
        """From the run's optimizer config, without building (or importing) torch.optim."""
        kind = _KINDS.get(cfg._target_)
        if isinstance(cfg, AdamConfig) and kind in ("adam", "adamw"):
            if cfg.amsgrad:
                raise Unsupported(f"{cfg._target_} with amsgrad=True")
            betas = (float(cfg.betas[0]), float(cfg.betas[1]))
            return cls(kind, cfg.lr, cfg.weight_decay, betas, cfg.eps)
        if isinstance(cfg, SGDConfig) and kind == "sgd":
            return cls(kind, cfg.lr, cfg.weight_decay, momentum=cfg.momentum,
                       dampening=cfg.dampening, nesterov=cfg.nesterov)  # fmt: skip
        raise Unsupported(f"optimizer {cfg._target_} has no hand-written update")

    @classmethod
    def of_optimizer(cls, optimizer: torch.optim.Optimizer) -> UpdateRule:
        """From a built torch optimizer with one parameter group: its class and hyperparameters."""
        name = type(optimizer).__name__
        kind = _KINDS.get(f"{type(optimizer).__module__.rsplit('.', 1)[0]}.{name}")
        if kind is None or len(optimizer.param_groups) != 1:
            raise Unsupported(f"optimizer {name} has no hand-written update")
        group = optimizer.param_groups[0]
        for flag in ("amsgrad", "maximize", "differentiable"):
            if group.get(flag):
                raise Unsupported(f"{name} with {flag}=True")
        if any(isinstance(group[key], Tensor) for key in ("lr", "weight_decay")):
            raise Unsupported(f"{name} with a tensor learning rate or weight decay")
        if kind == "sgd":
            return cls(kind, group["lr"], group["weight_decay"], momentum=group["momentum"],
                       dampening=group["dampening"], nesterov=group["nesterov"])  # fmt: skip
        betas = (float(group["betas"][0]), float(group["betas"][1]))
        return cls(kind, group["lr"], group["weight_decay"], betas, group["eps"])


_KINDS = {"torch.optim.Adam": "adam", "torch.optim.AdamW": "adamw", "torch.optim.SGD": "sgd"}


class FusedUpdate:
    """An optimizer's update of a (R, P) buffer with torch's fused kernel, one pass per call.

    This is the arithmetic torch.optim runs with `fused=True` (the config's default), on the
    members' rows as its tensors. Each member has its own state and step counter, and its own
    hyperparameters in `rules`, as torch keeps them per parameter group:
    `update.rules[r] = replace(rule, lr=0.003)`. Members sharing a rule share one kernel call;
    every rule has the same kind (one of Adam, AdamW, SGD: one state layout).

    Why the fused kernel rather than the update written out with a per-member learning rate
    broadcast as an (R, 1) tensor (commit 07c5e21): that is torch's single-tensor Adam in 13
    element-wise operations. Medians on the project's machine, one thread: R=1, 39 µs against
    6 µs for the kernel; R=8, 47 µs against 17 µs when the members share a learning rate and
    36 µs when all eight differ (one call each).
    """

    def __init__(self, params: Tensor, grad: Tensor, rule: UpdateRule, state: list[Tensor]) -> None:
        self.rules = [rule] * len(params)
        # Every tensor the kernel reads or writes, as one list of member rows each: (P,) views.
        self._rows = [list(t.unbind()) for t in (params, grad, *state)]
        self._calls: tuple[tuple[UpdateRule, list[list[Tensor]]], ...] = ()
        self._calls_rules: tuple[UpdateRule, ...] = ()

    def kept(self, params: Tensor, grad: Tensor, rows: Tensor) -> FusedUpdate:
        """The same update for the members `rows` only (params and grad: their new buffers),
        each with its state, step count and rule carried over."""
        kept = type(self)(params, grad, self.rules[0])
        kept.rules = [self.rules[r] for r in rows.tolist()]
        for mine, theirs in zip(self._rows[2:], kept._rows[2:], strict=True):
            for k, r in enumerate(rows.tolist()):
                theirs[k].copy_(mine[r])
        kept.__dict__.update({k: v for k, v in vars(self).items() if k == "_first"})
        return kept

    def freeze(self, member: int) -> None:
        """Stop a member where it is: its learning rate 0 (its state still moves, unused)."""
        self.rules[member] = replace(self.rules[member], lr=0.0)

    def calls(self) -> tuple[tuple[UpdateRule, list[list[Tensor]]], ...]:
        """(rule, the rows of its members) for each distinct rule."""
        if tuple(self.rules) != self._calls_rules:
            kinds = {rule.kind for rule in self.rules}
            if len(kinds) > 1:
                raise Unsupported(f"one population with several optimizers: {sorted(kinds)}")
            self._calls_rules = tuple(self.rules)
            members: dict[UpdateRule, list[int]] = {}
            for r, rule in enumerate(self.rules):
                members.setdefault(rule, []).append(r)
            self._calls = tuple(
                (rule, [[rows[r] for r in rs] for rows in self._rows])
                for rule, rs in members.items()
            )
        return self._calls


class Adam(FusedUpdate):
    """torch.optim.Adam and AdamW (weight decay, not amsgrad): torch's fused kernel."""

    def __init__(self, params: Tensor, grad: Tensor, rule: UpdateRule) -> None:
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
        self.step = torch.zeros(len(params), device=params.device, dtype=torch.float32)  # (R,)
        state = [self.exp_avg, self.exp_avg_sq, self.step]  # (R, P), (R, P), (R,)
        super().__init__(params, grad, rule, state)
        self._kernel = torch._fused_adamw_ if rule.kind == "adamw" else torch._fused_adam_

    def __call__(self) -> None:
        self.step.add_(1)  # (R,)
        for rule, (params, grads, exp_avgs, exp_avg_sqs, steps) in self.calls():
            self._kernel(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=rule.lr, beta1=rule.betas[0], beta2=rule.betas[1],
                weight_decay=rule.weight_decay, eps=rule.eps, amsgrad=False, maximize=False,
            )  # fmt: skip


class SGD(FusedUpdate):
    """torch.optim.SGD (momentum, dampening, nesterov, weight decay): torch's fused kernel."""

    def __init__(self, params: Tensor, grad: Tensor, rule: UpdateRule) -> None:
        self.momentum_buffer = torch.zeros_like(params)  # (R, P), set to the gradient at first
        super().__init__(params, grad, rule, [self.momentum_buffer])
        self._first = True

    def __call__(self) -> None:
        for rule, (params, grads, buffers) in self.calls():
            torch._fused_sgd_(
                params, grads, buffers if rule.momentum else [],
                weight_decay=rule.weight_decay, momentum=rule.momentum, lr=rule.lr,
                dampening=rule.dampening, nesterov=rule.nesterov, maximize=False,
                is_first_step=self._first and rule.momentum != 0,
            )  # fmt: skip
        self._first = False


# ---------------------------------------------------------------- the step
class HandStep:
    """A training step of R models of one architecture: forward, backward, update, no autograd.

    `params` (R, P) is updated in place; a call returns each member's mean loss (R,).
    """

    def __init__(self, arch: Architecture, params: Tensor, rule: UpdateRule) -> None:
        self.arch, self.params = arch, params  # (R, P)
        self.grad = torch.zeros_like(params)  # (R, P), rewritten by every backward
        self.update = (SGD if rule.kind == "sgd" else Adam)(params, self.grad, rule)
        self._params, self._grads = Matrices.of(arch, params), Matrices.of(arch, self.grad)
        self._sizes: dict[torch.Size, Sizes] = {}

    @classmethod
    def for_models(cls, models: list[nn.Module], rule: UpdateRule) -> HandStep:
        """A step over `models` (R of them, one architecture), starting from their weights.

        A single model's parameters become views of the buffer: it trains in place.
        """
        arch = Architecture.of(models[0])
        if any(Architecture.of(m) != arch for m in models[1:]):
            raise Unsupported("the members' architectures differ")
        params = stack_parameters(models)  # (R, P)
        if len(models) == 1:
            bind_parameters(models[0], params[0])
        return cls(arch, params, rule)

    def keep(self, rows: Sequence[int]) -> None:
        """Go on with the members `rows` only, in that order: their parameters, optimizer state
        and rules move to new buffers, and the others' rows cost nothing from here on.

        A member that leaves keeps the old buffer's row (a model bound to it keeps its
        weights); the caller rebinds the others to their new rows (`self.params[k]`).
        """
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.params.device)
        self.params = self.params.index_select(0, index)  # (R', P), a new buffer
        self.grad = torch.zeros_like(self.params)
        self.update = self.update.kept(self.params, self.grad, index)
        self._params, self._grads = (
            Matrices.of(self.arch, self.params),
            Matrices.of(self.arch, self.grad),
        )

    def state_dict(self, member: int) -> dict[str, Tensor]:
        """A member's parameters as a LinesCNN's state_dict: views of its row of the buffer."""
        views = parameter_views(self.arch, self.params)  # (R, *torch's shape) each
        return {name: view[member] for name, view in views.items()}

    def sizes(self, x: Tensor) -> Sizes:
        """The layer sizes for images x (..., C0, H, W), worked out once per image size."""
        image = x.shape[-2:]
        if image not in self._sizes:
            self._sizes[image] = self.arch.sizes(tuple(image))  # type: ignore[arg-type]
        return self._sizes[image]

    @torch.inference_mode()
    def logits(self, x: Tensor) -> Tensor:
        """(R, B, C0, H, W) -> (R, B, K)."""
        sizes = self.sizes(x)
        return forward(self.arch, sizes, self._params, image_columns(self.arch, sizes, x))[0].mT

    @torch.inference_mode()
    def gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Loss (R,) and gradient (R, P) at the current parameters; `self.grad` holds the latter."""
        sizes = self.sizes(x)
        return self._gradient(sizes, image_columns(self.arch, sizes, x), y)

    @torch.inference_mode()
    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """One step on images (R, B, C0, H, W) and labels (R, B): each member's mean loss (R,).

        Inference mode: no autograd bookkeeping at all, not even the per-operation checks it
        makes on tensors that need no gradient (a fifth of the step's time).
        """
        sizes = self.sizes(x)
        return self._step(sizes, image_columns(self.arch, sizes, x), y)

    @torch.inference_mode()
    def epoch(self, images: Tensor, labels: Tensor, batch_size: int) -> Iterator[Tensor]:
        """Step through images (R, N, C0, H, W) and labels (R, N) in order, `batch_size` at a
        time (the last batch may be smaller); yield each step's loss (R,).

        conv1's columns depend on the images alone, so they are unfolded for many batches in
        one operation (at most `CHUNK_NUMBERS` numbers at a time) instead of once per step.
        """
        r, n = labels.shape
        sizes = self.sizes(images)
        rows = self.arch.shapes[0][1:].numel()  # C0*k*k: conv1's weight is (C1, C0, k, k)
        per_image = rows * math.prod(sizes.conv1)  # numbers in one image's columns
        if r > 1 and images.stride(0) == 0:  # every member the same images: `shared` columns
            images = images[:1]  # (1, N, C0, H, W)
        per_chunk = max(1, CHUNK_NUMBERS // (len(images) * batch_size * per_image))
        for start, count, size in _chunks(n, batch_size, per_chunk):
            stop = start + count * size
            x = images[:, start:stop].reshape(-1, size, *images.shape[2:])  # (R*n or n, b, ...)
            columns = image_columns(self.arch, sizes, x).view(len(images), count, rows, -1)
            y = labels[:, start:stop].reshape(r, count, size)  # (R, n, b)
            for i in range(count):
                yield self._step(sizes, columns[:, i], y[:, i])  # (R or 1, C0*k*k, H1*W1*b)

    def _gradient(self, sizes: Sizes, columns1: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits, tape = forward(self.arch, sizes, self._params, columns1)  # (R, K, B)
        loss, d_logits = cross_entropy(logits, y)  # (R,), (R, K, B)
        backward(self.arch, sizes, self._params, self._grads, tape, d_logits)
        return loss, self.grad

    def _step(self, sizes: Sizes, columns1: Tensor, y: Tensor) -> Tensor:
        loss, _ = self._gradient(sizes, columns1, y)  # (R,), (R, P) in self.grad
        self.update()
        return loss


CHUNK_NUMBERS = 1 << 24  # conv1 columns unfolded at once by `HandStep.epoch`: 64 MB in float32


def _chunks(n: int, batch: int, per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """(first image, batches, batch size) blocks covering n images: full batches, then the rest."""
    full = n // batch
    for first in range(0, full, per_chunk):
        yield first * batch, min(per_chunk, full - first), batch
    if n % batch:
        yield full * batch, 1, n % batch
