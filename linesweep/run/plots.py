"""The notebook's pictures, done well: one PNG per question a learner asks of a trained run.

Figures are built with matplotlib's object API (no pyplot state, no backend switching), so plotting
is safe in worker processes and leaves the caller's matplotlib setup alone. Every PNG names its run
at the top (`drawing.run_caption`: the folder and the overrides), so a picture copied out of its
folder still says where it came from. The functions here take plain arrays, never a model: a
run draws them in a second process that must not run torch (`drawing.py` says why), and
`drawing.py` works out the arrays from the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from linesweep.core.files import save_figure
from linesweep.core.metrics import EpochMetrics
from linesweep.core.plotting import add_caption, log_scale_if_wide
from linesweep.run.config import PlotsConfig
from linesweep.run.data import CLASS_NAMES

if TYPE_CHECKING:
    from linesweep.run.drawing import TrainedPictures

MAX_MAPS_SHOWN = 8  # feature maps per layer in one row; wider models show their first channels


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _symmetric_limits(values: np.ndarray) -> tuple[float, float]:
    """Colour limits centred on 0, so that white means 0 in the 'seismic' map."""
    bound = float(np.abs(values).max()) or 1.0
    return -bound, bound


def learning_curve(history: Sequence[EpochMetrics]) -> Figure:
    """Training cost and validation accuracy per epoch, on twin axes (the notebook's plot)."""
    epochs = [row.epoch for row in history]
    fig = Figure(figsize=(6, 4))
    cost_ax = fig.add_subplot()
    cost_ax.plot(epochs, [row.train_cost for row in history], color="tab:red", marker="o")
    cost_ax.set_xlabel("epoch")
    cost_ax.xaxis.get_major_locator().set_params(integer=True)
    cost_ax.set_ylabel("training cost (sum of batch losses)", color="tab:red")
    log_scale_if_wide(cost_ax, "y", [row.train_cost for row in history])  # falls by decades
    cost_ax.tick_params(axis="y", labelcolor="tab:red")
    acc_ax = cost_ax.twinx()
    acc_ax.plot(epochs, [row.val_accuracy for row in history], color="tab:blue", marker="s")
    acc_ax.set_ylabel("validation accuracy", color="tab:blue")
    acc_ax.tick_params(axis="y", labelcolor="tab:blue")
    acc_ax.set_ylim(-0.02, 1.02)
    cost_ax.set_title(f"learning curve (final validation accuracy {history[-1].val_accuracy:.3f})")
    fig.tight_layout()
    return fig


def kernels(weight: np.ndarray, title: str) -> Figure:
    """A conv layer's kernels (out, in, k, k): a row per output channel, a column per input."""
    n_out, n_in = weight.shape[:2]
    vmin, vmax = _symmetric_limits(weight)
    fig = Figure(figsize=(1.2 * n_in + 1.0, 1.2 * n_out + 0.6))
    axes = fig.subplots(n_out, n_in, squeeze=False)
    for o in range(n_out):
        for i in range(n_in):
            image = axes[o, i].imshow(weight[o, i], vmin=vmin, vmax=vmax, cmap="seismic")
            _bare(axes[o, i])
        axes[o, 0].set_ylabel(f"out {o + 1}")
    for i in range(n_in):
        axes[-1, i].set_xlabel(f"in {i + 1}")
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(title)
    return fig


def samples(by_class: Sequence[np.ndarray]) -> Figure:
    """The first few images of each class: `by_class[label]` is (n, H, W), n per class at most."""
    per_class = max(1, *(len(images) for images in by_class))
    fig = Figure(figsize=(1.6 * per_class, 3.6))
    axes = fig.subplots(len(by_class), per_class, squeeze=False)
    for label, (name, images) in enumerate(zip(CLASS_NAMES, by_class, strict=True)):
        for col in range(per_class):
            ax = axes[label, col]
            _bare(ax)
            if col < len(images):
                ax.imshow(images[col], cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{name} (y={label})", fontsize=8)
    fig.suptitle("sample training images")
    return fig


def feature_maps(seen: Mapping[str, np.ndarray]) -> Figure:
    """For one image per class: the image, then each conv layer's maps after ReLU.

    `seen` is `drawing.LayersSeen`'s arrays: "input" (classes, 1, H, W), "relu1" and "relu2"
    (classes, C, H, W).
    """
    layers = [(name, seen[name]) for name in ("input", "relu1", "relu2")]
    columns = 1 + sum(min(maps.shape[1], MAX_MAPS_SHOWN) for _, maps in layers[1:])
    rows = len(seen["input"])
    fig = Figure(figsize=(1.5 * columns, 1.8 * rows + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False)
    for label in range(rows):  # one row per class
        col = 0
        for name, maps in layers:
            shown = maps[label][: 1 if name == "input" else MAX_MAPS_SHOWN]  # (C, H, W)
            # Inputs are 0/1 pixels; ReLU outputs are >= 0, so a sequential map from 0 reads best.
            vmax = 1.0 if name == "input" else float(shown.max()) or 1.0
            for channel, image in enumerate(shown):
                ax = axes[label, col]
                ax.imshow(image, cmap="gray" if name == "input" else "viridis", vmin=0.0, vmax=vmax)
                _bare(ax)
                ax.set_title(name if name == "input" else f"{name} ch{channel + 1}", fontsize=8)
                col += 1
        axes[label, 0].set_ylabel(CLASS_NAMES[label])
    fig.suptitle("feature maps of one image per class")
    return fig


def flattened_activations(seen: Mapping[str, np.ndarray]) -> Figure:
    """The vector the linear layer sees, for one image per class: what it has to separate."""
    flat = seen["flatten"]  # (classes, F)
    fig = Figure(figsize=(7, 4))
    axes = fig.subplots(len(flat), 1, sharex=True, squeeze=False)[:, 0]
    for ax, values, name, color in zip(
        axes, flat, CLASS_NAMES, ("tab:red", "tab:blue"), strict=True
    ):
        ax.plot(values, color=color, marker=".")
        ax.set_ylabel(f"{name}\nactivation")
    axes[-1].set_xlabel("index in the flattened vector")
    fig.suptitle("flattened activations (input of the linear layer)")
    return fig


def data_figures(cfg: PlotsConfig, by_class: Sequence[np.ndarray]) -> dict[str, Figure]:
    """The pictures of the data alone, which can be drawn before the model trains."""
    return {"samples.png": samples(by_class)} if cfg.samples else {}


def run_figures(
    cfg: PlotsConfig, history: Sequence[EpochMetrics], trained: TrainedPictures
) -> dict[str, Figure]:
    """The pictures of a trained run: its learning curve, kernels and what its layers see."""
    figures: dict[str, Figure] = {}
    if cfg.learning_curve and history:
        figures["learning_curve.png"] = learning_curve(history)
    if cfg.kernels:
        figures["kernels_conv1.png"] = kernels(trained.conv1, "conv1 kernels")
        figures["kernels_conv2.png"] = kernels(trained.conv2, "conv2 kernels")
    if cfg.feature_maps:
        figures["feature_maps.png"] = feature_maps(trained.seen)
    if cfg.activations:
        figures["flattened_activations.png"] = flattened_activations(trained.seen)
    return figures


def save_figures(folder: Path, figures: dict[str, Figure], caption: str, dpi: int) -> list[Path]:
    """Each figure as `folder/<name>`, captioned with its run; returns the files written."""
    if figures:
        folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        if caption:
            add_caption(fig, caption)
        save_figure(fig, folder / name, dpi)
    return [folder / name for name in figures]
