"""A run's learning curve (linesweep/run/plots.py): fixed margins, one figure per process.

- the PNG is the figure's size at its dpi, and everything it shows lies inside it, for the widest
  labels a curve can have: six-digit costs, a log axis over eight decades, an offset written
  above the cost axis, a thousand epochs, a caption wider than the figure (wrapped);
- the caption sits above the title, and no two of the captions, titles and labels overlap;
- a figure redrawn for a run is the figure drawn new for it, byte for byte: nothing of the run
  drawn before remains (its scale, its limits, its caption's lines), nor of the empty drawing
  that prepared it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linesweep.core.files import save_figure
from linesweep.core.metrics import EpochMetrics
from linesweep.run import plots
from linesweep.run.config import PlotsConfig
from linesweep.run.drawing import run_caption

DPI = 80  # plots=light, what a sweep's runs draw
CURVE_ONLY = PlotsConfig(
    learning_curve=True, kernels=False, samples=False, feature_maps=False, activations=False
)


def history(costs: list[float], final_accuracy: float = 0.95) -> list[EpochMetrics]:
    n = len(costs)
    return [
        EpochMetrics(
            epoch=e + 1,
            train_cost=cost,
            train_loss=0.1,
            val_loss=0.2,
            val_accuracy=0.5 + (final_accuracy - 0.5) * e / max(1, n - 1),
            epoch_s=0.1,
            elapsed_s=0.1 * (e + 1),
        )
        for e, cost in enumerate(costs)
    ]


SHORT = run_caption(Path("outputs/sweeps/lr/3"), ["optimizer.lr=0.001"])
OVERRIDES = "model.out_1=7 model.out_2=5 optimizer.lr=0.02195773446539457 optimizer=sgd"
OVERRIDES += " trainer.batch_size=20 optimizer.momentum=0.9 data.N_images=4000"
# 110 characters (run_caption's most): about 570 pixels, of a figure 480 wide at dpi 80
LONG = run_caption(Path("outputs/sweeps/channels_lr/17"), OVERRIDES.split())
WIDEST = run_caption(Path("outputs/2026-01-01/12-00-00"), ["W" * 100])  # one word, 900 pixels
CURVES = {
    "a typical run": (history([100 / e + 3 for e in range(1, 11)]), SHORT),
    "six-digit costs": (history([120_000 - 5_000 * e for e in range(10)]), SHORT),
    "eight decades, on a log axis": (history([1e4 / 10**e for e in range(9)]), LONG),
    "a stuck run: an offset above the axis": (
        history([693.147 + 0.001 * (e % 3) for e in range(10)], 0.5),
        SHORT,
    ),
    "costs in the tens of millions": (history([3e7 - 1e5 * e for e in range(10)]), LONG),
    "a thousand epochs": (history([700 - 0.5 * e for e in range(1000)]), SHORT),
    "one epoch": (history([693.1]), SHORT),
    "a run that diverged at once": (history([float("nan")] * 5, 0.5), SHORT),
    "a caption of one word, twice the width": (history([70 - e for e in range(10)]), WIDEST),
}


def drawn_curve(tmp_path: Path, name: str) -> tuple[Path, dict]:
    """The curve saved as a run saves it, and the boxes (pixels) of its texts as drawn."""
    costs, caption = CURVES[name]
    (path,) = plots.save_run_figures(tmp_path / "plots", CURVE_ONLY, costs, None, caption, DPI)
    fig = plots.learning_curve(costs, caption, DPI)  # the same drawing again, to measure it
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    cost_ax, acc_ax = fig.axes
    texts = {
        "caption": next(t for t in fig.texts if t.get_text()),
        "title": cost_ax.title,
        "cost label": cost_ax.yaxis.label,
        "accuracy label": acc_ax.yaxis.label,
        "epoch label": cost_ax.xaxis.label,
        "cost offset": cost_ax.yaxis.offsetText,
    }
    boxes = {k: t.get_window_extent(renderer) for k, t in texts.items() if t.get_text()}
    return path, boxes


@pytest.mark.parametrize("name", CURVES)
def test_the_curve_keeps_everything_inside_its_png_and_nothing_overlaps(tmp_path, name):
    path, boxes = drawn_curve(tmp_path, name)
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape == (4 * DPI, 6 * DPI)  # the figure as laid out: not cropped, not grown
    for edge in (image[:2], image[-2:], image[:, :2], image[:, -2:]):
        assert (edge == 255).all(), "ink at the PNG's edge: something is cut off"
    for what, box in boxes.items():
        assert box.x0 >= 0 and box.x1 <= 6 * DPI and box.y0 >= 0 and box.y1 <= 4 * DPI, what
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), f"{a} overlaps {b}"
    assert boxes["caption"].y0 >= boxes["title"].y1  # the run's name above the title


def test_a_caption_wider_than_the_figure_is_wrapped_not_cut(tmp_path):
    costs, caption = CURVES["eight decades, on a log axis"]
    fig = plots.learning_curve(costs, caption, DPI)
    (shown,) = [t.get_text() for t in fig.texts if t.get_text()]
    assert "\n" in shown and shown.replace("\n", " ") == caption


REDRAWS = [  # (drawn before, drawn after) on one figure
    (None, "a typical run"),  # prepared (drawn empty), as a run's drawing process does
    ("eight decades, on a log axis", "a typical run"),  # log scale, then linear
    ("a typical run", "eight decades, on a log axis"),
    ("a caption of one word, twice the width", "a typical run"),  # three caption lines, then one
    ("a stuck run: an offset above the axis", "six-digit costs"),  # a raised title, then not
    ("costs in the tens of millions", "a run that diverged at once"),  # no finite cost: no limits
    ("a thousand epochs", "one epoch"),
]


@pytest.mark.parametrize(("before", "after"), REDRAWS)
def test_a_redrawn_curve_is_the_curve_drawn_new(tmp_path, before, after):
    def png(curve: plots.LearningCurve, name: str) -> bytes:
        costs, caption = CURVES[name]
        save_figure(curve.draw(costs, caption, DPI), tmp_path / "curve.png", DPI, crop=False)
        return (tmp_path / "curve.png").read_bytes()

    redrawn = plots.LearningCurve()
    if before is None:
        redrawn.prepare(DPI)
    else:
        png(redrawn, before)
    assert png(redrawn, after) == png(plots.LearningCurve(), after)
