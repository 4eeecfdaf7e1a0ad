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
update keeps its state and learning rate per member. All parameters live in one buffer (R, P),
its rows padded to whole vectors; each layer's weight is a view of it in torch's layout, so
member r's row loads into a LinesCNN. Members of other channel counts are padded to the widest
before they get here (`linesweep.run.widths`); members that stop leave it (`HandStep.keep`).

Activations are laid out (R, C, H, W, B), the images innermost: a convolution is one matmul per
member, weights (R, O, C*kh*kw) times columns (R, C*kh*kw, Ho*Wo*B), already in that layout.
conv1's columns depend on the images alone, so an epoch's are unfolded a chunk at a time
(`HandStep.epoch`), and members that see the same images (a sweep's trials of one seed; every
member's validation on a shared split) share one set: conv1 is then one matmul
(R*C1, C0*k*k) @ columns for all members, forward and weight gradient alike (`shared`).

Where things are: the layers, each forward beside its backward, in `step_layers.py` (two
regimes: a single run's few hundred numbers an operation, where the fewest operations win, and
a population's megabytes, where memory traffic does: max-pooling by running maxima over the
window's taps, buffers kept from step to step); the update (torch's fused Adam, AdamW and SGD
kernels over the members' rows, one call per run of members sharing a rule) in
`step_update.py`; the step itself, the buffers and the epoch loop here.

Two engines compute the forward and backward: these torch layers, and the same arithmetic in
C (`native_step.c`, `step_native.py`), one member at a time in a scratch that stays in the
core's cache, where each torch layer is a pass over all members' activations. The C one is the
default for float32 on the CPU where the machine's compiler built it (`linesweep.run.native`);
torch's are the reference (`tests/test_step.py` runs every step test on both) and the fallback.

Measured (`python benchmarks/bench_step.py`, benchmarks/README.md, Step). Torch's layers,
against the step of 4bd23a9: 1.6-2.1x fewer µs a member-step at R = 64-256, where about 18
µs remained, the memory traffic of a dozen whole-tensor passes. The C engine against torch's
layers, interleaved in one process (`--engines`): 1.9-2.7x at R = 64-256, 3-6x at R = 1-8; about
9 µs a member-step at R = 256 with shared images, 11 with each member's own.
Measured and not taken: the members innermost beside the images, (C, H, W, R, B): pooling got
3.4x faster at R=8, the whole step slower (R=1 by 24%, R=8 by 10%), unfold, fold and ReLU then
copying runs of B floats. Unfold + bmm against grouped conv2d (`python benchmarks/bench_train.py
--part conv`): as fast for one member, five times faster for eight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor, nn

from linesweep.core.errors import InfeasibleArchitecture
from linesweep.run import native
from linesweep.run.model import LinesCNN
from linesweep.run.step_layers import (
    Pair,
    PoolTape,
    Window,
    Workspace,
    bmm_into,
    conv_forward,
    conv_input_backward,
    conv_weight_backward,
    cross_entropy,
    pool_backward,
    pool_forward,
    unfold,
)
from linesweep.run.step_native import NativeStep
from linesweep.run.step_update import ALIGN, SGD, Adam
from linesweep.run.update_rule import Unsupported, UpdateRule

__all__ = [
    "CHUNK_NUMBERS", "FAMILY", "Architecture", "HandStep", "Sizes", "Unsupported", "UpdateRule",
    "Window", "bind_parameters", "parameter_views", "stack_parameters",
]  # fmt: skip


# ---------------------------------------------------------------- the architecture of a model
FAMILY = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Linear)


@dataclass(frozen=True)
class Sizes:
    """The spatial size after each layer for one input size."""

    image: Pair  # (H, W), the input's
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
        return Sizes(image, conv1, pool1, conv2, pool2)


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
    def fc_wt(self) -> Tensor:  # (R, F, K), for the backward
        return self.fc_w.transpose(1, 2)

    @classmethod
    def of(cls, arch: Architecture, flat: Tensor) -> Matrices:
        views = [v.reshape(len(flat), v.shape[1], -1) for v in parameter_views(arch, flat).values()]
        return cls(*views)  # weights (R, O, fan-in), biases (R, O, 1): all views of `flat`


# ---------------------------------------------------------------- forward and backward
def image_columns(arch: Architecture, sizes: Sizes, x: Tensor, ws: Workspaces) -> Tensor:
    """conv1's columns for images (R, ..., B, C0, H, W): (R, ..., C0*k*k, H1*W1*B), or
    (1, ...) `shared` by every member when the members' images are one batch expanded (stride 0
    over members). Dimensions between R and B (batches: `HandStep.epoch`) are kept.

    They depend on the images alone, so a whole epoch's can be unfolded at once (`HandStep.epoch`).
    """
    if x.shape[0] > 1 and x.stride(0) == 0:
        x = x[:1]  # (1, ..., B, C0, H, W): one unfold serves every member
    x = x.movedim(-4, -1)  # (R, ..., C0, H, W, B), a view: the images innermost from here on
    return unfold(x, arch.conv1, sizes.conv1, ws.conv1)  # (R, ..., C0*k*k, H1*W1*B)


def image_inputs(x: Tensor, members: int) -> Tensor:
    """The C step's input for images (R, ..., B, C0, H, W): the images as they are (the C step
    lays each member's out itself, in its cache), or, when every one of R > 1 members sees the
    same images (one batch expanded with stride 0 over members, or given once: (1, ...)),
    planes (1, ..., C0, H, W, B) laid out once for all."""
    if x.shape[0] > 1 and x.stride(0) == 0:
        x = x[:1]
    if len(x) == 1 < members:
        return x.movedim(-4, -1).contiguous()  # (1, ..., C0, H, W, B)
    return x


class Tape(NamedTuple):
    """What the forward keeps for the backward (a tuple: built on every step, it must be cheap)."""

    columns1: Tensor  # (R, C0*k*k, H1*W1*B), or (1, ...) shared
    pool1: PoolTape  # relu1 and pool1: their output (R, C1, P1h, P1w, B) and where the maxima were
    columns2: Tensor  # (R, C1*k*k, H2*W2*B)
    pool2: PoolTape  # relu2 and pool2: their output (R, C2, P2h, P2w, B) and where the maxima were
    features: Tensor  # (R, F, B), F = C2*P2h*P2w in torch's flatten order


@dataclass(frozen=True)
class Workspaces:
    """Each layer's buffers, kept from step to step (`Workspace`)."""

    conv1: Workspace = field(default_factory=Workspace)
    pool1: Workspace = field(default_factory=Workspace)
    conv2: Workspace = field(default_factory=Workspace)
    pool2: Workspace = field(default_factory=Workspace)
    fc: Workspace = field(default_factory=Workspace)


def forward(
    arch: Architecture, sizes: Sizes, m: Matrices, columns1: Tensor, ws: Workspaces, keep: bool
) -> tuple[Tensor, Tape]:
    """Logits (R, K, B) from conv1's columns (R, C0*k*k, H1*W1*B), and the tape for `backward`
    (where the pooling maxima were only if `keep`: evaluation needs none)."""
    z1 = conv_forward(columns1, m.conv1_w, m.conv1_b, sizes.conv1, ws.conv1)  # (R, C1, H1, W1, B)
    p1, pool1 = pool_forward(z1, arch.pool1, sizes.pool1, keep, ws.pool1)  # (R, C1, P1h, P1w, B)
    columns2 = unfold(p1, arch.conv2, sizes.conv2, ws.conv2)  # (R, C1*k*k, H2*W2*B)
    z2 = conv_forward(columns2, m.conv2_w, m.conv2_b, sizes.conv2, ws.conv2)  # (R, C2, H2, W2, B)
    p2, pool2 = pool_forward(z2, arch.pool2, sizes.pool2, keep, ws.pool2)  # (R, C2, P2h, P2w, B)
    features = p2.view(p2.shape[0], -1, p2.shape[4])  # (R, C2*P2h*P2w, B): torch's flatten
    logits = torch.baddbmm(m.fc_b, m.fc_w, features)  # (R, K, B) = W @ features + b, fresh
    return logits, Tape(columns1, pool1, columns2, pool2, features)


def backward(
    arch: Architecture, sizes: Sizes, m: Matrices, g: Matrices, tape: Tape, d_logits: Tensor,
    ws: Workspaces,
) -> None:  # fmt: skip
    """Every parameter's gradient, from dL/dlogits (R, K, B), written into `g`."""
    bmm_into(g.fc_w, d_logits, tape.features.transpose(1, 2))  # (R, K, F)
    torch.sum(d_logits, dim=2, keepdim=True, out=g.fc_b)  # (R, K, 1)
    d_features = torch.bmm(m.fc_wt, d_logits, out=ws.fc.get("d", d_logits, *tape.features.shape))
    d_p2 = d_features.view(tape.pool2.pooled.shape)  # (R, C2, P2h, P2w, B)
    d_z2 = pool_backward(d_p2, tape.pool2, arch.pool2, sizes.conv2, ws.pool2)  # (R, C2, H2, W2, B)
    d_z2 = conv_weight_backward(d_z2, tape.columns2, (g.conv2_w, g.conv2_b))  # (R, C2, H2*W2*B)
    d_p1 = conv_input_backward(d_z2, m.conv2_w, arch.conv2, sizes.pool1, sizes.conv2, ws.conv2)
    d_z1 = pool_backward(d_p1, tape.pool1, arch.pool1, sizes.conv1, ws.pool1)  # (R, C1, H1, W1, B)
    conv_weight_backward(d_z1, tape.columns1, (g.conv1_w, g.conv1_b))


# ---------------------------------------------------------------- the step
class HandStep:
    """A training step of R models of one architecture: forward, backward, update, no autograd.

    `params` (R, P) is updated in place; a call returns each member's mean loss (R,).
    """

    def __init__(
        self, arch: Architecture, params: Tensor, rule: UpdateRule, compiled: bool = True
    ) -> None:
        """`compiled`: the forward and backward in C (`linesweep.run.native`) where it compiled
        and the parameters are float32 on the CPU; otherwise, or if False, torch's layers."""
        self.arch = arch
        r, p = params.shape
        rows = params.new_zeros(r, -(-p // ALIGN) * ALIGN)  # (R, P'): whole vectors, `ALIGN`
        rows[:, :p] = params
        self._bind(rows, torch.zeros_like(rows))
        self.update = (SGD if rule.kind == "sgd" else Adam)(self._rows, self._grad_rows, rule)
        self._sizes: dict[torch.Size, Sizes] = {}
        self._ws, self._eval_ws = Workspaces(), Workspaces()  # training's, evaluation's
        fits = params.device.type == "cpu" and params.dtype == torch.float32
        self._library = native.library() if compiled and fits else None
        self._kernels: dict[Sizes, NativeStep] = {}

    def _bind(self, rows: Tensor, grad_rows: Tensor) -> None:
        p = sum(math.prod(shape) for shape in self.arch.shapes)
        self._rows, self._grad_rows = rows, grad_rows  # (R, P') each
        self.params, self.grad = rows[:, :p], grad_rows[:, :p]  # (R, P) views; grad rewritten
        self._params, self._grads = (
            Matrices.of(self.arch, self.params),
            Matrices.of(self.arch, self.grad),
        )

    @property
    def compiled(self) -> bool:
        """Whether the forward and backward run in C (`linesweep.run.native`)."""
        return self._library is not None

    @classmethod
    def for_models(
        cls, models: list[nn.Module], rule: UpdateRule, compiled: bool = True
    ) -> HandStep:
        """A step over `models` (R of them, one architecture), starting from their weights.

        A single model's parameters become views of the buffer: it trains in place.
        """
        arch = Architecture.of(models[0])
        if any(Architecture.of(m) != arch for m in models[1:]):
            raise Unsupported("the members' architectures differ")
        step = cls(arch, stack_parameters(models), rule, compiled)
        if len(models) == 1:
            bind_parameters(models[0], step.params[0])
        return step

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only the members `rows`, in that order; the others are dropped.

        Parameters, gradients, optimizer state and per-member rules move with their members, so
        the kept ones train on as if nothing happened. `params` and `grad` are new buffers:
        models bound to the old rows must be bound again (`bind_parameters(model,
        step.params[k])`).
        """
        if not rows:
            raise ValueError("keep: rows is empty; a step keeps at least one member")
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.params.device)
        self._bind(self._rows.index_select(0, index), self._grad_rows.index_select(0, index))
        self.update.keep(rows, self._rows, self._grad_rows)

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

    def _kernel(self, sizes: Sizes) -> NativeStep:
        """The C step for one image size, made once."""
        if sizes not in self._kernels:
            assert self._library is not None
            arch, shapes = self.arch, self.arch.shapes  # conv1 (C1, C0, ...), conv2, fc (K, F)
            features = shapes[2][0] * math.prod(sizes.pool2)
            if features != shapes[4][1]:  # torch's matmul would refuse it; C would overrun
                raise ValueError(
                    f"images of {sizes.image[0]}x{sizes.image[1]} give the fc layer {features} "
                    f"features; it takes {shapes[4][1]}"
                )
            self._kernels[sizes] = NativeStep(
                self._library,
                (shapes[0][1], shapes[0][0], shapes[2][0], shapes[4][0]),
                (sizes.image, sizes.conv1, sizes.pool1, sizes.conv2, sizes.pool2),
                (arch.conv1, arch.pool1, arch.conv2, arch.pool2),
            )
        return self._kernels[sizes]

    def _inputs(self, sizes: Sizes, x: Tensor, ws: Workspaces) -> Tensor:
        """What the first layer reads from images (R, ..., B, C0, H, W): the images for the C
        step (`image_inputs`), conv1's columns for torch's (`image_columns`)."""
        if len(x) not in (1, len(self._rows)):  # expanded or not: one set, or one a member
            raise ValueError(f"images {tuple(x.shape)} for {len(self._rows)} member(s)")
        if self._library is not None:
            return image_inputs(x, len(self._rows))
        return image_columns(self.arch, sizes, x, ws)

    @torch.inference_mode()
    def logits(self, x: Tensor) -> Tensor:
        """(R, B, C0, H, W) -> (R, B, K)."""
        sizes = self.sizes(x)
        inputs = self._inputs(sizes, x, self._eval_ws)  # (R or 1, ...)
        if self._library is not None:
            return self._kernel(sizes).logits(inputs, self._rows).mT
        return forward(self.arch, sizes, self._params, inputs, self._eval_ws, keep=False)[0].mT

    @torch.inference_mode()
    def gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Loss (R,) and gradient (R, P) at the current parameters; `self.grad` holds the latter."""
        sizes = self.sizes(x)
        return self._gradient(sizes, self._inputs(sizes, x, self._ws), y)

    @torch.inference_mode()
    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """One step on images (R, B, C0, H, W) and labels (R, B): each member's mean loss (R,).

        Inference mode: no autograd bookkeeping at all, not even the per-operation checks it
        makes on tensors that need no gradient (a fifth of the step's time).
        """
        sizes = self.sizes(x)
        return self._step(sizes, self._inputs(sizes, x, self._ws), y)

    @torch.inference_mode()
    def epoch(self, images: Tensor, labels: Tensor, batch_size: int) -> Iterator[Tensor]:
        """Step through images (R, N, C0, H, W) and labels (R, N) in order, `batch_size` at a
        time (the last batch may be smaller); yield each step's loss (R,).

        conv1's columns depend on the images alone, so they are unfolded for many batches in
        one operation (at most `CHUNK_NUMBERS` numbers at a time) instead of once per step (the
        C step: planes of shared images laid out so; its members' own images it lays out itself).
        """
        r, n = labels.shape
        if batch_size < 1 or images.shape[1] != n:
            raise ValueError(
                f"epoch: images {tuple(images.shape)}, labels {tuple(labels.shape)}, batch size "
                f"{batch_size}: as many images as labels, and batches of 1 or more are needed"
            )
        sizes = self.sizes(images)
        if self._library is not None:  # the images themselves, or planes: C0*H*W a batch
            per_image = images.shape[2:].numel()
        else:  # columns (C0*k*k, H1*W1*b) a batch
            per_image = self.arch.shapes[0][1:].numel() * math.prod(sizes.conv1)
        if r > 1 and images.stride(0) == 0:  # every member the same images: `shared` columns
            images = images[:1]  # (1, N, C0, H, W)
        per_chunk = max(1, CHUNK_NUMBERS // (len(images) * batch_size * per_image))
        for start, count, size in _chunks(n, batch_size, per_chunk):
            stop = start + count * size
            x = images[:, start:stop].unflatten(1, (count, size))  # (R or 1, n, b, C0, H, W)
            inputs = self._inputs(sizes, x, self._ws)  # (R or 1, n, ...): columns or planes
            y = labels[:, start:stop].reshape(r, count, size)  # (R, n, b)
            for step_inputs, step_y in zip(inputs.unbind(1), y.unbind(1), strict=True):
                yield self._step(sizes, step_inputs, step_y)  # (R or 1, ...), (R, b)

    def _gradient(self, sizes: Sizes, inputs: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self._library is not None:  # images (R, B, C0, H, W), or shared planes
            loss = self._kernel(sizes).gradient(inputs, y, self._rows, self._grad_rows)
            return loss, self.grad
        logits, tape = forward(self.arch, sizes, self._params, inputs, self._ws, keep=True)
        loss, d_logits = cross_entropy(logits, y)  # (R,), (R, K, B)
        backward(self.arch, sizes, self._params, self._grads, tape, d_logits, self._ws)
        return loss, self.grad

    def _step(self, sizes: Sizes, inputs: Tensor, y: Tensor) -> Tensor:
        loss, _ = self._gradient(sizes, inputs, y)  # (R,), (R, P) in self.grad
        self.update()
        return loss


CHUNK_NUMBERS = 1 << 20  # conv1 columns unfolded at once by `HandStep.epoch`: 4 MB in float32


def _chunks(n: int, batch: int, per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """(first image, batches, batch size) blocks covering n images: full batches, then the rest."""
    full = n // batch
    for first in range(0, full, per_chunk):
        yield first * batch, min(per_chunk, full - first), batch
    if n % batch:
        yield full * batch, 1, n % batch
