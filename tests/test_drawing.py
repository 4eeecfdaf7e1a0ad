"""A run's pictures drawn by a second process while it trains (linesweep/run/drawing.py).

- the forked process writes exactly the PNGs, byte for byte, that drawing in-process writes;
- it runs no torch operation, so it cannot hang on OpenMP threads its parent used before the fork;
- a picture that fails to draw fails the run with the drawing's own exception and traceback;
- a drawing process that dies is reported, never waited for forever;
- a run that ends without finishing (an error, an interrupt) leaves no drawing process behind.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest
import torch

from linesweep.core.metrics import EpochMetrics
from linesweep.run import plots
from linesweep.run.config import DataConfig, ModelConfig, PlotsConfig
from linesweep.run.data import make_split
from linesweep.run.drawing import Drawing, DrawingTraceback, ForkedDrawing, drawing_beside
from linesweep.run.model import build_model
from linesweep.run.shapes import plan_cnn

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the drawing process forks")

EVERY_PICTURE = PlotsConfig(dpi=40)  # all six pictures, small


def history(epochs: int = 3) -> list[EpochMetrics]:
    return [
        EpochMetrics(
            epoch=e,
            train_cost=1.0 / e,
            train_loss=0.1 / e,
            val_loss=0.2 / e,
            val_accuracy=0.5 + 0.1 * e,
            epoch_s=0.1,
            elapsed_s=0.1 * e,
        )
        for e in range(1, epochs + 1)
    ]


@pytest.fixture
def run_parts():
    model_cfg = ModelConfig()
    model = build_model(model_cfg, plan_cnn(model_cfg, 11), seed=3)
    return model, make_split(DataConfig(), 40, 1)


def test_the_drawing_process_writes_the_in_process_pictures_byte_for_byte(tmp_path, run_parts):
    model, train = run_parts
    inline = Drawing(tmp_path / "inline", EVERY_PICTURE, train, model, "runs/a: x=1")
    forked = ForkedDrawing(tmp_path / "forked", EVERY_PICTURE, train, model, "runs/a: x=1")
    # Trained after the fork: the drawing process must draw the weights it is sent.
    model.conv1.weight.data.mul_(-2.0)
    expected = inline.finish(history())
    try:
        drawn = forked.finish(history())
    finally:
        forked.close()
    assert sorted(p.name for p in drawn) == sorted(p.name for p in expected)
    assert len(drawn) == 6
    for path in drawn:
        assert path.read_bytes() == (tmp_path / "inline" / path.name).read_bytes(), path.name


def test_a_parent_that_ran_torch_on_several_threads_does_not_hang_the_drawing(tmp_path, run_parts):
    # libgomp's thread team does not survive a fork: a torch operation in the forked process
    # would wait for it forever (seen: a convolution in the feature maps, under pytest).
    model, train = run_parts
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.rand(64, 8, 64, 64)
        torch.nn.functional.conv2d(x, torch.rand(8, 8, 3, 3))  # starts the OpenMP team
        with drawing_beside(tmp_path, EVERY_PICTURE, train, model, "") as drawing:
            drawn = drawing.finish(history())
    finally:
        torch.set_num_threads(threads)
    assert len(drawn) == 6


def test_a_picture_that_fails_to_draw_fails_the_run_with_its_traceback(
    tmp_path, run_parts, monkeypatch
):
    model, train = run_parts

    def broken(weight, title):
        raise ValueError(f"cannot draw {title}")

    monkeypatch.setattr(plots, "kernels", broken)  # the forked process inherits the patch
    with drawing_beside(tmp_path, EVERY_PICTURE, train, model, "") as drawing:
        assert isinstance(drawing, ForkedDrawing)
        with pytest.raises(ValueError, match=r"^cannot draw conv1 kernels$") as raised:
            drawing.finish(history())
    assert isinstance(raised.value.__cause__, DrawingTraceback)
    assert "in broken" in str(raised.value.__cause__)  # the drawing process's own traceback


def test_a_drawing_process_that_dies_is_reported_not_waited_for(tmp_path, run_parts):
    model, train = run_parts
    with drawing_beside(tmp_path, EVERY_PICTURE, train, model, "") as drawing:
        os.kill(drawing._process.pid, signal.SIGKILL)
        drawing._process.join()
        with pytest.raises(RuntimeError, match=r"drawing process died \(exit code -9\)"):
            drawing.finish(history())


def test_a_run_that_ends_unfinished_leaves_no_drawing_process(tmp_path, run_parts):
    model, train = run_parts
    with (
        pytest.raises(KeyboardInterrupt),
        drawing_beside(tmp_path, EVERY_PICTURE, train, model, "") as drawing,
    ):
        process = drawing._process
        raise KeyboardInterrupt  # as Ctrl-C during training
    assert not process.is_alive()
    assert process.exitcode == 0
    assert {p.name for p in tmp_path.iterdir()} <= {"samples.png"}  # only what needs no model


def test_no_picture_asked_forks_nothing(tmp_path, run_parts):
    model, train = run_parts
    nothing = PlotsConfig(
        learning_curve=False, kernels=False, samples=False, feature_maps=False, activations=False
    )
    with drawing_beside(tmp_path, nothing, train, model, "") as drawing:
        assert type(drawing) is Drawing
        assert drawing.finish(history()) == []


def test_no_picture_asked_loads_no_plotting(tmp_path, run_parts, monkeypatch):
    """matplotlib (linesweep.run.plots, about 0.4 s to import) only for a run that draws: every
    `plots=none` run and trial process used to import it to draw nothing."""
    import linesweep.run

    model, train = run_parts
    nothing = PlotsConfig(
        learning_curve=False, kernels=False, samples=False, feature_maps=False, activations=False
    )
    monkeypatch.delattr(linesweep.run, "plots")
    monkeypatch.setitem(sys.modules, "linesweep.run.plots", None)  # importing it fails now
    assert Drawing(tmp_path / "plots", nothing, train, model, "").finish(history()) == []
    assert not (tmp_path / "plots").exists()
