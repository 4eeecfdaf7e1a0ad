"""What a run's pictures show, as numpy arrays: worked out from the model and data in the
run's process, drawn from plain arrays by `linesweep.run.plots` (in a drawing process that runs
no torch: `linesweep.run.drawing` says why)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from linesweep.run.data import CLASS_NAMES, Split
from linesweep.run.model import layer_outputs


def samples_by_class(split: Split, per_class: int = 4) -> list[np.ndarray]:
    """The first `per_class` images of each class, (n, H, W) each: the samples picture."""
    images, labels = split.images.cpu(), split.labels.cpu()
    firsts = [
        torch.nonzero(labels == label).flatten()[:per_class] for label in range(len(CLASS_NAMES))
    ]
    return [images[indices, 0].numpy() for indices in firsts]


@dataclass(frozen=True)
class TrainedPictures:
    """What a trained model's pictures show: its kernels, and what its layers see of one image
    per class ("input" (classes, 1, H, W), "relu1", "relu2" (classes, C, H, W), "flatten"
    (classes, F))."""

    conv1: np.ndarray  # (C1, C0, k, k)
    conv2: np.ndarray  # (C2, C1, k, k)
    seen: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: nn.Module, split: Split) -> TrainedPictures:
        labels = split.labels.cpu()
        picks = [int(torch.nonzero(labels == label)[0]) for label in range(len(CLASS_NAMES))]
        images = split.images[picks].to(model.conv1.weight.device)  # (classes, 1, H, W)
        outputs = layer_outputs(model, images)
        seen = {"input": images} | {name: outputs[name] for name in ("relu1", "relu2", "flatten")}
        return cls(
            conv1=model.conv1.weight.detach().cpu().numpy().copy(),
            conv2=model.conv2.weight.detach().cpu().numpy().copy(),
            seen={name: t.detach().cpu().numpy() for name, t in seen.items()},
        )
