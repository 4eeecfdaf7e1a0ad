"""The output folder of a comparison: what compare may write, replace and delete there.

compare never deletes or overwrites a file it did not write. It lists what it wrote in the
folder's manifest, `.linesweep-compare.json`, and a later comparison into the same folder
replaces (or, when it no longer writes it, deletes) only what that manifest lists. Refused, with
one line, before anything is read or written:

- a folder inside a run being compared (`compare RUN --out RUN` once deleted the run's plots);
- a symbolic link, for the folder or its plots/ (a shared sweep could point its compare/
  anywhere);
- a folder that exists, is not empty and has no manifest;
- a manifest compare did not write (it may list only compare's own names: table.csv, table.md,
  report.html and plots/<name>.png), and a file compare would write over that it does not list.

`--no-plots` leaves plots/ as it is: nothing there is deleted, and the manifest keeps listing it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from linesweep.compare.console import UsageError
from linesweep.core.files import write_json
from linesweep.core.safe_read import MiB, Unreadable, load_json, read_text

MANIFEST = ".linesweep-compare.json"
TABLES = ("table.csv", "table.md")
REPORT = "report.html"
PLOTS = "plots"
_OWN_NAME = re.compile(r"table\.csv|table\.md|report\.html|plots/[^/\\\0.][^/\\\0]*\.png")


@dataclass
class OutputFolder:
    """A folder compare may write into, and what its manifest said compare wrote there before."""

    path: Path
    previous: list[str]  # names relative to `path`, as the manifest lists them

    @classmethod
    def claim(
        cls, path: Path, runs: Sequence[Path], *, given: bool, plots: bool, report: bool
    ) -> OutputFolder:
        """Check that compare may write into `path`; UsageError with the one line if not.

        `given`: the user named it with --out (else it is the default); `plots` and `report`:
        whether this comparison writes plots/ and report.html.
        """
        label = f"--out {path}" if given else f"the output folder {path} (--out to choose)"
        _refuse_inside_runs(label, path, runs)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return cls(path, [])
        except OSError as err:
            raise UsageError(f"cannot write the comparison into {path}: {err.strerror}") from None
        if stat.S_ISLNK(info.st_mode) or _is_link(path / PLOTS):
            where = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "its plots/ is a link"
            raise UsageError(f"{label}: {where}; give the folder it points to")
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"cannot write the comparison into {path}: Not a directory")
        entries = set(os.listdir(path))
        if not entries:
            return cls(path, [])
        if MANIFEST not in entries:
            raise UsageError(
                f"{label}: holds files compare did not write (it has no {MANIFEST}); "
                "give a new or empty folder"
            )
        previous = _read_manifest(label, path)
        ours = set(previous)
        will_write = [*TABLES, *([REPORT] if report else [])]
        if plots and PLOTS in entries:
            if not (path / PLOTS).is_dir():
                raise UsageError(f"{label}: its {PLOTS} is not a folder; move it")
            will_write += [f"{PLOTS}/{name}" for name in sorted(os.listdir(path / PLOTS))]
        for name in will_write:
            if name not in ours and os.path.lexists(path / name):
                raise UsageError(
                    f"{label}: {name} is not a file compare wrote; "
                    "move it, or give a new or empty folder"
                )
        return cls(path, previous)

    def kept_plots(self, keep_plots: bool) -> list[str]:
        """The previous plots that stay listed (`--no-plots` keeps them as they are)."""
        if not keep_plots:
            return []
        return [
            name for name in self.previous
            if name.startswith(f"{PLOTS}/") and os.path.lexists(self.path / name)
        ]  # fmt: skip

    def remove_stale(self, keep: Sequence[str]) -> None:
        """Delete what the previous manifest listed and this comparison did not write again.

        Called once the new files are in place (each written atomically over its old one), so
        that an interrupted comparison leaves the previous one's report and plots, not nothing.
        """
        for name in set(self.previous) - set(keep):
            target = self.path / name
            if os.path.lexists(target) and not target.is_dir():  # unlinks a link, not its target
                target.unlink()

    def record(self, names: Sequence[str]) -> None:
        """Write the manifest: these files (relative names) are compare's to replace next time."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(
            self.path / MANIFEST,
            {"written_by": "python -m linesweep.compare", "files": sorted(set(names))},
        )


def _refuse_inside_runs(label: str, path: Path, runs: Sequence[Path]) -> None:
    target = path.resolve()
    for run in runs:
        folder = run.resolve()
        if target == folder or folder in target.parents:
            raise UsageError(
                f"{label}: inside the run folder {run}, which is being compared; "
                "give a folder outside the runs"
            )


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_manifest(label: str, path: Path) -> list[str]:
    """The names a manifest lists; UsageError for one compare cannot have written."""
    try:
        data = load_json(read_text(path / MANIFEST, path, 1 * MiB))
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise Unreadable("no list of files")
        odd = next((f for f in files if not _OWN_NAME.fullmatch(f)), None)
        if odd is not None:
            raise Unreadable(f"it lists {odd[:60]!r}")
    except (OSError, Unreadable) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(
            f"{label}: its {MANIFEST} was not written by compare ({reason}); "
            "give a new or empty folder"
        ) from None
    return files
