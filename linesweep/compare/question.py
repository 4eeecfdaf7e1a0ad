"""What the runs were asked: each sweep's question, and the config keys a user chose to vary.

A sweep folder says what it searched: Hydra's `multirun.yaml` holds the sweeper's settings
(`hydra.sweeper`: search space, sampler, pruner, direction, study name) and the command line's
overrides; linesweep's `optimization_results.yaml` holds the trial counts. `read_question` reads
both into a `Question`, every value as text for the report to escape; it never raises (a missing or
odd file leaves its fields empty). `chosen_keys` tells which varying config keys the user set,
by the runs' own overrides: those get plots and the first columns, not the data.* keys that
differ only because two experiments were compared. `searched_keys` adds each sweep's search
space: the parameters the terminal table shows at any width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linesweep.compare.row import Run, read_overrides
from linesweep.compare.runs import load_yaml
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.rerun import multirun_command, rerun_command

RESULTS = "optimization_results.yaml"  # linesweep.sweep.results writes it (Optuna studies only)


@dataclass
class Question:
    """One sweep folder's question, as text: what it searched, how, and how far it got."""

    folder: Path
    study: str
    objective: list[str] = field(default_factory=list)  # "val_accuracy (maximize)"
    epoch: str | None = None  # objective.epoch: last or best
    space: dict[str, str] = field(default_factory=dict)  # key -> Hydra sweep expression
    fixed: list[str] = field(default_factory=list)  # the command line's other overrides
    sampler: str | None = None
    pruner: str | None = None
    n_trials: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # state -> trials
    multi_objective: bool = False
    task: list[str] = field(default_factory=list)  # the command line's overrides, as typed
    hydra: list[str] = field(default_factory=list)  # its hydra.* overrides, as typed
    optuna: bool = False  # an Optuna study (linesweep's sweeper), not Hydra's basic sweeper

    def rerun_command(self) -> str:
        """The sweep's command, ready for more replicates (as the sweep's end shows it)."""
        if self.optuna:
            return rerun_command(self.task, self.hydra, self.study)
        return multirun_command(self.task)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _load(path: Path) -> Mapping[str, Any]:
    try:
        return _mapping(load_yaml(path))
    except Exception:  # a missing, unreadable or hostile file: the fields stay empty
        return {}


def _settings(name: Any, extra: Mapping[str, Any]) -> str:
    """tpe, seed 0, population_size=10"""
    parts = [str(name)] + [f"{k}={v}" for k, v in extra.items() if v not in (None, {}, [])]
    return ", ".join(parts)


def _sampler(sweeper: Mapping[str, Any]) -> str | None:
    sampler = _mapping(sweeper.get("sampler"))
    if not sampler:
        target = str(sweeper.get("_target_", ""))
        return "every combination (Hydra's basic sweeper)" if "BasicSweeper" in target else None
    return _settings(*_named(sampler))


def _pruner(sweeper: Mapping[str, Any]) -> str | None:
    pruner = _mapping(sweeper.get("pruner"))
    if not pruner and "sampler" in sweeper:  # linesweep's sweeper, its pruner left unnamed
        return "default (median for one objective, none for several)"
    return _settings(*_named(pruner)) if pruner else None


