"""A finished sweep, run once for the whole test session and copied into each test that needs it.

Tests that damage a sweep's folder (its journal, its lock) start from a finished sweep; each
used to run its own, about 3-4 s of CPU for the same folder. `copy_sweep` runs
`python -m linesweep.train -m OVERRIDES` once per set of overrides (pytest-xdist's workers
share it through a lock file beside their own temporary folders), then copies the folder to the
test's. The sweep ran in a folder of the same name from a parent folder of its own, as the tests
run theirs (`cwd=folder.parent`); that parent's path, written in the journal, trials.csv and
the logs, is rewritten to the test's, so the copy reads as if the sweep had run there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

BINARY = {".pt", ".png"}  # written by torch and matplotlib: no path inside, never rewritten


def copy_sweep(shared: Path, folder: Path, *overrides: str) -> None:
    """Make `folder` what `python -m linesweep.train -m OVERRIDES hydra.sweep.dir=FOLDER`, run
    from `folder.parent`, leaves; the sweep itself runs once under `shared`."""
    digest = hashlib.sha1("\0".join([folder.name, *overrides]).encode()).hexdigest()[:12]
    home = shared / f"prepared-sweep-{digest}"
    with (shared / f"prepared-sweep-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker runs it; the others wait, then copy
        finished = home / ".finished"
        if not finished.exists():
            shutil.rmtree(home, ignore_errors=True)  # a run that failed earlier
            home.mkdir()
            command = [sys.executable, "-m", "linesweep.train", "-m", *overrides,
                       f"hydra.sweep.dir={home / folder.name}"]  # fmt: skip
            done = subprocess.run(command, cwd=home, capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout + done.stderr
            finished.touch()
    shutil.copytree(home / folder.name, folder, symlinks=True)
    _rewrite(folder, str(home).encode(), str(folder.parent).encode())


def _rewrite(folder: Path, old: bytes, new: bytes) -> None:
    """Every `old` in the files under `folder` replaced by `new`, their times kept."""
    for path in folder.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix in BINARY:
            continue
        data = path.read_bytes()
        if old in data:
            info = path.stat()
            path.write_bytes(data.replace(old, new))
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
