"""The comparison table's model: which runs, which columns, in which order. No rendering here.

`compare()` reads the folders and returns a `Comparison`: every run found, the ones the options
kept (filtered, sorted best first), their columns and raw rows, the config keys that vary and
the ones the user searched (each sweep's search space, the runs' overrides), each sweep's
question, and the best run. The views render it: the terminal (terminal.py), table.csv and
table.md (table_files.py), the plots (plots.py, study_plots.py) and report.html (report.py);
display.py is how a cell reads in all of them.

Runs with replicates (`replicates=R`, or repeats of one config merged by `--group-seeds`) add the
spread columns after the objective (row.py computes them with `linesweep.core.stats.summarize`):
for each objective metric `<metric>_mean` with its 95% Student t interval (`<metric>_ci_low`,
`<metric>_ci_high`), `<metric>_std` and `<metric>_n` (its finite values); `success_rate` with its
95% Wilson interval (`success_ci_low`, `success_ci_high`); and `replicates` (how many stand
behind the row's numbers). The terminal, Markdown and HTML show a mean and its interval as one
cell (display.py). Without any such run the table is as it always was.

The comparison also holds the answer (answer.py: the best configuration, the smallest not
distinguishable from it, what was compared), computed once here for the runs shown.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linesweep.compare.answer import RunsAnswer, answer_runs
from linesweep.compare.console import UsageError
from linesweep.compare.groups import NOISE_KEYS, NOISE_PREFIXES, group_seeds
from linesweep.compare.question import Question, read_question, searched_keys
from linesweep.compare.row import METRIC_STATS, SUCCESS_COLUMNS, Run, metric_stat
from linesweep.compare.runs import SweepConfigs, natural_key, parse_value, read_run
from linesweep.core.metrics import METRIC_DIRECTIONS, pareto_ranks
from linesweep.core.status import STATUSES, Status

# Fixed columns after the varying config keys and the objective; how each one ranks best first.
FIXED_COLUMNS = ("val_acc", "best_acc", "val_loss", "n_params", "epochs", "wall_s", "state")
COLUMN_DIRECTIONS = {
    "val_acc": "maximize", "best_acc": "maximize", "val_loss": "minimize", "n_params": "minimize",
    "replicates": "maximize", **dict.fromkeys(SUCCESS_COLUMNS, "maximize"),
}  # fmt: skip
SPREAD_TAIL = (*SUCCESS_COLUMNS, "replicates")
# The views' one column for a mean and its interval (`val_accuracy_mean [95% t]`), and for a
# success rate and its interval (`success_rate [Wilson 95%]`): display.py builds them.
MEAN_INTERVAL = " [95% t]"
RATE_INTERVAL = " [Wilson 95%]"


def objective_metrics(runs: Sequence[Run]) -> list[str]:
    """Every objective metric of the runs, in the order they first appear."""
    return list(dict.fromkeys(m for run in runs for m in run.objective))


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys that every run with a config has, whose values are not all the same."""
    configs = [run.config for run in runs if run.config is not None]
    if len(configs) < 2:
        return []
    shared = [k for k in configs[0] if all(k in c for c in configs[1:])]
    return [
        key
        for key in shared
        if not key.startswith(NOISE_PREFIXES)
        and key not in NOISE_KEYS
        and key != "replicates"  # how many replicates: the spread column `replicates` shows it
        and len({json.dumps(c[key], sort_keys=True, default=str) for c in configs}) > 1
    ]


def has_replicates(runs: Sequence[Run]) -> bool:
    """Whether any run's numbers stand on more than one replicate."""
    return any(run.replicates > 1 for run in runs)


def spread_columns(runs: Sequence[Run]) -> list[str]:
    """`<metric>_mean`, `_ci_low`, `_ci_high`, `_std`, `_n` of each objective metric (not
    n_params: it does not vary), the success rate and its interval, `replicates`."""
    metrics = [m for m in objective_metrics(runs) if m != "n_params" and m in METRIC_DIRECTIONS]
    return [*(f"{m}_{stat}" for m in metrics for stat in METRIC_STATS), *SPREAD_TAIL]