def _named(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A sampler's or pruner's short name and its arguments, from its `_target_` config
    (`optuna.samplers.TPESampler` -> tpe); arguments left at Optuna's default are not shown."""
    target = str(config.get("_target_") or "?")
    name = target.rpartition(".")[2].removesuffix("Sampler").removesuffix("Pruner").lower()
    arguments = {k: v for k, v in config.items() if not k.startswith("_") and v is not None}
    return name or "?", arguments


def split_overrides(overrides: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Command-line overrides as (sweeps: key -> expression, the fixed ones), by Hydra's parser.

    A sweep needs a comma (`1,2,4`) or a call (`choice(...)`, `range(...)`): a value with
    neither is fixed without asking the parser, whose import costs ~0.15 s.
    """
    space: dict[str, str] = {}
    fixed: list[str] = []
    parser = None
    for text in overrides:
        key, _, expression = text.partition("=")
        sweep = False
        if "," in expression or "(" in expression:
            if parser is None:
                from hydra.core.override_parser.overrides_parser import OverridesParser

                parser = OverridesParser.create()
            try:
                sweep = parser.parse_overrides([text])[0].is_sweep_override()
            except Exception:  # not Hydra's grammar: shown as written
                sweep = False
        if sweep:
            space[key.lstrip("+~")] = expression
        else:
            fixed.append(text)
    return space, fixed


def read_question(sweep: Path) -> Question:
    """The question of the sweep (or `-m` multirun) in `sweep`, from the files Hydra and linesweep
    leave at its root."""
    tree = _load(sweep / "multirun.yaml")
    hydra = _mapping(tree.get("hydra"))
    sweeper = _mapping(hydra.get("sweeper"))
    results = _load(sweep / RESULTS)
    arguments, hydra_arguments = (
        _texts(_mapping(hydra.get("overrides")).get(k)) for k in ("task", "hydra")
    )
    from_command_line, fixed = split_overrides(arguments)
    params = _mapping(sweeper.get("params"))
    space = {str(k): str(v) for k, v in params.items()} | from_command_line  # the command wins

    objective = _mapping(tree.get("objective"))
    metrics = objective.get("metrics")
    metrics = [str(m) for m in metrics] if isinstance(metrics, list) else []
    directions = sweeper.get("direction")
    if not isinstance(directions, list):
        directions = [directions] * len(metrics) if directions else []
    if len(directions) != len(metrics):
        directions = [METRIC_DIRECTIONS.get(m, "?") for m in metrics]
    counts = _mapping(results.get("counts"))
    n_trials = results.get("n_trials", sweeper.get("n_trials"))
    return Question(
        folder=sweep,
        study=str(results.get("study_name") or sweeper.get("study_name") or sweep.name),
        objective=[f"{m} ({d})" for m, d in zip(metrics, directions, strict=True)],
        epoch=str(objective["epoch"]) if objective.get("epoch") else None,
        space=space,
        fixed=fixed,
        sampler=_sampler(sweeper),
        pruner=_pruner(sweeper),
        n_trials=n_trials if isinstance(n_trials, int) else None,
        counts={str(k): v for k, v in counts.items() if isinstance(v, int)},
        multi_objective=len(metrics) > 1,
        task=arguments,
        hydra=hydra_arguments,
        optuna=bool(results) or "sampler" in sweeper,
    )


def _texts(value: Any) -> list[str]:
    return [str(o) for o in value] if isinstance(value, list) else []


def _override_key(override: str) -> str:
    """+model.out_1@pkg=4 -> model.out_1"""
    return override.partition("=")[0].lstrip("+~").partition("@")[0]


def chosen_keys(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    """The `keys` (varying config keys) that some run's overrides set, directly or through their
    config group (optimizer=sgd sets optimizer.*), in the given order."""
    named: set[str] = set()
    for run in runs:
        overrides = run.overrides if run.overrides is not None else read_overrides(run)
        named.update(_override_key(o) for o in overrides)
    return [k for k in keys if k in named or any(k.startswith(n + ".") for n in named)]


def searched_keys(
    runs: Sequence[Run], keys: Sequence[str], questions: Sequence[Question]
) -> list[str]:
    """The config keys the user searched: the `keys` (varying ones) that the runs' overrides
    set, and every key of a sweep's search space (even one the shown runs happen to share),
    in the runs' config order."""
    space = {key for question in questions for key in question.space}
    chosen = set(chosen_keys(runs, keys))
    config = dict.fromkeys(k for run in runs for k in run.config or {})
    ordered = dict.fromkeys([*config, *keys])  # `seed` of a group of seeds: in no config
    return [k for k in ordered if k in chosen or (k in space and k in config)]
