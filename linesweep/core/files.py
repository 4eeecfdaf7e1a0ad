"""Files a run leaves behind, each written atomically: a reader sees the old file or the new one.

Every write goes to a temporary file in the same folder, which is closed (flushed) and then renamed
over the target (`os.replace` is atomic on one filesystem). A crash or a full disk mid-write leaves
the previous version intact and readable, never a torn result. (No fsync: a run writes a dozen
small files, and a power cut, the one case fsync covers, loses the run in progress anyway.)

Nothing is written through a link someone planted. A new file is created (`O_EXCL`: never an
existing path, never a link) and renamed over the target, which replaces a link there instead of
following it; a folder is made with `make_folder`, which accepts an existing folder only if it is
a real one; the one file opened in place, a run's log, is opened by `RunLogHandler` without
following a link and only if it is a regular file.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from linesweep.core.errors import ConfigError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that the file is either wholly old or wholly new."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 honours the umask, so results get the usual permissions (not 0600).
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """The error of a write, naming the file it was for (a failed write() names none; the
    temporary file's name means nothing to anyone)."""
    if err.errno is None or (err.filename == str(path) and err.filename2 is None):
        return err
    return OSError(err.errno, err.strerror, str(path))  # OSError picks the subclass of errno


class NotOwnPath(FileExistsError):
    """A path a run would write that is something it did not make: a link, a FIFO, a file where
    a folder belongs. Never followed or opened; the message says what it is."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(errno.EEXIST, f"{path} is {what}, not one a run makes", str(path))
        self.what = what

    def __str__(self) -> str:
        return str(self.strerror)


def what_is(path: Path) -> str | None:
    """What `path` itself is, links not followed: None if nothing is there."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file above it, say)
        return None
    if stat.S_ISLNK(info.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    for test, name in _KINDS:
        if test(info.st_mode):
            return name
    return "neither a file nor a folder"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISREG, "a file"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def make_folder(path: Path) -> Path:
    """Create the folder `path` in its existing parent, or accept a real folder already there.

    `os.mkdir` never follows a link; an existing path is accepted only if it is a folder itself
    (lstat): a link to one, or a file, is NotOwnPath.
    """
    path = Path(path)
    try:
        os.mkdir(path)
    except FileExistsError:
        found = what_is(path)
        if found != "a folder":
            raise NotOwnPath(path, found or "gone") from None
    return path


# A full or read-only disk, a file-size limit: no bug, the reason names the file.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class RunLogHandler(logging.FileHandler):
    """logging.FileHandler for a run's train.log: never through a link, never into a FIFO.

    Hydra opens a run's log itself (conf/hydra/job_logging/linesweep.yaml names this class).
    The file is appended to in place, as logging does; it is opened with O_NOFOLLOW (a link there
    is refused by the kernel) and O_NONBLOCK (a FIFO would otherwise wait for a reader forever),
    and kept only if it is a regular file. A disk that fills up stops the log with one line on
    stderr, not a "Logging error" traceback per record.
    """

    full = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.full:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        if isinstance(err, OSError) and err.errno in NO_ROOM:
            self.full = True
            print(
                f"warning: {self.baseFilename}: {err.strerror}; its log stops here", file=sys.stderr
            )
            return
        super().handleError(record)

    def _open(self):  # type: ignore[no-untyped-def]
        path = Path(self.baseFilename)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENXIO):  # a link; a FIFO nobody reads
                raise NotOwnPath(path, what_is(path) or "gone") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotOwnPath(path, what_is(path) or "gone")
        os.set_blocking(fd, True)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities by None: JSON has no spelling for them, and no result is NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


# libyaml's emitter where PyYAML was built with it (its wheels are): the same text as the
# pure-Python SafeDumper, about 4x sooner (a 128-trial sweep's 100 KB results: 25 ms, not 90).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write_yaml(path: Path, obj: Any) -> None:
    atomic_write_text(path, yaml.dump(json_safe(obj), Dumper=_DUMPER, sort_keys=False))


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    columns: list[str],
    spreadsheet_safe: bool = False,
) -> None:
    """A CSV with a header row; missing values are empty cells.

    `spreadsheet_safe`: a table people open in a spreadsheet (compare's table.csv, a study's
    trials.csv): every header and cell passes through `spreadsheet_cell`.
    """
    safe = spreadsheet_cell if spreadsheet_safe else _as_is
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe(c) for c in columns])
    for row in rows:
        writer.writerow([safe("" if row.get(c) is None else row.get(c)) for c in columns])
    atomic_write_text(path, buffer.getvalue())


def _as_is(value: Any) -> Any:
    return value


# What a spreadsheet may read as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell no spreadsheet runs as a formula: text that starts with = + - @, a tab or a
    carriage return gets a leading single quote, as OWASP recommends.

    A number is left as it is (-0.5, -1e-05, an int or float), so that numeric columns stay
    numbers: a spreadsheet reads a plain number as a number, never as a formula. Only a cell
    that is wholly a decimal number counts as one; `-1+2` or `-inf` is quoted.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        value = str(value)
    if not isinstance(value, str):
        return value  # int, float: written as Python writes numbers
    if value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def save_figure(fig: Any, path: Path, dpi: int, crop: bool = True) -> None:
    """A matplotlib figure as a PNG file, written atomically like every other result.

    Cropped to what is drawn (savefig's tight bounding box), so that a label or caption past the
    figure's edge is kept; that costs a second layout of every text. A figure laid out to hold
    everything inside its edges is saved as it is (`crop=False`: the run's learning curve).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if crop else None)
    atomic_write_bytes(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def ensure_writable_folder(folder: Path, key: str) -> None:
    """Create `folder` and prove a file can be written there, or raise a ConfigError naming `key`.

    Done before any work, so that a read-only disk or a typo costs nothing but a clear line.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
        # A new file or nothing: a link planted at the probe's name is never written through.
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            key, str(folder), "a folder this process can write", err.strerror
        ) from None