def is_spread_column(column: str) -> bool:
    return (
        column in SPREAD_TAIL
        or column.endswith((MEAN_INTERVAL, RATE_INTERVAL))
        or metric_stat(column) is not None
    )


def columns_for(
    runs: Sequence[Run], varying: Sequence[str], spread: bool | None = None
) -> list[str]:
    """rank, the varying config keys, the objective, the spread columns (`spread`; default: when
    a run has replicates), the epoch the objective was measured at, the fixed columns, folder and
    note."""
    objective = [f"obj.{m}" for m in objective_metrics(runs)]
    spreads = spread_columns(runs) if (has_replicates(runs) if spread is None else spread) else []
    varying = [k for k in varying if k not in spreads]  # the config key `replicates`
    measured = ["obj_epoch"] if objective else []
    return ["rank", *varying, *objective, *spreads, *measured, *FIXED_COLUMNS, "folder", "note"]


def direction_of(column: str) -> str | None:
    """maximize/minimize for metric columns (so sorting puts the best first), None otherwise."""
    if column.startswith("obj."):
        return METRIC_DIRECTIONS.get(column[4:])
    stat = metric_stat(column)
    if stat is not None:
        return {"std": "minimize", "n": "maximize"}.get(stat[1], METRIC_DIRECTIONS[stat[0]])
    return COLUMN_DIRECTIONS.get(column)


def _order_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, json.dumps(value, sort_keys=True, default=str))  # strings, booleans, lists


def sort_runs(runs: Sequence[Run], columns: Sequence[str], descending: Sequence[bool]) -> list[Run]:
    """Sort by each column in turn (ties fall to the next, then the folder); missing values last."""
    ordered = sorted(runs, key=lambda run: natural_key(run.folder))
    for column, down in reversed(list(zip(columns, descending, strict=True))):
        present = [r for r in ordered if _usable(r.cell(column))]
        absent = [r for r in ordered if not _usable(r.cell(column))]
        present.sort(key=lambda r: _order_key(r.cell(column)), reverse=down)
        ordered = present + absent
    return ordered


def _usable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def rank_by_objective(runs: Sequence[Run]) -> list[Run]:
    """Best objective first (each metric in its own direction); runs without a value last; on
    a tie the fewer parameters first, as the answer breaks it."""
    columns = [f"obj.{m}" for m in objective_metrics(runs)]
    down = [direction_of(c) == "maximize" for c in columns]
    return sort_runs(runs, [*columns, "n_params"], [*down, False])


def objectives_of(runs: Sequence[Run]) -> list[str]:
    """The objectives the runs with values were judged by (`val_accuracy`, `val_accuracy,
    n_params`), each once, in the order they first appear."""
    judged = (", ".join(run.objective) for run in runs if run.objective)
    return list(dict.fromkeys(judged))


def best_run(runs: Sequence[Run]) -> Run | None:
    """The run with the best objective, preferring complete runs to pruned or running ones (for
    several objectives: the member of the Pareto set with the best first objective)."""
    ranked = [
        r for r in rank_by_objective(runs) if any(v is not None for v in r.objective.values())
    ]
    front = pareto_set(ranked)  # several objectives: the Pareto set's first
    complete = [r for r in ranked if r.state == Status.COMPLETE]
    return (front or complete or ranked or [None])[0]


# ---------------------------------------------------------------- several objectives: fronts


def _front_ranks(runs: Sequence[Run]) -> dict[int, int]:
    """id(run) -> its non-dominated front among the complete runs with every objective value."""
    metrics = objective_metrics(runs)
    scored = [
        run
        for run in runs
        if run.state == Status.COMPLETE
        and all(_usable(run.objective.get(m)) for m in metrics)
        and all(m in METRIC_DIRECTIONS for m in metrics)
    ]
    points = [[float(run.objective[m]) for m in metrics] for run in scored]  # type: ignore[arg-type]
    return {id(run): rank for run, rank in zip(scored, pareto_ranks(points, metrics), strict=True)}


