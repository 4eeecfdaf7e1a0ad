"""The answer for the runs compare shows: `linesweep.core.answer` on configurations built from
compare's own `Run`s, computed once per comparison (`table.compare`) and shown by the terminal,
the report, the plots and `linesweep.load_configurations`.

A sweep's end computes its answer from its study (linesweep/sweep/results.py); compare builds the
same `Configuration`s from what the runs wrote into their folders, so that the two agree (same
best, same smallest, same p-values, the same lines), field by field:

- which runs: those that ended with a result (complete, pruned, diverged), as a sweep's trial is
  told its result only then; pruned and diverged ones are left out of the comparison and counted;
- their order: folder order, 2 before 10 (a sweep's trial folders are its trial numbers);
- params: a sweep's search space, in its order, each run's value as its overrides set it (a config
  group's option included), as Optuna holds the trial's params; outside a sweep, the keys the
  user searched (table.py), valued the same way;
- values and seeds per replicate: summary.json's members (a plain run: its one value and seeds);
  n_params, the objective's first metric and its direction, the status;
- epochs: the longest replicate's (a diverged one stops early); the epoch: `best` for
  objective.epoch=best, else the epochs trained;
- settings: the runs' `answer.*` config (alpha, test, correction; the first run's, in folder
  order), which --alpha and --test override; a value the answer refuses is one line naming its
  key (UsageError: exit 2);
- the command the no-spread line shows: the sweep's own, ready for replicates=3
  (`linesweep.core.rerun`, as the sweep's end builds it), a multirun's, or the best run's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from linesweep.compare.console import UsageError
from linesweep.compare.fields import share
from linesweep.compare.question import Question
from linesweep.compare.reproduce import reproduce_command
from linesweep.compare.row import Run
from linesweep.compare.runs import natural_key, parse_value
from linesweep.core.answer import Answer, AnswerSettings, Configuration, Entry, answer
from linesweep.core.errors import ConfigError
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.status import Status

ENDED = (Status.COMPLETE, Status.PRUNED, Status.DIVERGED)  # a sweep's trial has a result
FLAGS = ("alpha", "test")  # the settings compare's command line overrides (--alpha, --test)


@dataclass(frozen=True)
class RunsAnswer:
    """The answer, and which run each of its configurations is."""

    answer: Answer
    pairs: tuple[tuple[Configuration, Run], ...]  # in folder order
    note: str | None = None  # the runs disagree on a setting: which one was used

    def run_of(self, entry: Entry | None) -> Run | None:
        if entry is None:
            return None
        return next((r for c, r in self.pairs if c is entry.configuration), None)

    @property
    def best_run(self) -> Run | None:
        return self.run_of(self.answer.best)

    @property
    def smallest_run(self) -> Run | None:
        return self.run_of(self.answer.smallest)

    def entry_of(self, run: Run) -> Entry | None:
        """The run's place in the answer (the best, or one compared), or None."""
        found = next((c for c, r in self.pairs if r is run), None)
        entries = (self.answer.best, *self.answer.compared)
        return next((e for e in entries if e is not None and e.configuration is found), None)

    def lines(self) -> list[str]:
        return self.answer.lines()


def answer_runs(
    runs: Sequence[Run],
    questions: Sequence[Question],
    searched: Sequence[str],
    best: Run | None,
    flags: Mapping[str, Any] | None = None,
) -> RunsAnswer:
    """The answer for `runs` (compare's shown runs): settings from their config and `flags`."""
    settings, note = answer_settings(runs, flags or {})
    spaces = {q.folder: list(q.space) for q in questions}
    pairs = []
    for run in sorted(runs, key=lambda r: natural_key(r.folder)):
        keys = spaces.get(run.sweep) if run.sweep is not None else None
        made = configuration(run, keys or searched)
        if made is not None:
            pairs.append((made, run))
    command = answer_command(runs, questions, best)
    return RunsAnswer(answer([c for c, _ in pairs], settings, command), tuple(pairs), note)


