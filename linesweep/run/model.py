"""The notebook's CNN, built layer by layer from a ShapePlan, and the plan's check against torch."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from linesweep.core.record import LayerShapes, ShapesRecord
from linesweep.run.config import ModelConfig, WindowConfig
from linesweep.run.shapes import LayerPlan, Shape, ShapePlan


def _window(cfg: WindowConfig) -> dict[str, int]:
    return {
        "kernel_size": cfg.kernel_size,
        "stride": cfg.stride,
        "padding": cfg.padding,
        "dilation": cfg.dilation,
    }


def _module(row: LayerPlan, model: ModelConfig) -> nn.Module:
    if row.kind == "Conv2d":
        window = _window(getattr(model, row.name))
        return nn.Conv2d(row.input_shape[0], row.output_shape[0], **window)
    if row.kind == "MaxPool2d":
        return nn.MaxPool2d(**_window(getattr(model, row.name)))
    if row.kind == "ReLU":
        return nn.ReLU()
    if row.kind == "Flatten":
        return nn.Flatten()
    if row.kind == "Linear":
        # The input size comes from the plan: the arithmetic the notebook did by hand (out_2*7*7).
        return nn.Linear(row.input_shape[0], row.output_shape[0])
    raise ValueError(f"no module for layer kind {row.kind!r}")


class LinesCNN(nn.Sequential):
    """The layers in plan order: conv1, relu1, pool1, conv2, relu2, pool2, flatten, fc."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) -> (B, 2)
        # Each layer's forward is called directly: `layer(x)` would add ~5 us of hook bookkeeping
        # per layer, a tenth of a training step at this size. linesweep registers no hooks
        # (`layer_outputs` walks the layers itself to see inside).
        for layer in self._modules.values():
            x = layer.forward(x)
        return x


def build_model(model: ModelConfig, plan: ShapePlan, seed: int) -> LinesCNN:
    """The network of the plan, its weights initialised from `seed`.

    The global random state is left as it was: initialisation draws from a forked generator.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LinesCNN(OrderedDict((row.name, _module(row, model)) for row in plan.layers))


def layer_outputs(model: LinesCNN, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
    """Every layer's output for a batch (B, C, S, S): feature maps, activations, logits."""
    outputs: OrderedDict[str, torch.Tensor] = OrderedDict()
    x = images
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            outputs[name] = x
    return outputs


@dataclass(frozen=True)
class ShapeCheck:
    """The plan next to what a real forward pass produced, for shapes.yaml."""

    plan: ShapePlan
    observed: dict[str, Shape]
    observed_params: int

    @property
    def agrees(self) -> bool:
        return not self.mismatches()

    def mismatches(self) -> list[str]:
        problems = [
            f"{row.name}: planned {row.output_shape}, observed {self.observed.get(row.name)}"
            for row in self.plan.layers
            if self.observed.get(row.name) != row.output_shape
        ]
        if self.observed_params != self.plan.n_params:
            problems.append(
                f"params: planned {self.plan.n_params}, observed {self.observed_params}"
            )
        return problems

    def to_record(self) -> ShapesRecord:
        return ShapesRecord(
            agree=self.agrees,
            input=list(self.plan.layers[0].input_shape),
            flat_features=self.plan.flat_features,
            n_params=self.plan.n_params,
            plan=[LayerShapes(**row) for row in self.plan.to_records()],
            observed={name: list(shape) for name, shape in self.observed.items()},
            observed_params=self.observed_params,
        )


def check_plan(model: LinesCNN, plan: ShapePlan) -> ShapeCheck:
    """Push one blank sample through the model and record each layer's output shape."""
    sample = torch.zeros((1, *plan.layers[0].input_shape))
    device = next(model.parameters()).device
    observed = {
        name: tuple(out.shape[1:]) for name, out in layer_outputs(model, sample.to(device)).items()
    }
    n_params = sum(p.numel() for p in model.parameters())
    return ShapeCheck(plan=plan, observed=observed, observed_params=n_params)
