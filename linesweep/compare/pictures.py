"""The best run's own pictures: the kernels and feature maps it drew into its plots/ folder.

compare shows what the run drew and draws nothing of a run itself: rebuilding a model from its
weights is the run's business, not the comparison's. A run trained with `plots=light` (a sweep's
default) or `plots=none` drew none of them; the report says so in one line, with the command that
draws them from the run's config and weights into its plots/ (`python -m linesweep.draw`), and
a later comparison shows them.

A picture that is there but is no regular file inside the run folder (a symbolic link, a FIFO,
a file over the size cap) is not read, and is one warning line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from linesweep.compare.row import Run
from linesweep.core.record import PICTURE_CAP, PLOTS
from linesweep.core.safe_read import Unreadable, check_regular

# What a trained model shows, as the run names them (linesweep.run.plots.run_figures).
RUN_PICTURES = (
    "kernels_conv1.png",
    "kernels_conv2.png",
    "feature_maps.png",
    "flattened_activations.png",
)


def draw_command(folder: Path) -> str:
    """`python -m linesweep.draw FOLDER`, quoted for a shell."""
    return f"python -m linesweep.draw {shlex.quote(str(folder))}"


@dataclass(frozen=True)
class RunPictures:
    """Which of RUN_PICTURES a run folder holds, which it lacks, and why any is not shown."""

    folder: Path
    found: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # names, in RUN_PICTURES order
    problems: list[str] = field(default_factory=list)  # one warning line each

    @property
    def command(self) -> str:
        """The command that draws the missing pictures, for the terminal (the folder as given)."""
        return draw_command(self.folder)

    def missing_line(self) -> str | None:
        """One line on what the run did not draw and how to draw it, for the report (the
        folder absolute: the report is read from elsewhere); None when nothing lacks."""
        if not self.missing:
            return None
        if self.found:
            what = f"The run did not draw {', '.join(self.missing)}"
        else:
            what = "The run drew no kernels or feature maps (as plots=light and plots=none do)"
        command = draw_command(self.folder.absolute())
        return f"{what}: {command} draws them into its plots/ for the next comparison."


def run_pictures(run: Run) -> RunPictures:
    """The pictures in `run`'s plots/ that compare may show, and the ones it lacks."""
    pictures = RunPictures(run.folder)
    for name in RUN_PICTURES:
        path = run.folder / PLOTS / name
        try:
            check_regular(path, run.folder, PICTURE_CAP)  # no link out, no FIFO
        except FileNotFoundError:
            pictures.missing.append(name)
        except (OSError, Unreadable) as err:
            pictures.missing.append(name)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            pictures.problems.append(f"{PLOTS}/{name} is not shown ({reason})")
        else:
            pictures.found.append(path)
    return pictures