def configuration(run: Run, keys: Sequence[str]) -> Configuration | None:
    """The run as the answer sees it; None for a run that never ended with a result."""
    metric = next(iter(run.objective), None)
    if run.state not in ENDED or metric not in METRIC_DIRECTIONS or run.n_params is None:
        return None
    if run.members:
        values = [m.values.get(metric) for m in run.members]
        seeds = [m.seeds for m in run.members]
        trained = [m.epochs_run for m in run.members if m.epochs_run is not None]
        epochs = max(trained) if trained else run.epochs_run
    else:
        values, seeds, epochs = [run.objective.get(metric)], [run.seeds], run.epochs_run
    config = run.config or {}
    threshold = run.success_threshold
    if threshold is None:
        threshold = share(config.get("replicate.success_threshold"))
    params = answer_params(run, keys)
    return Configuration(
        params=params,
        n_params=run.n_params,
        metric=metric,
        direction=METRIC_DIRECTIONS[metric],
        values=[math.nan if v is None else v for v in values],
        epoch="best" if config.get("objective.epoch") == "best" else (epochs or 0),
        epochs=epochs or 0,
        seeds=None if any(s is None for s in seeds) else seeds,
        status=str(run.state),
        success_threshold=threshold,
        label=None if params else str(run.folder),
    )


def answer_params(run: Run, keys: Sequence[str]) -> dict[str, Any]:
    """Each key's value as the run's overrides set it (`optimizer=sgd`, `optimizer.lr=0.01`),
    else its config value; keys the run has neither of are left out."""
    typed: dict[str, Any] = {}
    for override in run.overrides or []:
        key, sep, value = override.partition("=")
        if sep:
            typed[key.lstrip("+~").partition("@")[0]] = value
    params = {}
    for key in keys:
        if key in typed:
            params[key] = parse_value(typed[key])
        elif run.config is not None and key in run.config:
            params[key] = run.config[key]
    return params


def answer_settings(
    runs: Sequence[Run], flags: Mapping[str, Any]
) -> tuple[AnswerSettings, str | None]:
    """The runs' `answer.*` config (the first run's, in folder order), `flags` over it."""
    ordered = sorted(runs, key=lambda r: natural_key(r.folder))
    chosen: dict[str, Any] = {}
    notes = []
    for name in (f.name for f in fields(AnswerSettings)):
        found = [
            run.config[f"answer.{name}"]
            for run in ordered
            if run.config is not None and f"answer.{name}" in run.config
        ]
        if found:
            chosen[name] = found[0]
            if len({repr(v) for v in found}) > 1 and flags.get(name) is None:
                notes.append(f"answer.{name}={found[0]!r} (the first run's)")
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = AnswerSettings(**{**chosen, **given})
    except ConfigError as err:
        name = err.key.removeprefix("answer.")
        if name in given:
            raise UsageError(f"--{name} {err.value} is not allowed: {err.allowed}") from None
        fix = f"; --{name} overrides it" if name in FLAGS else ""
        raise UsageError(f"{err} (in the runs' .hydra/config.yaml){fix}") from None
    note = None
    if notes:
        note = f"the runs' answer settings differ; the answer uses {', '.join(notes)}"
    return settings, note


def check_flags(flags: Mapping[str, Any]) -> None:
    """--alpha and --test, checked before any folder is read: one line naming the option, its
    value and what is allowed (UsageError: exit 2)."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        AnswerSettings(**given)
    except ConfigError as err:
        name = err.key.removeprefix("answer.")
        raise UsageError(f"--{name} {given[name]} is not allowed: {err.allowed}") from None


def alpha_flag(text: str) -> float:
    """--alpha's value as a number (argparse's `type`): a word is the same one line."""
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--alpha {text} is not allowed: a number in (0, 1)") from None


def answer_command(
    runs: Sequence[Run], questions: Sequence[Question], best: Run | None
) -> str | None:
    """The command the no-spread line shows: one sweep's (or multirun's) own, the best run's for
    runs outside sweeps, None for runs of several."""
    sweeps = {run.sweep for run in runs}
    if len(sweeps) == 1 and None not in sweeps:
        (sweep,) = sweeps
        question = next((q for q in questions if q.folder == sweep), None)
        return None if question is None else question.rerun_command()
    if sweeps == {None} and best is not None:
        return reproduce_command(best, drop=("replicates",))
    return None
