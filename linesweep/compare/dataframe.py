"""Run folders as a pandas DataFrame, for a notebook: `linesweep.load_runs(...)`.

    import linesweep

    df = linesweep.load_runs("outputs/sweeps/channels_lr")      # or several folders, or globs
    done = df[df.state == Status.COMPLETE]                        # pruned runs stopped early
    done.sort_values("obj.val_accuracy", ascending=False).head()  # what compare ranks first
    done.groupby("model.out_1")["obj.val_accuracy"].max()         # how few channels suffice?
    df.plot.scatter("optimizer.lr", "obj.val_accuracy", logx=True)

    configs = linesweep.load_configurations("outputs/sweeps/channels_lr")  # one per configuration
    configs[configs.compared].sort_values("n_params")[["n_params", "mean", "ci_low", "ci_high"]]
    configs[configs.smallest]                 # the smallest not distinguishable from the best

(`Status` is `linesweep.core.status.Status`, whose members equal the `state` strings.)

One row per run folder (found as `python -m linesweep.compare` finds them, odd folders included,
with their state), in folder order. The columns are compare's table, read through the same
record-to-row mapping (`table_rows`, i.e. `Run.cell`), so the two never disagree, without `rank`
(a table's order, not a run's) and with every config key rather than the varying ones:

- every config key, flattened (`model.out_1`, `optimizer.lr`, `seed`, ...);
- `obj.<metric>`: the objective values; `obj_epoch`: the epoch they were measured at (the last
  trained epoch for `objective.epoch=last`, so a `pruned` run's value is from the epoch it stopped
  at; the best epoch for `objective.epoch=best`);
- `val_acc`, `best_acc`, `val_loss`, `n_params`, `epochs`, `wall_s`, `state`, `folder`, `note`
  (compare's names; `val_acc` is `final.val_accuracy`, `best_acc` is `best.val_accuracy`);
- `final.<metric>`: the last epoch's row of metrics.csv; `best.<metric>`: the epoch with the best
  validation accuracy (`best.epoch` says which);
- the spread over a run's replicates (`replicates=R`; see compare's table), always present:
  `replicates` (how many replicates stand behind the row's numbers: 1 for a plain run; it stands
  in for the config key of that name), `<metric>_mean` and `<metric>_std` for each objective
  metric (over the replicates' objective values; std is the sample standard deviation; None for
  a plain run), `success_rate` (the share of replicates whose first objective metric reaches
  `replicate.success_threshold`; None for a plain run). For a run with replicates `val_acc`,
  `best_acc` and `val_loss` are the means over its replicates; `final.<metric>` and
  `best.<metric>` are replicate 0's (the plain run's seeds), as summary.json records them;
- `sweep`: the sweep or multirun folder holding the run (None for a single run);
- `config_group`, `group_size`: runs whose configs differ only in `seed` share a group
  (numbered in folder order); `group_size` counts the runs in it, e.g.
  `df[df.group_size > 1].groupby("config_group")["obj.val_accuracy"].agg(["mean", "std"])`
  (`python -m linesweep.compare --group-seeds` shows each group as one row);
- `warnings`: what was odd about the folder (None for most).

`load_configurations` is the same folders one row per configuration, with the numbers compare's
answer judged them by (see its docstring).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from linesweep.compare.answer import RunsAnswer
from linesweep.compare.groups import config_groups
from linesweep.compare.row import Run
from linesweep.compare.runs import SweepConfigs, expand, find_runs, read_run
from linesweep.compare.table import Selection, columns_for, compare, table_rows
from linesweep.core.answer import Configuration
from linesweep.core.stats import summarize
from linesweep.core.status import Status

PathLike = str | os.PathLike
CONFIGURATION_COLUMNS = (
    "label", "n_params", "metric", "direction", "epochs", "epoch", "status",
    "n", "replicates", "mean", "std", "ci_low", "ci_high", "ci_method",
    "success_rate", "successes", "success_ci_low", "success_ci_high",
    "compared", "why_not", "best", "smallest",
    "difference", "difference_ci_low", "difference_ci_high", "test", "p_value",
    "step", "p_adjusted", "worse", "folder", "sweep",
)  # fmt: skip


def load_runs(*paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """Every run folder at or below `paths` (default: outputs/) as a DataFrame, one row per run."""
    sweeps = SweepConfigs()
    runs = [read_run(folder, sweeps) for folder in _folders(paths)]
    frame = runs_frame(runs)
    troubled = int(frame["warnings"].notna().sum()) if len(frame) else 0
    if troubled:
        warnings.warn(
            f"{troubled} of {len(frame)} run folders have problems: see the 'warnings' column",
            stacklevel=2,
        )
    return frame


def load_configurations(
    *paths: PathLike | Iterable[PathLike],
    alpha: float | None = None,
    test: str | None = None,
    group_seeds: bool = False,
) -> pd.DataFrame:
    """Each configuration at or below `paths` (default: outputs/) with its statistics, one row
    each: the numbers `python -m linesweep.compare` judges its answer by.

    A configuration is a run that ended with a result (complete, pruned or diverged; a sweep's
    trial with its replicates, or a single run), as the answer sees it (linesweep/compare/
    answer.py); with `group_seeds=True`, runs that differ only in `seed` are one, as with
    `--group-seeds`. Failed, infeasible and unfinished runs have no values: see `load_runs`.
    `alpha` and `test` override the runs' `answer.*` config, as `--alpha` and `--test` do.
    Rows in folder order; columns:

    - the searched parameters (each sweep's search space, the runs' overrides), `label` (how the
      answer names it), `n_params`, `metric` and `direction` (its objective), `epochs` trained
      and `epoch` measured at (`best`: each replicate's best), `status`;
    - `n` (finite values), `replicates`, `mean`, `std` (sample), `ci_low`, `ci_high` (the mean's
      95% Student t interval; None below 2 values), `ci_method`, and `success_rate`,
      `successes`, `success_ci_low`, `success_ci_high` (its 95% Wilson interval; None without
      `replicate.success_threshold`): `linesweep.core.stats.summarize`, as every table shows;
    - `compared` (one of the K the answer ranked), `why_not` (why not, in the answer's words),
      `best`, `smallest` (the answer's best, and its smallest not distinguishable from the best);
    - for the compared: `difference` from the best with its 95% interval (`difference_ci_low`,
      `difference_ci_high`), `test` and `p_value` (one-sided, against the best, raw), `step` (its
      place in the sequence by size; None: not reached), `p_adjusted` (its tests against the K - 1
      others joined) and `worse` (`p_adjusted` < alpha);
    - `folder`, `sweep`.

    The answer itself is `df.attrs["answer"]`: its lines and numbers as optimization_results.yaml
    holds them (`Answer.to_dict()`).
    """
    flags = {"alpha": alpha, "test": test}
    comparison = compare(_folders(paths), Selection(group_seeds=group_seeds), answer_flags=flags)
    assert comparison.answer is not None  # compare always answers
    return configurations_frame(comparison.answer)


def configurations_frame(answered: RunsAnswer) -> pd.DataFrame:
    """The DataFrame of an answer's configurations (see `load_configurations` for its columns)."""
    a = answered.answer
    why = {}
    for name, reason in a.not_compared:
        why.setdefault(name, reason)
    keys = list(dict.fromkeys(k for c, _ in answered.pairs for k in c.params))
    rows = []
    for c, run in answered.pairs:
        entry = answered.entry_of(run)
        compared = entry is not None and a.has_spread
        s = (
            entry.summary
            if entry is not None
            else summarize(c.values, c.direction, c.success_threshold)
        )
        row: dict[str, Any] = {k: c.params.get(k) for k in keys}
        row.update(
            label=c.name, n_params=c.n_params, metric=c.metric, direction=c.direction,
            epochs=c.epochs, epoch=c.epoch, status=str(c.status), n=s.n,
            replicates=s.replicates, mean=s.mean, std=s.std, ci_low=s.ci_low,
            ci_high=s.ci_high, ci_method=s.ci_method, success_rate=s.success_rate,
            successes=s.successes, success_ci_low=s.success_low, success_ci_high=s.success_high,
            compared=compared,
            why_not=None if compared else why.get(c.name) or _why_not(c, a.has_spread),
            best=entry is not None and entry is a.best,
            smallest=entry is not None and entry is a.smallest,
        )  # fmt: skip
        k = entry.comparison if entry is not None else None
        row.update(
            difference=None if k is None else k.difference,
            difference_ci_low=None if k is None else k.ci_low,
            difference_ci_high=None if k is None else k.ci_high,
            test=None if k is None else k.test,
            p_value=None if k is None else k.p_value,
            step=None if entry is None else entry.step,
            p_adjusted=None if entry is None else entry.p_adjusted,
            worse=None if entry is None else entry.worse,
            folder=str(run.folder),
            sweep=None if run.sweep is None else str(run.sweep),
        )
        rows.append(row)
    columns = [*keys, *CONFIGURATION_COLUMNS]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame.attrs["answer"] = a.to_dict()
    return frame


def _why_not(c: Configuration, spread: bool) -> str:
    """Why a configuration the answer names nowhere is not compared: its status, or (the best
    by its single value) no spread."""
    if str(c.status) != Status.COMPLETE:
        return f"{c.status}: only complete configurations are compared"
    return "with one value: no spread" if not spread else "not compared"


def _folders(paths: Iterable[Any]) -> list:
    arguments = [os.fspath(p) for p in _flat(paths)] or ["outputs"]
    return find_runs(expand(arguments))


def _flat(paths: Iterable[Any]) -> list[PathLike]:
    flat: list[PathLike] = []
    for path in paths:
        if isinstance(path, (str, os.PathLike)):
            flat.append(path)
        else:  # a list or a generator of paths, as one argument
            flat += _flat(path)
    return flat


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The DataFrame of already-read runs (see the module docstring for its columns)."""
    keys = list(dict.fromkeys(k for run in runs if run.config for k in run.config))
    columns = [c for c in columns_for(runs, keys, spread=True) if c != "rank"]
    rows = table_rows(runs, columns)
    final_keys = list(dict.fromkeys(k for run in runs for k in run.final))
    best_keys = list(dict.fromkeys(k for run in runs for k in run.best))
    groups = config_groups(runs)
    sizes = {g: list(groups).count(g) for g in set(groups) if g is not None}
    for row, run, group in zip(rows, runs, groups, strict=True):
        del row["rank"]
        row["state"] = str(run.state)  # a plain string, not the enum
        row.update({f"final.{k}": run.final.get(k) for k in final_keys})
        row.update({f"best.{k}": run.best.get(k) for k in best_keys})
        row["sweep"] = None if run.sweep is None else str(run.sweep)
        row["config_group"] = group
        row["group_size"] = sizes.get(group) if group is not None else None
        row["warnings"] = "; ".join(run.warnings) or None
    extra = [
        *(f"final.{k}" for k in final_keys),
        *(f"best.{k}" for k in best_keys),
        "sweep",
        "config_group",
        "group_size",
        "warnings",
    ]
    return pd.DataFrame.from_records(rows, columns=[*columns, *extra])
