"""Models of different channel counts trained as one population: each padded to the widest.

    python -m linesweep.train -m hparams_search=channels_lr    # out_1 1-8, out_2 1-4, together

The hand-written step (`linesweep.run.step`) trains R members of one architecture: one (R, P)
buffer, one set of matmul shapes. Members that differ only in `model.out_1` and `model.out_2`
share every spatial size (those follow from the kernels, strides and the image size alone), so
each is embedded in a model of the widest member's channel counts, its extra channels zero:

    conv1.weight (c1, C0, k, k)  -> rows [:c1] of (C1, C0, k, k)
    conv2.weight (c2, c1, k, k)  -> block [:c2, :c1] of (C2, C1, k, k)
    fc.weight    (K, c2*h*w)     -> channels [:c2] of (K, C2, h, w), torch's flatten order
    biases                       -> their first c1, c2 entries (fc.bias: whole)

Why the padding stays exactly zero, so that every member trains as it would alone: a padded
conv1 channel has zero weights and bias, so its output is 0, ReLU passes 0 and its gradient
(ReLU's derivative at 0 is 0) is 0; what conv2 reads from it is 0, so conv2's padded input
columns get a zero gradient; a padded conv2 channel is 0 after ReLU likewise, so are the fc
weights reading it. Every padded entry's gradient is exactly 0, so Adam's moments stay 0 and its
update 0/(sqrt(0)+eps) = 0; weight decay scales 0; SGD's momentum stays 0. Sums that add exact
zeros change nothing, so a member's numbers equal its solo run's up to the order of float sums
in the matmuls (tests/test_widths.py).

Each member's own model stays a model of its own width whose parameters are strided views of
its padded row: its state_dict, pictures and `model.pt` are its own (copied when saved).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from linesweep.run.model import LinesCNN

Widths = tuple[int, int]  # (out_1, out_2)


def widths_of(model: LinesCNN) -> Widths:
    """(out_1, out_2) of a lines CNN: its convolutions' output channels."""
    return model.conv1.out_channels, model.conv2.out_channels


def widest(models: Sequence[LinesCNN]) -> Widths:
    """The channel counts that hold every member: the largest out_1 and out_2 among them."""
    all_widths = [widths_of(m) for m in models]
    return max(w[0] for w in all_widths), max(w[1] for w in all_widths)


def widened(model: LinesCNN, to: Widths) -> LinesCNN:
    """A copy of `model`'s architecture with `to` channel counts, every weight zero."""
    layers = OrderedDict(model.named_children())
    out_1, out_2 = to
    spatial = model.fc.in_features // model.conv2.out_channels  # h*w after pool2, any width
    layers["conv1"] = _conv(model.conv1, model.conv1.in_channels, out_1)
    layers["conv2"] = _conv(model.conv2, out_1, out_2)
    layers["fc"] = nn.Linear(out_2 * spatial, model.fc.out_features)
    wide = LinesCNN(layers)
    with torch.no_grad():
        for p in wide.parameters():
            p.zero_()
    return wide


def _conv(like: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, out_channels, like.kernel_size, like.stride, like.padding, like.dilation
    )


def padded_views(model: LinesCNN, wide: Sequence[Tensor]) -> list[Tensor]:
    """Each of `model`'s parameters as a view of the padded parameter that holds it.

    `wide`: the widest model's parameters in `named_parameters` order (conv1's weight and bias,
    conv2's, fc's), one member's, in torch's shapes; the views are strided, never copies.
    """
    views = []
    for (name, p), target in zip(model.named_parameters(), wide, strict=True):
        if name == "fc.weight":  # (K, C2*h*w): the first c2 channels of each row
            k, c2 = p.shape[0], model.conv2.out_channels
            wide_c2 = wide[3].shape[0]  # conv2.bias: the widest conv2's channels
            spatial = target.shape[1] // wide_c2
            view = target.view(k, wide_c2, spatial)[:, :c2].reshape(k, c2 * spatial)
        else:
            view = target[tuple(slice(0, n) for n in p.shape)]
        shares = view.untyped_storage().data_ptr() == target.untyped_storage().data_ptr()
        if view.shape != p.shape or not shares:  # a bug here, never the user's input
            raise AssertionError(f"{name}: no view of the padded parameter holds {p.shape}")
        views.append(view)
    return views


def embed(model: LinesCNN, wide: Sequence[Tensor]) -> None:
    """Copy `model`'s weights into their place in the padded parameters `wide` (zero
    elsewhere), then make `model`'s parameters those views: it shows its weights as it trains."""
    views = padded_views(model, wide)
    with torch.no_grad():
        for p, view in zip(model.parameters(), views, strict=True):
            view.copy_(p)
    rebind(model, wide)


def rebind(model: LinesCNN, wide: Sequence[Tensor]) -> None:
    """Make `model`'s parameters views of `wide` (after the population moved to a new buffer)."""
    for p, view in zip(model.parameters(), padded_views(model, wide), strict=True):
        p.data = view
