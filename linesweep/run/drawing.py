"""A run's pictures, drawn by a second process while the model trains.

The default command draws six PNGs. Importing matplotlib and drawing them cost about 1.5 s, a
quarter of the whole command, and the training loop keeps one core busy while the other waits.
So a run forks a drawing process before it trains (`drawing_beside`): that process imports
matplotlib and draws the pictures that need only the data (the sample images) during training,
then draws the rest as soon as the run hands it the history and the trained weights
(`Drawing.finish`). The run waits for it before it records its end, so a finished run always
has all its pictures, and a picture that fails to draw fails the run as it did when drawn inline.

The process is forked (it inherits the data and the model's structure, nothing is pickled but
the weights and the history) and so exists only where fork is safe: Linux. Elsewhere, and when
the config asks for no picture, everything is drawn in this process after training, as before.
"""

from __future__ import annotations

import copy
import multiprocessing
import re
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import torch
from torch import nn

from linesweep.core.metrics import EpochMetrics
from linesweep.run.config import PlotsConfig
from linesweep.run.data import Split

CAPTION_WIDTH = 110  # characters: about the width of the narrowest figure at 8 points
_LONG_DECIMAL = re.compile(r"[-+]?\d*\.\d{5,}(?:[eE][-+]?\d+)?")


def run_caption(run_dir: Path, overrides: Sequence[str] | None) -> str:
    """The line every run PNG carries: the run's folder (last two parts) and its overrides."""
    where = "/".join(Path(run_dir).parts[-2:])
    shown = " ".join(_shorter(str(o)) for o in overrides or []) or "(the defaults)"
    text = f"{where}: {shown}"
    return text if len(text) <= CAPTION_WIDTH else text[: CAPTION_WIDTH - 1] + "…"


def _shorter(override: str) -> str:
    """optimizer.lr=0.006431172050131994 -> optimizer.lr=0.006431 (a sampled float, 4 digits)."""
    key, sep, value = override.partition("=")
    if sep and _LONG_DECIMAL.fullmatch(value):
        return f"{key}={float(value):.4g}"
    return override


class Drawing:
    """Draws everything at `finish`, in this process: the fallback, and the reference."""

    def __init__(
        self, folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
    ) -> None:
        self.folder, self.cfg, self.train, self.model, self.caption = (
            folder, cfg, train, model, caption,
        )  # fmt: skip

    def finish(self, history: Sequence[EpochMetrics]) -> list[Path]:
        """Every picture the config asks for, drawn from the trained model; the files written."""
        from linesweep.run import plots  # matplotlib loads only when a run plots

        return plots.save_run_plots(
            self.folder, self.cfg, history, self.model.cpu(), self.train, self.caption
        )

    def close(self) -> None:
        """Release what `finish` did not (nothing, in this process)."""


class ForkedDrawing(Drawing):
    """Draws in a forked process: the data's pictures at once, the model's when `finish`ed."""

    def __init__(
        self, folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
    ) -> None:
        super().__init__(folder, cfg, train, model, caption)
        self._skeleton = copy.deepcopy(model).cpu()  # the drawing process's model: never on a GPU
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=self._draw, args=(child_end, self._conn), name="linesweep-drawing", daemon=True
        )
        self._process.start()
        child_end.close()

    def finish(self, history: Sequence[EpochMetrics]) -> list[Path]:
        # Plain numpy arrays: a tensor sent through a multiprocessing pipe would cross as a
        # shared-memory handle once torch.multiprocessing is imported, not as its values.
        weights = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        try:
            self._conn.send((list(history), weights))
            kind, payload = self._conn.recv()
        except (EOFError, BrokenPipeError):
            self._process.join()
            raise RuntimeError(
                f"the drawing process died (exit code {self._process.exitcode}) before the plots "
                f"in {self.folder} were written"
            ) from None
        self._process.join()
        if kind == "error":
            raise RuntimeError(f"drawing the run's plots failed:\n{payload}")
        return payload

    def close(self) -> None:
        """Let the process go: it stops at the pipe's end once it has drawn what it started."""
        self._conn.close()
        self._process.join()

    def _draw(self, conn: Connection, parent_end: Connection) -> None:
        """The drawing process: the data's pictures, then the model's once the run sends them."""
        parent_end.close()  # so that the run's death reads as the pipe's end here
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            from linesweep.run import plots

            files = plots.save_figures(
                self.folder, plots.data_figures(self.cfg, self.train), self.caption, self.cfg.dpi
            )
            try:
                history, weights = conn.recv()
            except EOFError:
                return  # the run ended without a trained model: nothing more to draw
            self._skeleton.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            figures = plots.run_figures(self.cfg, history, self._skeleton, self.train)
            files += plots.save_figures(self.folder, figures, self.caption, self.cfg.dpi)
            conn.send(("ok", files))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


@contextmanager
def drawing_beside(
    folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
) -> Iterator[Drawing]:
    """A `Drawing` of the run's pictures into `folder`, started now and finished by the run."""
    asked = any((cfg.learning_curve, cfg.kernels, cfg.samples, cfg.feature_maps, cfg.activations))
    # A daemonic process (a pool's worker) may not have children: it draws in-process.
    forked = asked and sys.platform == "linux" and not multiprocessing.current_process().daemon
    drawing = (ForkedDrawing if forked else Drawing)(folder, cfg, train.to("cpu"), model, caption)
    try:
        yield drawing
    finally:
        drawing.close()
