"""Compare the runs in output folders: one table, plots and an HTML report, with no server.

    python -m linesweep.compare                            # the latest sweep or run in outputs/
    python -m linesweep.compare outputs/sweeps/channels_lr # one sweep: writes into its compare/
    python -m linesweep.compare outputs/                   # every run below outputs/
    python -m linesweep.compare 'outputs/multirun/*/*' outputs/runs/2026-11-27/10-27-12-963291_10781
    python -m linesweep.compare outputs/ --state complete,pruned --where model.out_2=4 --top 10
    python -m linesweep.compare outputs/ --sort n_params --no-plots --out /tmp/comparison

A run folder is any folder holding `.hydra/`, `summary.json`, `metrics.csv` or `shapes.yaml`:
single runs, `-m` multiruns and Optuna sweeps alike (globs are expanded here too, so quote them or
not). The table has one row per run: the config values that differ between the runs, the objective
(`obj.<metric>`), the last epoch's validation accuracy and loss (`val_acc`, `val_loss`), the best
epoch's accuracy (`best_acc`), parameters, epochs, wall time, state and folder. It is sorted by the
objective, best first, printed, and written as table.csv and table.md next to plots/ and
report.html (default folder: `<sweep>/compare/` for one sweep or multirun, else
`outputs/compare/<timestamp>/`). A folder with a problem (no summary, a corrupt file, an older
layout) gets one warning line on stderr and still its row, with its state; none is dropped.
States: complete, pruned, diverged, failed, infeasible, interrupted, running, killed (running, but
its process is gone), incomplete (no readable summary.json), unreadable (nothing parses).

Exit status 0: compared; 2: no runs found, no run matches the filters, or a bad argument.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from linesweep.compare.question import chosen_keys
from linesweep.compare.runs import find_runs, is_sweep, reproduce_command
from linesweep.compare.table import (
    Comparison,
    Filter,
    Selection,
    UsageError,
    compare,
    csv_rows,
    markdown_table,
    text_table,
)
from linesweep.core.files import atomic_write_text, write_csv

# ---------------------------------------------------------------- arguments


def expand(arguments: Sequence[str]) -> list[Path]:
    """The folders the arguments name, globs expanded; UsageError for one that names nothing."""
    paths = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.exists():
            paths.append(path)
        elif any(c in argument for c in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(argument), recursive=True))
            if not matches:
                raise UsageError(f"no folder matches {argument!r}")
            paths += [Path(m) for m in matches]
        else:
            raise UsageError(f"no such folder: {argument}")
    return paths


def latest(outputs: Path) -> Path:
    """The most recently modified sweep, multirun or single run under `outputs`."""
    candidates = [
        p
        for pattern in ("runs/*/*", "multirun/*/*", "sweeps/*")
        for p in outputs.glob(pattern)
        if p.is_dir()
    ]
    if not candidates:
        raise UsageError(
            f"no runs under {outputs}/ (runs/*/*, multirun/*/*, sweeps/*); "
            "pass the folders to compare, e.g. python -m linesweep.compare path/to/outputs"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def default_out(paths: Sequence[Path]) -> Path:
    """`<sweep>/compare` for one sweep or multirun folder; else a new outputs/compare/<time>."""
    if len(paths) == 1 and is_sweep(paths[0]):
        return paths[0] / "compare"
    # Microseconds and the pid, like run folders: two comparisons never share a folder.
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path("outputs", "compare", f"{stamp}_{os.getpid()}")


OUTPUT_FILES = ("table.csv", "table.md", "report.html")


def clear_previous(out: Path) -> None:
    """Remove what an earlier comparison left in `out`, so no file describes other runs."""
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    for picture in (out / "plots").glob("*.png"):
        picture.unlink()


def write_tables(out: Path, comparison: Comparison) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "table.csv", csv_rows(comparison.rows), comparison.columns)
    atomic_write_text(out / "table.md", markdown_table(comparison.rows, comparison.columns))
    return [out / "table.csv", out / "table.md"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see python -m linesweep.compare --help)")


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m linesweep.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", help="folders or globs (default: the latest in outputs/)"
    )
    parser.add_argument(
        "--sort", metavar="COLUMN", help="a column or config key (default: the objective)"
    )
    order = parser.add_mutually_exclusive_group()
    order.add_argument(
        "--ascending", dest="descending", action="store_false", default=None,
        help="smallest first (default: best first for metrics, else ascending)",
    )  # fmt: skip
    order.add_argument("--descending", dest="descending", action="store_true", help="largest first")
    parser.add_argument("--top", type=int, metavar="N", help="keep the first N rows")
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY=VALUE",
        help="keep runs whose config key (or column) has this value; repeatable",
    )  # fmt: skip
    parser.add_argument("--state", metavar="S[,S...]", help="keep runs in these states")
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="where the files go (default: <sweep>/compare or outputs/compare/<time>)",
    )  # fmt: skip
    parser.add_argument("--no-plots", action="store_true", help="tables and report only")
    parser.add_argument("--no-report", action="store_true", help="no report.html")
    args = parser.parse_args(list(argv))
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top {args.top}: give a number of rows >= 1")
    return args


def _selection(args: argparse.Namespace) -> Selection:
    where = []
    for text in args.where:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {text!r}: write KEY=VALUE, e.g. --where model.out_1=4")
        where.append(Filter(key.strip(), value.strip()))
    states = tuple(s.strip() for s in args.state.split(",") if s.strip()) if args.state else ()
    return Selection(tuple(where), states, args.sort, args.descending, args.top)


def run_command(argv: Sequence[str]) -> int:
    """The command, minus the top-level error handling: print the table, write the files."""
    args = parse_arguments(argv)
    if args.paths:
        paths = expand(args.paths)
    else:
        paths = [latest(Path("outputs"))]
        print(f"comparing {paths[0]} (the latest under outputs/)", file=sys.stderr)
    folders = find_runs(paths)
    if not folders:
        names = ", ".join(str(p) for p in paths)
        raise UsageError(
            f"no runs under {names} (a run folder holds .hydra/, summary.json, metrics.csv "
            "or shapes.yaml)"
        )
    comparison = compare(folders, _selection(args))
    for run in comparison.runs:
        for warning in run.warnings:
            print(f"warning: {run.folder}: {warning}", file=sys.stderr)
    if not comparison.shown:
        raise UsageError(f"no run matches the filters ({len(comparison.runs)} runs found)")

    chosen = chosen_keys(comparison.shown, comparison.varying)  # report branch: key columns
    print(text_table(comparison.rows, comparison.columns, first=chosen))
    print(comparison.count_line())
    if comparison.best is not None:
        print(f"best: {comparison.best.folder}")
        print(f"  reproduce: {reproduce_command(comparison.best)}")

    out = args.out if args.out is not None else default_out(paths)
    try:
        clear_previous(out)
        written = write_tables(out, comparison)
    except OSError as err:
        raise UsageError(f"cannot write the comparison into {out}: {err.strerror}") from None
    plots: list[Path] = []
    pictures: list[Path] = []
    if not args.no_plots:
        from linesweep.compare import (
            plots as compare_plots,  # matplotlib (and Optuna, torch) only when plotting
        )

        plots, pictures, problems = compare_plots.save_comparison_plots(comparison, out / "plots")
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
        written += plots + [p for p in pictures if p.is_relative_to(out)]  # not the run's own
    if not args.no_report:
        from linesweep.compare import report

        written.append(report.write_report(out / "report.html", comparison, plots, pictures))
    print(f"wrote {out}/: " + ", ".join(str(p.relative_to(out)) for p in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit status 0 when compared, 2 with one line for a bad argument or no runs."""
    try:
        return run_command(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
