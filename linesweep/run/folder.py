"""A run's folder is its own: checked before Hydra writes into it, cleared only on purpose.

Hydra writes first (`hydra.core.utils.run_job`): it makes the folder, opens `train.log` and saves
`.hydra/*.yaml`, all before the task runs and through whatever already stands at those names.
So linesweep's callback (callbacks.py, `on_run_start` and `on_multirun_start`) checks the folder
before that, with links never followed (lstat):

* a name a run writes (`.hydra/` and its files, `train.log`, `summary.json`, `metrics.csv`,
  `shapes.yaml`, `model.pt`, `plots/`, `replicates/`, `tensorboard/`) that holds a symbolic
  link, a FIFO or a device, or a file where a folder belongs (or a folder where a file does), is
  refused in one line naming it;
* a folder that holds another run's record (any of those names) is refused in one line, naming
  the key that replaces it on purpose: `overwrite=true`. That deletes exactly the names above
  (a planted link is removed, never followed; inside `.hydra/`, `plots/`, `replicates/` and
  `tensorboard/` only the files a run writes there), and refuses a folder that still holds
  something else afterwards, or that holds files with a run's names but no run's record
  (`summary.json`, `.hydra/`...: your own `model.pt` in a project folder is not a run).

The folder itself (`hydra.run.dir`, a job's folder in `hydra.sweep.dir`) must not be a link
either: a run writes only into a folder of its own. The path leading to it is the user's (an
`outputs` that is a link to a larger disk is fine).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from linesweep.core.errors import ConfigError
from linesweep.core.files import what_is
from linesweep.core.record import METRICS, PLOTS, REPLICATES, SHAPES, SUMMARY, WEIGHTS

FOLDER, FILE = "a folder", "a file"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
# Inside a run's folders, the files a run writes there (and nothing else is deleted).
WRITTEN_INSIDE = {
    PLOTS: re.compile(r"[\w.-]+\.png"),
    REPLICATES: re.compile(r"model_\d+\.pt"),
    "tensorboard": re.compile(r"events\.out\.tfevents\..+"),
}
OVERWRITE_KEY = "overwrite"
# What makes a folder another run's, not only files with a run's names: overwrite clears only it.
RECORD = frozenset({SUMMARY, METRICS, SHAPES, ".hydra"})


@dataclass(frozen=True)
class RunFolder:
    """The names a run writes in `path`: Hydra's (its config folder, its log) and linesweep's."""

    path: Path
    job_name: str = "train"
    hydra_subdir: str | None = ".hydra"

    def names(self) -> dict[str, str]:
        """Each name a run writes, and what it must be: a folder or a file."""
        names = {
            f"{self.job_name}.log": FILE,
            SUMMARY: FILE,
            METRICS: FILE,
            SHAPES: FILE,
            WEIGHTS: FILE,
            PLOTS: FOLDER,
            REPLICATES: FOLDER,
            "tensorboard": FOLDER,
        }
        if self.hydra_subdir:
            names[self.hydra_subdir] = FOLDER
        return names

    def inside(self, name: str) -> re.Pattern[str] | None:
        """Which files of the folder `name` a run writes (None: not one of its folders)."""
        if name == self.hydra_subdir:
            return re.compile("|".join(re.escape(f) for f in HYDRA_FILES))
        return WRITTEN_INSIDE.get(name)


def check_run_folder(folder: RunFolder, key: str, overwrite: bool) -> list[Path]:
    """Refuse (a ConfigError naming `key`) a folder a run must not write into; return what
    `overwrite` deletes there with `clear` (nothing found: an empty list).

    A link at a run's name, anywhere in its folders, is refused, or with `overwrite` removed.
    Something a run never makes (a FIFO, a file where its folder belongs, a stranger's file in
    `plots/` when asked to overwrite) is always refused: `overwrite` deletes only a run's files.
    """
    path = folder.path
    found = what_is(path)
    if found is None:
        return []
    if found != FOLDER:
        real = f", or the folder itself ({key}={os.path.realpath(path)})" if _is_link(found) else ""
        raise ConfigError(
            key, str(path), f"a folder of the run's own, and it is {found}",
            f"give {key} a new folder{real}",
        )  # fmt: skip
    taken: list[Path] = []
    for name, kind in folder.names().items():
        entry, what = path / name, what_is(path / name)
        if what is None:
            continue
        _judge(entry, what, kind, key, path, overwrite)
        taken.append(entry)
        pattern = folder.inside(name)
        if what == FOLDER and pattern is not None:
            for child in sorted(entry.iterdir()):
                inner = what_is(child)
                if inner is None or (inner == FILE and pattern.fullmatch(child.name)):
                    continue
                if _is_link(inner) or not overwrite:
                    _judge(child, inner, FILE, key, path, overwrite)
                    continue
                raise ConfigError(
                    key, str(path), f"a run's folder that {OVERWRITE_KEY}=true may clear, and "
                    f"{child} is {inner} that no run writes", f"move it away, or give {key} a "
                    "new folder",
                )  # fmt: skip
    files = [p for p in taken if not _is_link(what_is(p) or "")]
    if overwrite and files and not any(p.name in RECORD for p in files):
        raise ConfigError(
            key, str(path), f"a run's folder that {OVERWRITE_KEY}=true may clear, and it holds "
            f"{', '.join(p.name for p in files)} but no run's record (summary.json, .hydra/)",
            "move those away, or give it a new folder",
        )  # fmt: skip
    if taken and not overwrite:
        shown = ", ".join(p.name for p in taken)
        raise ConfigError(
            key, str(path), f"a folder of the run's own, and it holds another run ({shown})",
            f"give {key} a new folder, or add {OVERWRITE_KEY}=true to replace that run (its "
            "files are deleted first)",
        )  # fmt: skip
    return taken


def _is_link(what: str) -> bool:
    return what.startswith("a symbolic link")


def _judge(entry: Path, what: str, kind: str, key: str, run: Path, overwrite: bool) -> None:
    """Refuse `entry` unless it is what a run makes there (or a link that `overwrite` removes)."""
    if what == kind or (overwrite and _is_link(what)):
        return
    fix = (
        f"remove {entry}{' (or add overwrite=true)' if _is_link(what) else ''}, or give {key} "
        "a new folder"
    )
    raise ConfigError(
        key, str(run), f"a folder whose files are the run's own, and {entry} is {what}", fix
    )


def clear(folder: RunFolder, taken: list[Path]) -> None:
    """Delete what `check_run_folder` found, links never followed: a link or a file is
    unlinked; a folder loses the files a run writes there (and links), then itself."""
    for entry in taken:
        what = what_is(entry)
        if what is None:
            continue
        if what != FOLDER:
            entry.unlink()
            continue
        for child in entry.iterdir():
            inner = what_is(child)
            if inner is not None and inner != FOLDER:
                child.unlink()  # checked: a run's file, or a link
        entry.rmdir()
