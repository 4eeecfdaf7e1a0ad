"""Runs of one configuration that differ only in `seed`: found, and (`--group-seeds`) merged.

`python -m linesweep.train -m seed=0,1,2` trains one configuration three times, as three runs.
`config_identity` says which runs are such repeats (their configs equal but for `seed` and the
settings that do not change what a run learns); `group_seeds` turns each set of two or more
repeats in one state into one row: a `Run` whose members are the runs (or, for runs trained with
`replicates`, all their replicates), so the table shows their mean with its 95% interval and
success rate as it does for a population. Its `seed` cell lists the seeds, its `grouped` the
folders; its folder, learning curve, weights and reproduce command are the first run's. Its
objective is `replicate.statistic` over the members, as a population's is
(`population_objective`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from linesweep.compare.fields import share
from linesweep.compare.row import Member, Run
from linesweep.compare.runs import natural_key
from linesweep.core.metrics import population_objective

NOISE_PREFIXES = ("hydra.", "plots.", "logger.")  # differ without changing what runs learn
NOISE_KEYS = frozenset({"trainer.progress_bar", "overwrite"})  # how a run ran, not what it learns
STATISTICS = ("mean", "median", "min", "success_rate")


def config_identity(run: Run) -> str | None:
    """The run's config without `seed` and noise, as text; None for a run without a config."""
    if run.config is None:
        return None
    kept = {
        k: v
        for k, v in run.config.items()
        if k != "seed" and k not in NOISE_KEYS and not k.startswith(NOISE_PREFIXES)
    }
    return json.dumps(kept, sort_keys=True, default=str)


def config_groups(runs: Sequence[Run]) -> list[int | None]:
    """A number per distinct config identity, in the runs' order (None: no config)."""
    seen: dict[str, int] = {}
    groups: list[int | None] = []
    for run in runs:
        identity = config_identity(run)
        groups.append(None if identity is None else seen.setdefault(identity, len(seen)))
    return groups


def group_seeds(runs: Sequence[Run]) -> list[Run]:
    """The runs with each set of same-config, same-state repeats merged into one (in place of
    the first of them); runs without a repeat stay as they are."""
    sets: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        identity = config_identity(run)
        if identity is not None:
            sets.setdefault((identity, str(run.state)), []).append(run)
    merged: dict[int, Run] = {}
    dropped: set[int] = set()
    for repeats in sets.values():
        if len(repeats) > 1:
            repeats = sorted(repeats, key=lambda r: natural_key(r.folder))
            merged[id(repeats[0])] = merge(repeats)
            dropped.update(id(r) for r in repeats[1:])
    return [merged.get(id(run), run) for run in runs if id(run) not in dropped]


def _members_of(run: Run) -> list[Member]:
    if run.members:
        return [
            Member(
                m.replicate, m.state, m.final, m.best, m.values, run.folder, m.seeds, m.epochs_run
            )
            for m in run.members
        ]
    return [
        Member(
            0, run.state, run.final, run.best, dict(run.objective), run.folder, run.seeds,
            run.epochs_run,
        )
    ]  # fmt: skip


def merge(runs: Sequence[Run]) -> Run:
    """One row for repeats of one configuration: the first run, with every run as members."""
    first = runs[0]
    config = dict(first.config or {})
    config["seed"] = [(run.config or {}).get("seed") for run in runs]
    members = [member for run in runs for member in _members_of(run)]
    metrics = list(first.objective)
    statistic = config.get("replicate.statistic", "mean")  # an older run's config: the default
    threshold = first.success_threshold
    if threshold is None:
        threshold = share(config.get("replicate.success_threshold"))
    objective: dict[str, float | None] = dict.fromkeys(metrics)
    if (
        metrics
        and statistic in STATISTICS
        and (threshold is not None or statistic != "success_rate")
    ):
        rows = [[_nan(m.values.get(metric)) for metric in metrics] for m in members]
        values = population_objective(rows, metrics, str(statistic), threshold or 0.0)
        objective = {m: _finite(v) for m, v in zip(metrics, values, strict=True)}
    walls = [run.wall_time_s for run in runs if run.wall_time_s is not None]
    return Run(
        folder=first.folder,
        state=first.state,
        config=config,
        config_text=first.config_text,
        objective=objective,
        final=first.final,
        best=first.best,
        history=first.history,
        shapes=first.shapes,
        n_params=first.n_params,
        epochs_run=first.epochs_run,
        wall_time_s=sum(walls) if walls else None,
        overrides=first.overrides,
        note=f"{len(runs)} runs grouped by seed; folder, curve and weights: the first's",
        sweep=first.sweep,
        members=members,
        success_threshold=threshold,
        grouped=[Path(run.folder) for run in runs],
    )


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
