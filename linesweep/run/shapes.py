"""Shape arithmetic: the size of every activation, worked out before a single tensor exists.

`plan_cnn` walks the layer stack with `conv_output_shape` and returns a `ShapePlan`: per layer, the
input and output shape and the parameter count. The model takes its linear layer's input size from
the plan (never typed in), each run checks the plan against a real forward pass, and an architecture
whose activations would shrink below 1x1 is refused here, naming the layer and the sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from linesweep.core.errors import InfeasibleArchitecture
from linesweep.run.config import ModelConfig, WindowConfig

IntOrPair = int | tuple[int, int]


def _pair(value: IntOrPair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_output_shape(
    h_w: IntOrPair,
    kernel_size: IntOrPair = 1,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """Output (height, width) of a Conv2d or MaxPool2d (floor mode) on an input of `h_w`.

    The notebook's helper, generalised so every argument takes an int or an (h, w) pair:
    out = floor((in + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1, per axis.
    """
    sizes, kernels, strides, pads, dilations = map(_pair, (h_w, kernel_size, stride, pad, dilation))
    return tuple(  # type: ignore[return-value]
        math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1
        for n, k, s, p, d in zip(sizes, kernels, strides, pads, dilations, strict=True)
    )


def window_sees_only_padding(
    h_w: IntOrPair,
    kernel_size: IntOrPair = 1,
    stride: IntOrPair = 1,
    pad: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> bool:
    """Whether some window on an `h_w` input covers padding only, no pixel (on either axis).

    Output position o's window reads input rows o*stride - pad + i*dilation for i < kernel;
    with dilation a window can step over every real row. Max-pooling over such a window has
    no value to take (torch returns -inf with an index outside the plane, and its backward
    then writes out of bounds), so the plan refuses it.
    """
    sizes, kernels, strides, pads, dilations = map(_pair, (h_w, kernel_size, stride, pad, dilation))
    outs = conv_output_shape(sizes, kernels, strides, pads, dilations)
    return any(
        not any(0 <= o * s - p + i * d < n for i in range(k))
        for n, out, k, s, p, d in zip(sizes, outs, kernels, strides, pads, dilations, strict=True)
        for o in range(out)
    )


Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after flattening


@dataclass(frozen=True)
class LayerPlan:
    name: str
    kind: str  # the torch module class
    input_shape: Shape
    output_shape: Shape
    params: int


@dataclass(frozen=True)
class ShapePlan:
    """The expected shape of every activation of one sample, layer by layer."""

    layers: tuple[LayerPlan, ...]

    @property
    def flat_features(self) -> int:
        """Input size of the linear layer: the flattened output of the last pool."""
        return self.layer("flatten").output_shape[0]

    @property
    def n_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)

    def table(self) -> str:
        """The plan as an aligned text table, as printed at the start of a run."""
        rows = [("layer", "type", "input", "output", "params")]
        rows += [
            (ly.name, ly.kind, _fmt(ly.input_shape), _fmt(ly.output_shape), f"{ly.params:,}")
            for ly in self.layers
        ]
        rows.append(("total", "", "", "", f"{self.n_params:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [
            "  ".join(
                cell.rjust(w) if i == 4 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        return "\n".join(lines)

    def to_records(self) -> list[dict]:
        return [
            {
                "layer": ly.name,
                "type": ly.kind,
                "input": list(ly.input_shape),
                "output": list(ly.output_shape),
                "params": ly.params,
            }
            for ly in self.layers
        ]


def _fmt(shape: Shape) -> str:
    return "x".join(str(n) for n in shape)


def _window_output(
    name: str, kind: str, in_shape: Shape, window: WindowConfig, out_channels: int
) -> Shape:
    """Output (C, H, W) of a conv or pool window on `in_shape`, or InfeasibleArchitecture."""
    _, height, width = in_shape
    k, s, p, d = window.kernel_size, window.stride, window.padding, window.dilation
    effective = d * (k - 1) + 1  # the kernel's footprint once dilated
    key = f"model.{name}"
    if kind == "MaxPool2d" and p > k // 2:
        # torch refuses this on the first forward pass; say so before any tensor exists.
        raise InfeasibleArchitecture(
            name,
            f"padding {p} is more than half the pooling kernel {k}x{k}",
            f"set {key}.padding <= {k // 2} or enlarge {key}.kernel_size",
        )
    padded_h, padded_w = height + 2 * p, width + 2 * p
    if padded_h < effective or padded_w < effective:
        padded = f" (padded {padded_h}x{padded_w})" if p else ""
        kernel = "dilated kernel" if d > 1 else "kernel"
        raise InfeasibleArchitecture(
            name,
            f"input {height}x{width}{padded} is smaller than the {kernel} {effective}x{effective}",
            f"use a smaller {key}.kernel_size or {key}.dilation, more {key}.padding, "
            "or a larger data.image_size",
        )
    if kind == "MaxPool2d" and window_sees_only_padding((height, width), k, s, p, d):
        raise InfeasibleArchitecture(
            name,
            f"a window sees only padding on its {height}x{width} input",
            f"lower {key}.padding or {key}.dilation",
        )
    out_h, out_w = conv_output_shape((height, width), k, s, p, d)
    return (out_channels, out_h, out_w)


def plan_cnn(
    model: ModelConfig, image_size: int, in_channels: int = 1, n_classes: int = 2
) -> ShapePlan:
    """Walk conv1 -> relu1 -> pool1 -> conv2 -> relu2 -> pool2 -> flatten -> fc for one sample."""
    layers: list[LayerPlan] = []
    shape: Shape = (in_channels, image_size, image_size)

    def add(name: str, kind: str, out: Shape, params: int = 0) -> None:
        nonlocal shape
        layers.append(LayerPlan(name, kind, shape, out, params))
        shape = out

    for i, out_channels in ((1, model.out_1), (2, model.out_2)):
        conv: WindowConfig = getattr(model, f"conv{i}")
        pool: WindowConfig = getattr(model, f"pool{i}")
        in_ch = shape[0]
        conv_params = out_channels * in_ch * conv.kernel_size**2 + out_channels  # weights + biases
        add(
            f"conv{i}",
            "Conv2d",
            _window_output(f"conv{i}", "Conv2d", shape, conv, out_channels),
            conv_params,
        )
        add(f"relu{i}", "ReLU", shape)
        add(f"pool{i}", "MaxPool2d", _window_output(f"pool{i}", "MaxPool2d", shape, pool, shape[0]))
    add("flatten", "Flatten", (math.prod(shape),))
    add("fc", "Linear", (n_classes,), shape[0] * n_classes + n_classes)
    return ShapePlan(tuple(layers))