def pareto_set(runs: Sequence[Run]) -> list[Run]:
    """The complete runs no other complete run beats on every objective, in the given order."""
    if len(objective_metrics(runs)) < 2:
        return []
    fronts = _front_ranks(runs)
    return [run for run in runs if fronts.get(id(run)) == 1]


def _finished_first(run: Run, columns: Sequence[str], worst_first: bool) -> tuple[bool, bool]:
    """A sort key: complete runs, then others with a value (reversed worst first), then none."""
    missing = not any(_usable(run.cell(c)) for c in columns)
    return missing, (run.state != Status.COMPLETE) != worst_first


def by_front(runs: Sequence[Run], worst_first: bool = False) -> list[Run]:
    """Several objectives: the Pareto set first, then each next front; a stable sort."""
    fronts = _front_ranks(runs)
    unranked = math.inf if not worst_first else -math.inf
    return sorted(runs, key=lambda r: fronts.get(id(r), unranked), reverse=worst_first)


# ---------------------------------------------------------------- selecting


@dataclass(frozen=True)
class Filter:
    """`--where key=value`: the value is read as YAML, so 4, 0.01, true and [a,b] mean values."""

    key: str
    text: str

    @property
    def value(self) -> Any:
        return parse_value(self.text)

    def matches(self, run: Run) -> bool:
        actual, wanted = run.cell(self.key), self.value
        if actual is None:
            return wanted is None
        if isinstance(actual, bool) or isinstance(wanted, bool):
            return actual == wanted
        if isinstance(actual, (int, float)) and isinstance(wanted, (int, float)):
            return math.isclose(actual, wanted, rel_tol=1e-9)
        return actual == wanted or str(actual) == self.text


def known_keys(runs: Sequence[Run]) -> list[str]:
    keys = dict.fromkeys(columns_for(runs, []))
    keys.update(dict.fromkeys(k for run in runs if run.config for k in run.config))
    return list(keys)


def _check_key(option: str, key: str, runs: Sequence[Run]) -> None:
    keys = known_keys(runs)
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"{option}: no run has a column or config key {key!r}{hint}")


@dataclass(frozen=True)
class Selection:
    """What the options ask for: filters, an order, and how many rows to keep."""

    where: tuple[Filter, ...] = ()
    states: tuple[str, ...] = ()
    sort: str | None = None
    descending: bool | None = None  # None: best first for metrics, ascending for other columns
    top: int | None = None
    group_seeds: bool = False  # runs that differ only in `seed`: one row (`groups.group_seeds`)


def shown_by_state(run: Run, states: Sequence[str]) -> bool:
    """Whether `--state` keeps the run; without it, every run but those refused by validation.

    A refused run is a config linesweep would not train (a typo on the command line, say): it
    has nothing to compare, and a bare `compare` would otherwise show only that.
    """
    return run.state in states if states else run.state != Status.REFUSED


def select(runs: Sequence[Run], selection: Selection) -> list[Run]:
    """Filter, sort and cut the runs as the options ask; UsageError names a bad key or state."""
    for condition in selection.where:
        _check_key("--where", condition.key, runs)
    unknown = [s for s in selection.states if s not in STATUSES]
    if unknown:
        raise UsageError(f"--state: unknown state {unknown[0]!r}; states: {', '.join(STATUSES)}")
    kept = [
        run
        for run in runs
        if all(c.matches(run) for c in selection.where) and shown_by_state(run, selection.states)
    ]
    if selection.group_seeds:
        kept = group_seeds(kept)
    if selection.sort is None:
        columns = [f"obj.{m}" for m in objective_metrics(kept)]
        best_first = [direction_of(c) == "maximize" for c in columns]
        # --ascending/--descending set the first objective's order; the others follow its flip.
        flip = bool(columns) and selection.descending not in (None, best_first[0])
        # A tie falls to the fewer parameters, as the answer breaks it.
        ordered = sort_runs(
            kept, [*columns, "n_params"], [*(down != flip for down in best_first), flip]
        )
        # Complete runs rank first, since a pruned run's value is from an earlier epoch;
        # several objectives rank by Pareto front.
        ordered = sorted(ordered, key=lambda run: _finished_first(run, columns, flip))
        if len(columns) > 1:
            ordered = by_front(ordered, worst_first=flip)
    else:
        _check_key("--sort", selection.sort, runs)
        down = selection.descending
        if down is None:
            down = direction_of(selection.sort) == "maximize"
        ordered = sort_runs(kept, [selection.sort], [down])
    return ordered[: selection.top] if selection.top else ordered


