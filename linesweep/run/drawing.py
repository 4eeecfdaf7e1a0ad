"""A run's pictures, drawn by a second process while the model trains.

The default command draws six PNGs. Importing matplotlib and drawing them inline cost about
1.3-2 s, a quarter to a third of the whole command (benchmarks/README.md), while the training
loop keeps one core busy and the other waits.
So a run forks a drawing process before it trains (`drawing_beside`): that process imports
matplotlib, draws the pictures of the data (the sample images) and builds the learning curve's
figure during training, then draws the rest as soon as the run hands it the history and what
the trained model shows (`Drawing.finish`). The run waits for it before it records its end, so
a finished run always has all its pictures, and a picture that fails to draw fails the run as it
did when drawn inline.

The drawing process runs no torch operation: everything it draws arrives as numpy arrays
(`samples_by_class`, `TrainedPictures`), worked out here in the run's process. A process forked
from one whose OpenMP threads have run cannot use them (libgomp waits forever for a team that
did not survive the fork), so torch there would hang where the parent had used several threads.
It is forked, so only where fork is safe: Linux, outside a pool's daemonic worker. Elsewhere,
and when the config asks for no picture, everything is drawn in this process after training.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import re
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from torch import nn

from linesweep.core.metrics import EpochMetrics
from linesweep.run.config import PlotsConfig
from linesweep.run.data import Split
from linesweep.run.pictures import TrainedPictures, samples_by_class

CAPTION_WIDTH = 110  # characters: about the width of the narrowest figure at 8 points
_LONG_DECIMAL = re.compile(r"[-+]?\d*\.\d{5,}(?:[eE][-+]?\d+)?")


def run_caption(run_dir: Path, overrides: Sequence[str] | None) -> str:
    """The line every run PNG carries: the run's folder (last two parts) and its overrides.

    Too long, it keeps the last overrides whole and drops the first: a sweep's trial lists the
    command's fixed overrides first and its sampled values last, the ones that tell its
    pictures apart.
    """
    where = "/".join(Path(run_dir).parts[-2:])
    parts = [_shorter(str(o)) for o in overrides or []]
    text = f"{where}: {' '.join(parts) or '(the defaults)'}"
    if len(text) <= CAPTION_WIDTH:
        return text
    kept: list[str] = []
    room = CAPTION_WIDTH - len(f"{where}: … ")
    while parts and len(" ".join([parts[-1], *kept])) <= room:
        kept.insert(0, parts.pop())
    if not kept:  # one override longer than the line
        return text[: CAPTION_WIDTH - 1] + "…"
    return f"{where}: … {' '.join(kept)}"


def _shorter(override: str) -> str:
    """optimizer.lr=0.006431172050131994 -> optimizer.lr=0.006431 (a sampled float, 4 digits)."""
    key, sep, value = override.partition("=")
    if sep and _LONG_DECIMAL.fullmatch(value):
        return f"{key}={float(value):.4g}"
    return override


# ---------------------------------------------------------------- drawing them
class DrawingTraceback(Exception):
    """Where the drawing process failed: the cause of the error raised again in the run (as
    concurrent.futures chains a worker's traceback)."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


class Drawing:
    """Draws everything at `finish`, in this process: the fallback, and the reference."""

    def __init__(
        self, folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
    ) -> None:
        self.folder, self.cfg, self.train, self.model, self.caption = (
            folder, cfg, train, model, caption,
        )  # fmt: skip
        self.samples = samples_by_class(train) if cfg.samples else []

    def finish(self, history: Sequence[EpochMetrics]) -> list[Path]:
        """Every picture the config asks for, drawn from the trained model; the files written."""
        if not self.cfg.asked:
            return []  # nothing to draw: matplotlib is not even loaded
        from linesweep.run import plots  # matplotlib loads only when a run plots

        figures = plots.data_figures(self.cfg, self.samples)
        files = plots.save_figures(self.folder, figures, self.caption, self.cfg.dpi)
        trained = self._trained()
        return files + plots.save_run_figures(
            self.folder, self.cfg, history, trained, self.caption, self.cfg.dpi
        )

    def close(self) -> None:
        """Release what `finish` did not (nothing, in this process)."""

    def _trained(self) -> TrainedPictures | None:
        needed = self.cfg.kernels or self.cfg.feature_maps or self.cfg.activations
        return TrainedPictures.of(self.model, self.train) if needed else None


class ForkedDrawing(Drawing):
    """Draws in a forked process: the data's pictures at once, the model's when `finish`ed."""

    def __init__(
        self, folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
    ) -> None:
        super().__init__(folder, cfg, train, model, caption)
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=self._draw, args=(child_end, self._conn), name="linesweep-drawing", daemon=True
        )
        self._process.start()
        child_end.close()

    def finish(self, history: Sequence[EpochMetrics]) -> list[Path]:
        try:
            self._conn.send((list(history), self._trained()))  # numpy arrays and floats only
            kind, payload = self._conn.recv()
        except (EOFError, BrokenPipeError):
            self._process.join()
            raise RuntimeError(
                f"the drawing process died (exit code {self._process.exitcode}) before the plots "
                f"in {self.folder} were written"
            ) from None
        self._process.join()
        if kind == "error":  # the drawing's own exception, so that a full disk reads as one
            error, where = payload
            raise error from DrawingTraceback(where)
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

            figures = plots.data_figures(self.cfg, self.samples)
            files = plots.save_figures(self.folder, figures, self.caption, self.cfg.dpi)
            if self.cfg.learning_curve:  # while the model trains: the end redraws it (~25 ms less)
                plots.prepare_learning_curve(self.cfg.dpi)
            try:
                history, trained = conn.recv()
            except EOFError:
                return  # the run ended without a trained model: nothing more to draw
            files += plots.save_run_figures(
                self.folder, self.cfg, history, trained, self.caption, self.cfg.dpi
            )
            conn.send(("ok", files))
        except BaseException as error:  # raised again in the run, which fails with it
            with contextlib.suppress(OSError):  # a broken pipe: the run is gone, nobody to tell
                self._report(conn, error, traceback.format_exc())

    @staticmethod
    def _report(conn: Connection, error: BaseException, where: str) -> None:
        try:
            conn.send(("error", (error, where)))
        except (TypeError, AttributeError, pickle.PicklingError):  # an error that does not pickle
            conn.send(("error", (RuntimeError(f"drawing the run's plots failed: {error}"), where)))


@contextmanager
def drawing_beside(
    folder: Path, cfg: PlotsConfig, train: Split, model: nn.Module, caption: str
) -> Iterator[Drawing]:
    """A `Drawing` of the run's pictures into `folder`, started now and finished by the run."""
    # A daemonic process (a pool's worker) may not have children: it draws in-process.
    forked = cfg.asked and sys.platform == "linux" and not multiprocessing.current_process().daemon
    drawing = (ForkedDrawing if forked else Drawing)(folder, cfg, train, model, caption)
    try:
        yield drawing
    finally:
        drawing.close()
