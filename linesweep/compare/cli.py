"""Compare the runs in output folders: one table, plots and an HTML report, with no server.

    python -m linesweep.compare                            # the latest sweep or run in outputs/
    python -m linesweep.compare outputs/sweeps/channels_lr # one sweep: writes into its compare/
    python -m linesweep.compare outputs/                   # every run below outputs/
    python -m linesweep.compare 'outputs/multirun/*/*' outputs/runs/2026-11-27/10-27-12-963291_10781
    python -m linesweep.compare outputs/ --state complete,pruned --where model.out_2=4 --top 10
    python -m linesweep.compare outputs/ --sort n_params --no-plots --out /tmp/comparison
    python -m linesweep.compare outputs/sweeps/s --storage postgresql://user@db-host/linesweep
    python -m linesweep.compare outputs/multirun/2026-11-28/10-00-00 --group-seeds
    python -m linesweep.compare outputs/sweeps/channels_lr_grid --alpha 0.01 --test welch

A run folder is any folder holding `.hydra/`, `summary.json`, `metrics.csv` or `shapes.yaml`:
single runs, `-m` multiruns and Optuna sweeps alike (globs are expanded here too, so quote them or
not). First comes the answer, in the words a sweep's end says it (linesweep/core/answer.py, one
computation for the runs shown): the best configuration with its mean and 95% interval, the
smallest configuration (fewest parameters) not distinguishable from it with its test, p-value
and the difference's interval, and how many were compared; then any warning (too few
replicates; without any, the command that adds them). Its alpha, test and correction are the
runs' `answer.*` config; --alpha and --test override them.

The table has one row per run: the config values that differ between the runs, the objective
(`obj.<metric>`), the last epoch's validation accuracy and loss (`val_acc`, `val_loss`), the best
epoch's accuracy (`best_acc`), parameters, epochs, wall time, state and folder. Runs trained with
`replicates=R` show their spread after the objective: each objective metric's mean over the
replicates with its 95% Student t interval (`0.934 [0.921, 0.947]`; table.csv adds the std and
n), the success rate (the share reaching `replicate.success_threshold`) with its 95% Wilson
interval, and `replicates`, how many stand behind the row (`val_acc`, `best_acc`, `val_loss` are
then means too); plain runs show `-` there. `--group-seeds` makes runs that differ only in
`seed` (a `-m seed=0,1,2` multirun) one row the same way, its `seed` cell listing the seeds. It
is sorted by the objective, best first, printed, and written as table.csv and table.md next to
plots/ and report.html (default folder: `<sweep>/compare/` for one sweep or multirun, else
`outputs/compare/<timestamp>/`). A folder with a problem (no summary, a corrupt file, an older
layout) gets one warning line on stderr and still its row, with its state; only runs refused
by validation are left out, counted in one line, unless --state asks for them.
States: complete, pruned, diverged, failed, infeasible, refused, interrupted, running, killed
(running, but its process is gone), incomplete (no readable summary.json), unreadable (nothing
parses).

Folders may come from anyone: compare reads only regular files inside the folders it is given
(no symbolic link is followed, no FIFO or device opened), each within a size cap, and opens a
sweep's study only from the journal file in the sweep folder or from --storage, never from a URL
a file names. It writes only into a new or empty folder, or one holding its own manifest
(.linesweep-compare.json), and replaces only the files that manifest lists.

The terminal table always shows the parameters the user searched and the objective, at any
width (terminal.py); `compare ... | head` ends quietly and still writes every file (console.py).
The report shows the best run's kernels and feature maps as the run drew them; for a run trained
with plots=light or plots=none it names the command that draws them: python -m linesweep.draw RUN.

Exit status 0: compared (also when stdout was closed early); 2: no runs found, no run matches
the filters, a bad argument (an answer setting out of range included: --alpha 2, or the runs'
answer.alpha), or an output folder compare may not write into.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from linesweep.compare.answer import alpha_flag, check_flags
from linesweep.compare.console import UsageError, say, silence, warn
from linesweep.compare.output import OutputFolder
from linesweep.compare.pictures import run_pictures
from linesweep.compare.runs import expand, find_runs, is_sweep
from linesweep.compare.table import Comparison, Filter, Selection, compare, plural
from linesweep.compare.table_files import write_tables
from linesweep.compare.terminal import terminal_lines
from linesweep.core.record import SUMMARY, read_record
from linesweep.core.safe_read import below
from linesweep.core.status import Status

# ---------------------------------------------------------------- arguments


def latest(outputs: Path) -> Path:
    """The most recently modified sweep, multirun or single run under `outputs`.

    A single run refused by validation is skipped: it has nothing to compare.
    """
    candidates = [
        p
        for pattern in ("runs/*/*", "multirun/*/*", "sweeps/*")
        for p in outputs.glob(pattern)
        if below(p, outputs) and p.is_dir() and not _refused(p)
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


def _refused(folder: Path) -> bool:
    if not os.path.lexists(folder / SUMMARY):
        return False
    try:
        return read_record(folder)[0].status == Status.REFUSED
    except (OSError, ValueError):
        return False


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
        "--group-seeds", action="store_true",
        help="one row for the runs (in one state) whose configs differ only in seed: their mean "
        "and 95%% interval, success rate and count, as for replicates (default: one row per run)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="where the files go (default: <sweep>/compare or outputs/compare/<time>)",
    )  # fmt: skip
    parser.add_argument(
        "--storage", metavar="URL",
        help="where the sweeps' Optuna studies are, for their plots (default: the journal file "
        "in each sweep folder; a URL in a sweep's files is never opened)",
    )  # fmt: skip
    parser.add_argument(
        "--no-plots", action="store_true",
        help="tables and report only; plots/ is left as it is",
    )  # fmt: skip
    parser.add_argument("--no-report", action="store_true", help="no report.html")
    parser.add_argument(
        "--alpha", type=alpha_flag, metavar="A",
        help="the answer's alpha, in (0, 1) (default: the runs' answer.alpha, else 0.05)",
    )  # fmt: skip
    parser.add_argument(
        "--test", metavar="NAME",
        help="the answer's pairwise test: auto, welch, mannwhitney or paired (default: the "
        "runs' answer.test, else auto: paired where replicates share seeds)",
    )  # fmt: skip
    args = parser.parse_args(list(argv))
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top {args.top}: give a number of rows >= 1")
    check_flags({"alpha": args.alpha, "test": args.test})
    return args


def _selection(args: argparse.Namespace) -> Selection:
    where = []
    for text in args.where:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {text!r}: write KEY=VALUE, e.g. --where model.out_1=4")
        where.append(Filter(key.strip(), value.strip()))
    states = tuple(s.strip() for s in args.state.split(",") if s.strip()) if args.state else ()
    return Selection(tuple(where), states, args.sort, args.descending, args.top, args.group_seeds)


def run_command(argv: Sequence[str]) -> int:
    """The command, minus the top-level error handling: print the table, write the files."""
    args = parse_arguments(argv)
    problems: list[str] = []
    if args.paths:
        paths = expand(args.paths, problems)
    else:
        paths = [latest(Path("outputs"))]
        say(f"comparing {paths[0]} (the latest under outputs/)", err=True)
    folders = find_runs(paths, problems)
    for problem in problems:
        warn(problem)
    if not folders:
        names = ", ".join(str(p) for p in paths)
        raise UsageError(
            f"no runs under {names} (a run folder holds .hydra/, summary.json, metrics.csv "
            "or shapes.yaml)"
        )
    out = args.out if args.out is not None else default_out(paths)
    folder = OutputFolder.claim(
        out, folders, given=args.out is not None, plots=not args.no_plots, report=not args.no_report
    )  # before any reading: a refused folder costs nothing

    flags = {"alpha": args.alpha, "test": args.test}
    comparison = compare(folders, _selection(args), storage=args.storage, answer_flags=flags)
    for run in comparison.runs:
        for warning in run.warnings:
            warn(f"{run.folder}: {warning}")
    if comparison.answer is not None and comparison.answer.note:
        warn(comparison.answer.note)
    hidden = comparison.hidden_line()
    if not comparison.shown:
        found = f"{plural(len(comparison.runs), 'run')} found" + (f"; {hidden}" if hidden else "")
        raise UsageError(f"no run matches the filters ({found})")
    pictures = None if comparison.best is None else run_pictures(comparison.best)
    if pictures is not None:
        for problem in pictures.problems:
            warn(f"{pictures.folder}: {problem}")

    # Printed first, so that the table shows while the plots are drawn; a reader that closes
    # the pipe early (`| head`) silences the rest, and the files below are written all the same.
    for line in terminal_lines(comparison, pictures):
        say(line)
    written = write_comparison(folder, comparison, args)
    say(f"wrote {out}/: " + ", ".join(str(p.relative_to(out)) for p in written))
    return 0


def write_comparison(
    folder: OutputFolder, comparison: Comparison, args: argparse.Namespace
) -> list[Path]:
    """Tables, plots and report into the claimed folder, listed in its manifest as they go."""
    out = folder.path
    try:
        kept = folder.kept_plots(keep_plots=args.no_plots)
        # Listed before they are written, with the previous comparison's: an interrupted one
        # leaves no file unlisted but its new plots (a later one then refuses the folder,
        # naming them), and the previous report and plots where they were.
        folder.record(
            [
                *folder.previous,
                "table.csv",
                "table.md",
                *([] if args.no_report else ["report.html"]),
            ]
        )
        written = write_tables(out, comparison)
        plots = [] if args.no_plots else _draw(comparison, out / "plots")
        written += plots
        if not args.no_report:
            from linesweep.compare import report

            written.append(report.write_report(out / "report.html", comparison, plots))
        names = [*kept, *(str(p.relative_to(out)) for p in written)]
        folder.remove_stale(names)
        folder.record(names)
    except OSError as err:
        raise UsageError(f"cannot write the comparison into {out}: {err.strerror}") from None
    return written


def _draw(comparison: Comparison, out: Path) -> list[Path]:
    """The comparison's plots; a figure that fails is a warning line, never a traceback.

    Config values and metric names come from run files: with mathtext off, a value like
    `$\\foo$` in a label is drawn as the text it is instead of failing the whole figure.
    """
    import matplotlib  # with Optuna, only when plotting

    from linesweep.compare import plots as compare_plots

    with matplotlib.rc_context({"text.parse_math": False}):
        try:
            plots, problems = compare_plots.save_comparison_plots(comparison, out)
        except Exception as err:  # a value in a run file no plot expected: say so, go on
            text = " ".join(str(err).split())[:160]
            warn(f"no comparison plots ({type(err).__name__}: {text})")
            return []
    for problem in problems:
        warn(problem)
    return plots


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit status 0 when compared, 2 with one line for a bad argument or no runs."""
    try:
        return run_command(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        say(f"error: {err}", err=True)
        return 2
    except BrokenPipeError:  # `--help | head`: argparse's own print met the closed pipe
        silence(sys.stdout)
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line; every file written so far is whole
        say(
            "interrupted by SIGINT: the files written so far are whole, the rest as they were",
            err=True,
        )
        return 130
