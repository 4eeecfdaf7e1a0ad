"""Run folders as a pandas DataFrame, for a notebook: `linesweep.load_runs(...)`.

    import linesweep

    df = linesweep.load_runs("outputs/sweeps/channels_lr")      # or several folders, or globs
    done = df[df.state == "complete"]                             # pruned runs stopped early
    done.sort_values("obj.val_accuracy", ascending=False).head()  # what compare ranks first
    done.groupby("model.out_1")["obj.val_accuracy"].max()         # how few channels suffice?
    df.plot.scatter("optimizer.lr", "obj.val_accuracy", logx=True)

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
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from linesweep.compare.groups import config_groups
from linesweep.compare.row import Run
from linesweep.compare.runs import SweepConfigs, expand, find_runs, read_run
from linesweep.compare.table import columns_for, table_rows

PathLike = str | os.PathLike


def load_runs(*paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """Every run folder at or below `paths` (default: outputs/) as a DataFrame, one row per run."""
    arguments = [os.fspath(p) for p in _flat(paths)] or ["outputs"]
    sweeps = SweepConfigs()
    runs = [read_run(folder, sweeps) for folder in find_runs(expand(arguments))]
    frame = runs_frame(runs)
    troubled = int(frame["warnings"].notna().sum()) if len(frame) else 0
    if troubled:
        warnings.warn(
            f"{troubled} of {len(frame)} run folders have problems: see the 'warnings' column",
            stacklevel=2,
        )
    return frame


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
