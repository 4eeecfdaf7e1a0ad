"""Reading files from folders someone else wrote: a colleague's outputs, an archive, a shared disk.

Such a folder can hold anything, so every read here is bounded and stays inside a root:

- only regular files are opened: a symbolic link anywhere below the root is not followed (it
  could point at any file the user can read), and a FIFO, socket or device is never opened (a
  FIFO blocks forever, a device can act on open); the file is checked with lstat, opened with
  O_NOFOLLOW | O_NONBLOCK and checked again with fstat;
- each kind of file has a size cap (the caller's, e.g. `SUMMARY_CAP`), read up to cap + 1 bytes;
- JSON and YAML may nest at most `MAX_DEPTH` levels (Python's parsers recurse and would raise
  RecursionError) and YAML may hold at most `MAX_YAML_NODES` nodes and no anchors or aliases:
  `yaml.safe_load` alone expands an alias bomb of a few hundred bytes into billions of references;
- what they parse into is plain data (`plain`): dicts with string keys, lists, strings, bools,
  None, floats, and integers a float can hold (`MAX_INT`); a date becomes its ISO text.

Anything else raises `Unreadable` with a short reason (`FileNotFoundError` when the file is
simply missing), for the caller to turn into one warning line. A folder that changes while it is
read is outside this model: the threat is a static folder or archive, not a concurrent attacker.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

MiB = 1024 * 1024
MAX_DEPTH = 32  # linesweep's own JSON and YAML nest at most 5 levels (shapes.yaml's plan)
MAX_YAML_NODES = 100_000  # a run's config.yaml has ~100
MAX_INT = 2**53  # larger integers become floats: every consumer can then compare and plot them
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# libyaml's parser is ~10x faster than PyYAML's pure-Python one: it matters at 1,000 runs.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# O_NOFOLLOW: a link put in place since lstat fails (ELOOP); O_NONBLOCK: so does a FIFO's open.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a device",
    stat.S_ISBLK: "a device",
    stat.S_ISLNK: "a symbolic link, not followed",
}
_OPEN_EVENTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class Unreadable(ValueError):
    """A file that compare will not read, or cannot parse: the message is one short reason."""


def below(path: Path, root: Path) -> bool:
    """Whether `path` is reached from `root` through no symbolic link (`root` itself may be one).

    `path` must spell `root` first (root / "a" / "b"): each component after it is lstat-ed, so
    the check costs one system call per level below the root, not a full resolve().
    """
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return False
    folder = os.fspath(root)
    for part in parts:
        if part == "..":
            return False
        folder = os.path.join(folder, part)
        try:
            if stat.S_ISLNK(os.lstat(folder).st_mode):
                return False
        except FileNotFoundError:
            return True  # nothing further down to follow; the caller's open says "missing"
        except OSError:
            return False
    return True


def check_regular(path: Path, root: Path, cap: int | None) -> os.stat_result:
    """lstat `path` and require a regular file below `root`, reached through no link, of at
    most `cap` bytes (None: any size)."""
    info = os.lstat(path)  # FileNotFoundError: the caller's "no such file"
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS.items() if test(info.st_mode)), "not a file")
        raise Unreadable(f"is {kind}")
    if not below(path, root):
        raise Unreadable(f"is reached through a symbolic link out of {root}, not followed")
    if cap is not None and info.st_size > cap:
        raise Unreadable(f"is {info.st_size:,} bytes, over the {_size(cap)} compare reads")
    return info


def is_regular(path: Path, root: Path, cap: int | None) -> bool:
    """Whether `path` is a file `read_bytes` would read (for a file another library opens)."""
    try:
        check_regular(path, root, cap)
    except (OSError, Unreadable):
        return False
    return True


def read_bytes(path: Path, root: Path, cap: int) -> bytes:
    """The bytes of a regular file below `root`, at most `cap`; Unreadable otherwise."""
    before = check_regular(path, root, cap)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise Unreadable(f"cannot be opened ({err.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise Unreadable("changed while it was read")
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise Unreadable(f"is over the {_size(cap)} compare reads")
    return data


def read_text(path: Path, root: Path, cap: int) -> str:
    try:
        return read_bytes(path, root, cap).decode("utf-8")
    except UnicodeDecodeError as err:
        raise Unreadable(f"is not UTF-8 text (byte {err.start})") from None


def read_png(path: Path, root: Path, cap: int) -> bytes:
    """A PNG's bytes; Unreadable for anything that does not start like one."""
    data = read_bytes(path, root, cap)
    if not data.startswith(PNG_SIGNATURE):
        raise Unreadable("is not a PNG image")
    return data


# ---------------------------------------------------------------- parsing


def load_json(text: str) -> Any:
    """JSON as plain data; Unreadable when it nests deeper than MAX_DEPTH or does not parse."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)
    if depth > MAX_DEPTH:
        raise Unreadable(f"nests {depth} levels deep, over the {MAX_DEPTH} compare reads")
    try:
        return plain(json.loads(text))
    except (ValueError, RecursionError) as err:  # ValueError: also an integer of 4,300 digits
        raise Unreadable(_problem(err)) from None


def load_yaml(text: str) -> Any:
    """YAML as plain data; Unreadable for anchors or aliases, deep nesting, or a parse error.

    The event stream (an iterative parser in libyaml and in PyYAML alike) is checked before
    anything is built, so that neither an alias bomb nor deep nesting costs more than one pass.
    """
    try:
        depth = nodes = 0
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            kind = type(event)
            if kind in _CLOSE_EVENTS:
                depth -= 1
                continue
            if kind is yaml.AliasEvent or getattr(event, "anchor", None) is not None:
                raise Unreadable("uses YAML anchors or aliases, which compare does not expand")
            if kind in _OPEN_EVENTS:
                depth += 1
                if depth > MAX_DEPTH:
                    raise Unreadable(f"nests over the {MAX_DEPTH} levels compare reads")
            nodes += 1  # and a few stream and document events: a bound, not a count
            if nodes > MAX_YAML_NODES:
                raise Unreadable(f"holds over the {MAX_YAML_NODES:,} values compare reads")
        return plain(yaml.load(text, Loader=_YAML_LOADER))
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as err:
        if isinstance(err, Unreadable):
            raise
        # PyYAML's constructors raise more than YAMLError on odd scalars: ValueError for a date
        # like 2001-13-45 or an integer of 4,300 digits.
        raise Unreadable(_problem(err)) from None


def plain(value: Any) -> Any:
    """`value` as JSON-like data every consumer can sort, compare, print and plot without error.

    Recursive, but only over what `load_json`/`load_yaml` built: at most MAX_DEPTH levels.
    """
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if -MAX_INT <= value <= MAX_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    value = plain(key)
    return value if isinstance(value, str) else json.dumps(value)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n:,} bytes"


def _problem(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__