def table_rows(runs: Sequence[Run], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per run, raw values (None where a run lacks one), ranked in the given order."""
    rows = []
    for rank, run in enumerate(runs, start=1):
        row = {column: run.cell(column) for column in columns}
        row["rank"] = rank
        rows.append(row)
    return rows


@dataclass
class Comparison:
    """All runs found, the ones the options kept (in order), and their table."""

    runs: list[Run]
    shown: list[Run]
    columns: list[str]
    rows: list[dict[str, Any]]
    varying: list[str]  # config keys whose values differ between the shown runs
    best: Run | None  # the best run (best_run); with replicates, the answer's best
    refused_hidden: int = 0  # refused runs left out because no --state asked for them
    storage: str | None = None  # --storage: where the sweeps' studies are (else their journals)
    searched: list[str] = field(default_factory=list)  # the keys the user searched (question.py)
    questions: list[Question] = field(default_factory=list)  # each shown sweep's, by folder
    answer: RunsAnswer | None = None  # the answer for the shown runs (answer.py)
    # Each shown sweep's study, opened once for its plots and its importances (studies.py),
    # and what importances.py found in it: sweep folder -> study, or why it cannot be opened.
    studies: dict[Path, Any] = field(default_factory=dict, repr=False)
    importances: dict[Path, Any] | None = field(default=None, repr=False)

    @property
    def with_warnings(self) -> int:
        return sum(1 for run in self.runs if run.warnings)

    def count_line(self) -> str:
        """`4 runs (1 with warnings)`, or `2 shown of 4 runs (...)` when options left some out."""
        found = f"{plural(len(self.runs), 'run')} ({self.with_warnings} with warnings)"
        if len(self.shown) == len(self.runs):
            return found
        return f"{len(self.shown)} shown of {found}"

    def hidden_line(self) -> str | None:
        """One line on the refused runs left out by default, or None when there are none."""
        if not self.refused_hidden:
            return None
        return f"{plural(self.refused_hidden, 'refused run')} not shown; --state refused shows them"


def plural(n: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def compare(
    folders: Sequence[Path],
    selection: Selection = Selection(),
    storage: str | None = None,
    answer_flags: Mapping[str, Any] | None = None,
) -> Comparison:
    """Read every run folder, build the table the options ask for, and the answer for the runs
    shown (`answer_flags`: --alpha and --test, over the runs' `answer.*` config)."""
    sweeps = SweepConfigs()
    runs = [read_run(folder, sweeps) for folder in folders]
    shown = select(runs, selection)
    varying = varying_keys(shown)
    if selection.group_seeds and "seed" not in varying and any(run.grouped for run in shown):
        varying.append("seed")  # the seeds each row stands on
    questions = [read_question(s) for s in sorted({r.sweep for r in shown if r.sweep is not None})]
    searched = searched_keys(shown, varying, questions)
    columns = columns_for(shown, [*varying, *(k for k in searched if k not in varying)])
    hidden = 0 if selection.states else sum(run.state == Status.REFUSED for run in runs)
    rows = table_rows(shown, columns)
    best = best_run(shown)
    grouped = any(run.grouped for run in shown)  # a row's seeds are its replicates, no param
    keys = [k for k in searched if not (grouped and k == "seed")]
    answered = answer_runs(shown, questions, keys, best, answer_flags)
    if answered.answer.has_spread and len(objective_metrics(shown)) == 1:
        best = answered.best_run or best  # the answer's: the best mean, fewer parameters on a tie
    if len(objectives_of(shown)) > 1:
        best = None  # judged by different objectives: none is better than another
    return Comparison(
        runs, shown, columns, rows, varying, best, hidden, storage, searched, questions, answered
    )
