"""Property: whatever a shared folder holds, compare exits 0, with one warning line per bad run.

Hypothesis builds folders of runs, each spoiled in one way: random bytes, deep nesting, an alias
bomb, a field over csv's limit, a file over its size cap, a symbolic link to a private file, a
FIFO, a folder where a file belongs, or a value of the wrong type in any field compare reads of
summary.json, metrics.csv, shapes.yaml and .hydra/*.yaml. Some runs are only odd (config values
like `$\\foo$`, 10**400 or control characters; names with `$` and `<`): those are data, and get
no warning. compare runs in-process, under a time limit: a hang fails the test, it does not hang.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linesweep.compare.cli import main
from linesweep.compare.summary import STATUSES_WRITTEN
from tests.test_compare import fake_run
from tests.test_compare_hostile import ALIAS_BOMB, SECRET, time_limit

MiB = 1024 * 1024
CAPS = {"summary.json": MiB, "metrics.csv": 16 * MiB}  # YAML files: 1 MiB
FILES = (
    "summary.json",
    "metrics.csv",
    "shapes.yaml",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
)
YAML_FILES = FILES[2:]
PER_RUN_S = 2.0  # a loaded 2-core machine reads a run in milliseconds; seconds is a hang's bound
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Spoil:
    """One way to spoil one file of a run; `bad`: compare must say so in one warning line."""

    what: str
    file: str
    bad: bool
    write: Callable[[Path, Path], None]  # (run folder, private folder)

    def __repr__(self) -> str:
        return f"<{self.what} in {self.file}>"


def replace(path: Path, data: bytes | str) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


# ---------------------------------------------------------------- values of the wrong type

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400), 2**53 + 1, -1, 0]),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["$\\foo$", "\x1b[2J", "<script>x</script>", "../../etc/passwd", "complete"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v) -> bool:
    try:
        return is_number(v) and math.isfinite(v)
    except OverflowError:
        return False


def count(v) -> bool:
    return is_number(v) and isinstance(v, int) and 0 <= v <= 2**53


def text(v) -> bool:
    return isinstance(v, str)


def texts(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def row(v) -> bool:
    return isinstance(v, dict) and all(x is None or is_number(x) for x in v.values())


def layer(v) -> bool:
    shape = lambda s: isinstance(s, list) and all(count(n) for n in s)  # noqa: E731
    return (
        isinstance(v, dict)
        and text(v.get("layer"))
        and text(v.get("type"))
        and shape(v.get("input"))
        and shape(v.get("output"))
        and count(v.get("params"))
    )


# What compare accepts in each field it reads (None, an absent value, is always accepted).
SUMMARY_FIELDS = {
    "status": lambda v: isinstance(v, str) and v in STATUSES_WRITTEN,
    "error": text,
    "reason": text,
    "host": text,
    "pid_start": text,
    "pid": lambda v: is_number(v) and isinstance(v, int) and 0 < v < 2**31,
    "n_params": count,
    "epochs_run": count,
    "wall_time_s": finite,
    "final": row,
    "best": row,
    "overrides": texts,
    "objective": lambda v: isinstance(v, dict),
    "objective.metrics": lambda v: (
        texts(v) and bool(v) and all(METRIC_NAME.fullmatch(m) for m in v) and len(v) == 1
    ),
    "objective.values": lambda v: (
        isinstance(v, list) and len(v) == 1 and (v[0] is None or is_number(v[0]))
    ),
}
SHAPES_FIELDS = {
    "plan": lambda v: isinstance(v, list) and all(layer(x) for x in v),
    "n_params": count,
    "flat_features": count,
    "agree": lambda v: isinstance(v, bool),
}


def wrong_summary(key: str, value) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        summary = json.loads((folder / "summary.json").read_text())
        if "." in key:
            parent, leaf = key.split(".")
            summary[parent] = {**summary[parent], leaf: value}
        else:
            summary[key] = value
        replace(folder / "summary.json", json.dumps(summary))

    return Spoil(f"{key}={value!r:.40}", "summary.json", True, write)


def wrong_shapes(key: str, value) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        shapes = yaml.safe_load((folder / "shapes.yaml").read_text())
        replace(folder / "shapes.yaml", yaml.safe_dump({**shapes, key: value}))

    return Spoil(f"{key}={value!r:.40}", "shapes.yaml", True, write)


def wrong_for(fields: dict, build: Callable) -> st.SearchStrategy[Spoil]:
    return st.sampled_from(sorted(fields)).flatmap(
        lambda key: values.filter(lambda v: v is not None and not fields[key](v)).map(
            lambda v: build(key, v)
        )
    )


def whole_yaml(file: str, ok: Callable) -> st.SearchStrategy[Spoil]:
    def spoil(value) -> Spoil:
        return Spoil(
            f"{value!r:.40}",
            file,
            True,
            lambda folder, _: replace(folder / file, yaml.safe_dump(value)),
        )

    return values.filter(lambda v: not ok(v)).map(spoil)


def bad_cell(cell: str) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        rows = list(csv.reader(io.StringIO((folder / "metrics.csv").read_text())))
        rows[-1][4] = cell  # val_accuracy of the last epoch
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        replace(folder / "metrics.csv", buffer.getvalue())

    return Spoil(f"val_accuracy={cell!r:.40}", "metrics.csv", True, write)


def parses_as_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def missing_column(column: str) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        rows = list(csv.DictReader(io.StringIO((folder / "metrics.csv").read_text())))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [c for c in rows[0] if c != column], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        replace(folder / "metrics.csv", buffer.getvalue())

    return Spoil(f"no {column} column", "metrics.csv", True, write)


# ---------------------------------------------------------------- hostile files


def garbage(file: str, data: bytes, at: int) -> Spoil:
    at %= len(data) + 1  # 0xFF is never UTF-8: the file cannot parse, whatever the rest says
    return Spoil(
        "bytes", file, True, lambda f, _: replace(f / file, data[:at] + b"\xff" + data[at:])
    )


def deep(file: str, levels: int) -> Spoil:
    prefix = "a: " if file in ("shapes.yaml", ".hydra/config.yaml") else ""
    content = prefix + "[" * levels + "]" * levels
    return Spoil(f"{levels} levels", file, True, lambda f, _: replace(f / file, content))


def oversize(file: str, extra: int) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        (folder / file).unlink()
        with (folder / file).open("wb") as handle:
            handle.truncate(CAPS.get(file, MiB) + extra)  # sparse: costs no disk

    return Spoil(f"+{extra} bytes over the cap", file, True, write)


def linked_out(file: str) -> Spoil:
    def write(folder: Path, private: Path) -> None:
        (folder / file).unlink()
        (folder / file).symlink_to(private / "run" / file)  # valid, and holds SECRET

    return Spoil("link out", file, True, write)


def fifo(file: str) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        (folder / file).unlink()
        os.mkfifo(folder / file)

    return Spoil("FIFO", file, True, write)


def folder_in_place(file: str) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        (folder / file).unlink()
        (folder / file).mkdir()

    return Spoil("a folder", file, True, write)


def huge_field(length: int) -> Spoil:
    def write(folder: Path, _private: Path) -> None:
        with (folder / "metrics.csv").open("a") as handle:
            handle.write("9," + "1" * length + ",0,0,0,0,0\n")

    return Spoil(f"a {length}-character field", "metrics.csv", True, write)


def alias(file: str, content: str) -> Spoil:
    return Spoil("aliases", file, True, lambda f, _: replace(f / file, content))


def odd_config(value, key: str) -> Spoil:
    """A config value that is only odd: data, shown as it is, no warning."""

    def write(folder: Path, _private: Path) -> None:
        config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        config.setdefault("model", {})[key] = value
        text = yaml.safe_dump(config) + "odd_date: 2001-12-14\n"
        replace(folder / ".hydra" / "config.yaml", text)

    return Spoil(f"config {key}={value!r:.40}", ".hydra/config.yaml", False, write)


spoils = st.one_of(
    st.builds(garbage, st.sampled_from(FILES), st.binary(max_size=200), st.integers(0, 200)),
    st.builds(
        deep, st.sampled_from([f for f in FILES if f != "metrics.csv"]), st.integers(33, 10**5)
    ),
    st.builds(
        alias, st.sampled_from(YAML_FILES), st.sampled_from([ALIAS_BOMB, "a: &x 1\nb: *x\n"])
    ),
    st.builds(huge_field, st.integers(131_073, 400_000)),
    st.builds(oversize, st.sampled_from(FILES), st.integers(1, 4096)),
    st.builds(linked_out, st.sampled_from(FILES)),
    st.builds(fifo, st.sampled_from(FILES)),
    st.builds(folder_in_place, st.sampled_from(FILES)),
    wrong_for(SUMMARY_FIELDS, wrong_summary),
    wrong_for(SHAPES_FIELDS, wrong_shapes),
    whole_yaml(".hydra/config.yaml", lambda v: isinstance(v, dict)),
    whole_yaml(".hydra/overrides.yaml", texts),
    st.builds(bad_cell, st.text(max_size=12).filter(lambda c: not parses_as_float(c))),
    st.builds(missing_column, st.sampled_from(["epoch", "val_accuracy", "val_loss"])),
    st.builds(odd_config, values, st.sampled_from(["odd", "activation", "a.b", ""])),
    st.just(Spoil("nothing", "-", False, lambda f, _: None)),
)
names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\\"),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(st.tuples(spoils, names), min_size=1, max_size=4))
def test_any_hostile_folder_is_one_warning_per_bad_run_never_a_crash_or_a_hang(runs):
    with tempfile.TemporaryDirectory() as tmp:
        root, private = Path(tmp) / "shared", Path(tmp) / "private"
        fake_run(private / "run", (0.99,), {"model.out_1": 7}, error=SECRET)
        fake_run(root / "good", (0.9,))
        folders = []
        for n, (spoil, name) in enumerate(runs):
            folder = fake_run(root / f"r{n}-{name}", (0.5, 0.6), {"model.out_1": n + 2})
            spoil.write(folder, private)
            folders.append(folder)
        out, err = io.StringIO(), io.StringIO()
        start = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(60):
            code = main([str(root), "--out", str(Path(tmp) / "out"), "--no-plots"])
        elapsed = time.monotonic() - start
        lines = err.getvalue().splitlines()
        written = "".join(p.read_text() for p in (Path(tmp) / "out").glob("*") if p.is_file())

    assert code == 0, lines
    assert all(line.startswith("warning: ") for line in lines), lines  # no traceback, no error
    assert elapsed < 3 + PER_RUN_S * (len(runs) + 1), elapsed
    assert SECRET not in out.getvalue() + err.getvalue() + written
    assert not [line for line in lines if line.startswith(f"warning: {root / 'good'}: ")]
    for folder, (spoil, _) in zip(folders, runs, strict=True):
        said = [line for line in lines if line.startswith(f"warning: {folder}: ")]
        assert len(said) == (1 if spoil.bad else 0), (spoil, said)
