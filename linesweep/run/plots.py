"""The notebook's pictures, done well: one PNG per question a learner asks of a trained run.

Figures are built with matplotlib's object API (no pyplot state, no backend switching), so plotting
is safe in worker processes and leaves the caller's matplotlib setup alone. Every PNG names its run
at the top (`drawing.run_caption`: the folder and the overrides), so a picture copied out of its
folder still says where it came from. The functions here take plain arrays, never a model: a
run draws them in a second process that must not run torch (`drawing.py` says why), and
`drawing.py` works out the arrays from the model.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from linesweep.core.files import make_folder, save_figure
from linesweep.core.metrics import EpochMetrics
from linesweep.core.plotting import CAPTION_STYLE, add_caption, log_scale_if_wide, tex_safe
from linesweep.run.config import PlotsConfig
from linesweep.run.data import CLASS_NAMES

if TYPE_CHECKING:
    from linesweep.run.pictures import TrainedPictures

MAX_MAPS_SHOWN = 8  # feature maps per layer in one row; wider models show their first channels


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _symmetric_limits(values: np.ndarray) -> tuple[float, float]:
    """Colour limits centred on 0, so that white means 0 in the 'seismic' map."""
    bound = float(np.abs(values).max()) or 1.0
    return -bound, bound


# The learning curve is the one picture every run draws, and a population draws it for each
# member, one after another in its own process. Built and laid out the usual way it cost ~133 ms
# at dpi 80, mostly text layout: `tight_layout` and savefig's tight bounding box each lay out every
# label once more before the draw that counts, and new twin axes build their ticks again. So the
# curve has fixed margins that fit its widest labels (the caption inside, in a band of its own),
# and each process builds it once and redraws it for every run: ~41 ms (benchmarks/README.md).
# A single run's drawing process builds it while the model trains (`prepare_learning_curve`).
CURVE_SIZE = (6.0, 4.0)  # inches
# Inches from the figure's edges to the axes: on the left cost ticks up to seven characters
# ("120000", a stuck run's "0.00875") and the cost label, on the right "0.0".."1.0" and the
# accuracy label, below the epoch ticks and label, above the title (tests/test_plots.py).
CURVE_LEFT, CURVE_RIGHT, CURVE_BOTTOM, CURVE_TITLE = 1.0, 0.7, 0.55, 0.38
CAPTION_TOP = 0.06  # inches above the caption's first line
TITLE_PAD, OFFSET_LINE = 6, 14  # points under the title, and over it when the cost axis shows an
# offset above it (a stuck run's cost "+6.931e2", "1e7"): matplotlib's spacing, decided here
CAPTION_LINE = 1.25 * CAPTION_STYLE["fontsize"] / 72  # inches a caption line takes


class LearningCurve:
    """Training cost and validation accuracy per epoch on twin axes (the notebook's plot), as one
    figure that each run redraws with its own data, title and caption."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=CURVE_SIZE)
        FigureCanvasAgg(self.figure)  # its renderer stays: a label measured once is measured
        width, height = CURVE_SIZE
        self.figure.subplots_adjust(
            left=CURVE_LEFT / width, right=1 - CURVE_RIGHT / width, bottom=CURVE_BOTTOM / height
        )
        self.cost_ax = self.figure.add_subplot()
        (self.cost,) = self.cost_ax.plot([], [], color="tab:red", marker="o")
        self.cost_ax.set_xlabel("epoch")
        self.cost_ax.xaxis.get_major_locator().set_params(integer=True)
        self.cost_ax.set_ylabel("training cost (sum of batch losses)", color="tab:red")
        self.cost_ax.tick_params(axis="y", labelcolor="tab:red")
        self.acc_ax = self.cost_ax.twinx()
        (self.accuracy,) = self.acc_ax.plot([], [], color="tab:blue", marker="s")
        self.acc_ax.set_ylabel("validation accuracy", color="tab:blue")
        self.acc_ax.tick_params(axis="y", labelcolor="tab:blue")
        self.acc_ax.set_ylim(-0.02, 1.02)
        self.caption = self.figure.text(
            0.5, 1 - CAPTION_TOP / height, "", ha="center", va="top", **CAPTION_STYLE
        )

    def prepare(self, dpi: int) -> None:
        """Draw the figure once, empty: its ticks made, its labels measured, so that the first
        run's curve costs what a redraw costs."""
        self.figure.set_dpi(dpi)
        self.figure.canvas.draw()

    def draw(self, history: Sequence[EpochMetrics], caption: str, dpi: int) -> Figure:
        """The figure, showing `history` under `caption`: everything the last run set, replaced.

        At the `dpi` it will be saved at, so that the caption is measured by the renderer that
        draws it (a canvas keeps one renderer, for one size in pixels)."""
        self.figure.set_dpi(dpi)
        epochs = [row.epoch for row in history]
        costs = [row.train_cost for row in history]
        self.cost.set_data(epochs, costs)
        self.accuracy.set_data(epochs, [row.val_accuracy for row in history])
        self.cost_ax.set_yscale("linear")  # the last run's log scale undone, then the rule again
        self.cost_ax.set_ylim(0, 1, auto=True)  # and its limits: all-NaN costs read as on a new one
        log_scale_if_wide(self.cost_ax, "y", costs)  # falls by decades
        for ax in (self.cost_ax, self.acc_ax):
            ax.relim()
            ax.autoscale_view()
        # At y=1 matplotlib keeps the title where it is rather than measuring the axes to place
        # it, so the room an offset needs is made here.
        pad = TITLE_PAD + (OFFSET_LINE if self._cost_offset() else 0)
        self.cost_ax.set_title(
            f"learning curve (final validation accuracy {history[-1].val_accuracy:.3f})",
            y=1,
            pad=pad,
        )
        lines = self._set_caption(caption)
        top = CURVE_TITLE + (pad - TITLE_PAD) / 72 + CAPTION_TOP + lines * CAPTION_LINE
        self.figure.subplots_adjust(top=1 - top / CURVE_SIZE[1])
        return self.figure

    def _cost_offset(self) -> bool:
        """Whether the cost axis's labels need an offset or a power of ten written above it."""
        formatter = self.cost_ax.yaxis.get_major_formatter()
        formatter.set_locs(self.cost_ax.yaxis.get_majorticklocs())
        return bool(formatter.get_offset())

    def _set_caption(self, text: str) -> int:
        """The caption, wrapped onto as many lines as the figure's width needs: how many."""
        room = 0.98 * self.figure.bbox.width  # pixels
        renderer = self.figure.canvas.get_renderer()
        lines = [text] if text else []
        while True:
            self.caption.set_text(tex_safe("\n".join(lines)))
            wide = self.caption.get_window_extent(renderer).width
            longest = max((len(line) for line in lines), default=0)
            if wide <= room or longest <= 1:
                return len(lines)
            lines = textwrap.wrap(text, max(1, int(longest * room / wide)), break_on_hyphens=False)


@functools.cache
def _process_curve() -> LearningCurve:
    return LearningCurve()


def prepare_learning_curve(dpi: int) -> None:
    """This process's `LearningCurve`, built and drawn once before a run's history arrives."""
    _process_curve().prepare(dpi)


def learning_curve(history: Sequence[EpochMetrics], caption: str, dpi: int) -> Figure:
    """The run's learning curve, captioned, on this process's one `LearningCurve`: the figure is
    drawn again by the next call, so save it first, as laid out (`save_run_figures`)."""
    return _process_curve().draw(history, caption, dpi)


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


def run_figures(cfg: PlotsConfig, trained: TrainedPictures | None) -> dict[str, Figure]:
    """The pictures of a trained model: its kernels and what its layers see (`trained` is None
    when the config asks for none of them)."""
    figures: dict[str, Figure] = {}
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
        make_folder(folder)  # a real folder, never a link planted there
    for name, fig in figures.items():
        if caption:
            add_caption(fig, caption)
        save_figure(fig, folder / name, dpi)
    return [folder / name for name in figures]


def save_run_figures(
    folder: Path,
    cfg: PlotsConfig,
    history: Sequence[EpochMetrics],
    trained: TrainedPictures | None,
    caption: str,
    dpi: int,
) -> list[Path]:
    """The pictures of a trained run into `folder`: its learning curve, then `run_figures`."""
    written = []
    if cfg.learning_curve and history:
        make_folder(folder)  # a real folder, never a link planted there
        written.append(folder / "learning_curve.png")
        save_figure(learning_curve(history, caption, dpi), written[0], dpi, crop=False)
    return written + save_figures(folder, run_figures(cfg, trained), caption, dpi)
