"""Files a run leaves behind, each written atomically: a reader sees the old file or the new one.

Every write goes to a temporary file in the same folder, which is closed (flushed) and then renamed
over the target (`os.replace` is atomic on one filesystem). A crash or a full disk mid-write leaves
the previous version intact and readable, never a torn result. (No fsync: a run writes a dozen
small files, and a power cut, the one case fsync covers, loses the run in progress anyway.)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def write_yaml(path: Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(json_safe(obj), sort_keys=False))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    """A CSV with a header row; missing values are empty cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


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
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            key, str(folder), "a folder this process can write", err.strerror
        ) from None
