"""What a sweep leaves in its folder besides the trials: the best result, and one row per trial.

Both files are rewritten (atomically) after every finished trial, from the study itself, so they
are current even if the sweep is killed, and agree with the storage whichever worker wrote last.
`closing_lines` says the same in a few lines, for the end of every sweep.

The answer (linesweep/core/answer.py: the best configuration, the smallest not distinguishable
from it, what was compared) comes from the study too: each run tells its trial its replicates'
values, seeds and size (`linesweep.core.trial_link.TrialResult`), `sweep_answer` turns the
trials into configurations, and its one computation is written under `answer:` in
optimization_results.yaml and said after the closing lines. An app without an `answer:` block
in its config (not linesweep's) gets no answer: its trials tell nothing to answer with.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from linesweep.core.answer import Answer, AnswerSettings, Configuration, answer
from linesweep.core.files import write_csv, write_yaml
from linesweep.core.rerun import rerun_command
from linesweep.core.status import Status
from linesweep.core.storage import shown_url
from linesweep.core.trial_link import TrialResult
from linesweep.sweep.coordination import (
    EPOCH,
    ERROR,
    FOLDER,
    REPLACED,
    STATE,
    rerun_numbers,
    retry_of,
    slot_holders,
)
from linesweep.sweep.outcomes import status_of

RESULTS_NAME = "optimization_results.yaml"
TRIALS_NAME = "trials.csv"


def state_of(trial: FrozenTrial, rerun: Collection[int] = ()) -> str:
    """linesweep's state of a trial (a `Status` value): Optuna's, refined by the reason a
    trial failed (its `linesweep.state`, the sweep's verdict).

    `rerun`: the numbers of the trials queued again (coordination.rerun_numbers), which were
    interrupted, whether or not they could be labelled so (Optuna's stale-trial failure cannot).
    """
    if trial.state == TrialState.FAIL and trial.number in rerun:
        return Status.INTERRUPTED.value
    return trial.user_attrs.get(STATE) or status_of(trial.state).value


def trial_states(trials: Sequence[FrozenTrial]) -> dict[int, str]:
    """linesweep's state of each trial, by number (see state_of)."""
    rerun = rerun_numbers(trials)
    return {t.number: state_of(t, rerun) for t in trials}


def epoch_of(trial: FrozenTrial) -> int | None:
    """The epoch a trial's values were measured at (a pruned trial's: its last report)."""
    epoch = trial.user_attrs.get(EPOCH)
    if epoch is None and trial.state == TrialState.PRUNED:
        return trial.last_step
    return epoch


def trial_rows(study: optuna.Study, value_names: Sequence[str]) -> tuple[list[dict], list[str]]:
    """One row per trial and the CSV columns: number, state, params, values, epoch, ..."""
    trials = study.get_trials(deepcopy=False)
    states = trial_states(trials)
    param_names = sorted({name for t in trials for name in t.params})
    rows = []
    for t in trials:
        duration = t.duration.total_seconds() if t.duration is not None else None
        row: dict[str, Any] = {"number": t.number, "state": states[t.number]}
        row.update({f"params.{name}": t.params.get(name) for name in param_names})
        values = t.values or [None] * len(value_names)
        row.update({f"values.{name}": v for name, v in zip(value_names, values, strict=True)})
        row.update(
            epoch=epoch_of(t) if t.values else None,
            duration_s=None if duration is None else round(duration, 3),
            folder=t.user_attrs.get(FOLDER),
            error=t.user_attrs.get(ERROR),
            retry_of=retry_of(t),
            replaced_repeat_of=t.user_attrs.get(REPLACED),
        )
        rows.append(row)
    columns = (
        ["number", "state"]
        + [f"params.{n}" for n in param_names]
        + [f"values.{n}" for n in value_names]
        + ["epoch", "duration_s", "folder", "error", "retry_of", "replaced_repeat_of"]
    )
    return rows, columns


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state; not the proposals replaced as duplicates, which never ran."""
    tally: dict[str, int] = {}
    for state in trial_states(study.get_trials(deepcopy=False)).values():
        if state != Status.DUPLICATE:
            tally[state] = tally.get(state, 0) + 1
    return dict(sorted(tally.items()))


def duplicates(study: optuna.Study) -> int:
    """How many proposals repeated a trial's parameters and were replaced (see proposals.py):
    the trials that ran a new point instead, and the repeats older versions told FAIL."""
    return sum(
        REPLACED in t.user_attrs or state_of(t) == Status.DUPLICATE
        for t in study.get_trials(deepcopy=False)
    )


def summary(
    study: optuna.Study, n_trials: int, storage_url: str, answered: Answer | None = None
) -> dict[str, Any]:
    """The content of optimization_results.yaml (Hydra's Optuna plugin layout, plus counts and
    the answer)."""
    result: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": shown_url(storage_url),
        "directions": [d.name.lower() for d in study.directions],
        "n_trials": n_trials,
        "counts": counts(study),
    }
    if duplicates(study):
        result["duplicates_replaced"] = duplicates(study)
    if answered is not None:
        result["answer"] = answered.to_dict()
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return result
    if len(study.directions) == 1:
        best = study.best_trial
        result.update(
            best_trial=best.number,
            best_params=dict(best.params),
            best_value=best.value,
            best_epoch=epoch_of(best),
            best_folder=best.user_attrs.get(FOLDER),
        )
    else:
        result["solutions"] = [
            {
                "number": t.number,
                "params": dict(t.params),
                "values": list(t.values),
                "epoch": epoch_of(t),
                "folder": t.user_attrs.get(FOLDER),
            }
            for t in sorted(study.best_trials, key=lambda t: t.number)
        ]
    return result


def write_sweep_results(
    sweep_dir: Path,
    study: optuna.Study,
    n_trials: int,
    storage_url: str,
    value_names: Sequence[str],
    answered: Answer | None = None,
) -> None:
    rows, columns = trial_rows(study, value_names)
    write_csv(sweep_dir / TRIALS_NAME, rows, columns, spreadsheet_safe=True)
    write_yaml(sweep_dir / RESULTS_NAME, summary(study, n_trials, storage_url, answered))


def no_result(study: optuna.Study) -> str | None:
    """Why a study that ended has no result at all: every trial that holds a slot failed
    (refused, infeasible, diverged...), none is still running; None if one has a result."""
    held = slot_holders(study.get_trials(deepcopy=False))
    if not held or any(t.state != TrialState.FAIL for t in held):
        return None
    last = held[-1].user_attrs.get(ERROR) or held[-1].user_attrs.get(STATE)
    return f"sweep ended without a result: all {len(held)} of its trials failed; last error: {last}"


def format_params(params: dict[str, Any]) -> str:
    """`model.out_1=4 optimizer.lr=0.01`: floats to 4 significant digits."""
    shown = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    return shown or "no parameters"


def closing_lines(
    sweep_dir: Path, study: optuna.Study, n_trials: int, value_names: Sequence[str]
) -> list[str]:
    """The end of a sweep in a few lines: counts, the best trial, where the results are."""
    trials = study.get_trials(deepcopy=False)
    held = slot_holders(trials)
    running = sum(t.state == TrialState.RUNNING for t in held)
    head = f"study {study.study_name!r}: {len(held) - running} of {n_trials} trials finished"
    if running:
        head += f", {running} still running"
    tally = ", ".join(f"{n} {state}" for state, n in counts(study).items())
    replaced = duplicates(study)
    if replaced:
        tally += f"; {replaced} repeated proposal{'s' * (replaced > 1)} replaced"
    lines = [f"{head} ({tally or 'no trials'})"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        lines.append("no trial has completed yet: there is no best value")
    elif len(study.directions) == 1:
        best = study.best_trial
        epoch = epoch_of(best)
        lines.append(
            f"best single trial: {value_names[0]}={best.value:.4g} (trial {best.number}"
            + (f", epoch {epoch}" if epoch is not None else "")
            + f"): {format_params(best.params)}"
        )
    else:
        lines.append(
            f"Pareto set: {len(study.best_trials)} trials, listed under `solutions` in "
            f"{sweep_dir / RESULTS_NAME}"
        )
    lines.append(f"results: {sweep_dir / RESULTS_NAME} and {sweep_dir / TRIALS_NAME}")
    lines.append(f"compare the trials: python -m linesweep.compare {shlex.quote(str(sweep_dir))}")
    return lines


# ---------------------------------------------------------------- the answer


@dataclass(frozen=True)
class AnswerSetup:
    """How a sweep's answer judges (the app's `answer:` block) and the command it shows."""

    settings: AnswerSettings
    command: str  # the sweep's own command, for "add replicates=3"


def answer_setup(config: DictConfig, study_name: str) -> AnswerSetup | None:
    """From the sweep's config: its `answer:` block (checked: a bad value is one line naming
    its key) and the command that made it; None for an app without the block."""
    block = OmegaConf.select(config, "answer", default=None)
    if not OmegaConf.is_dict(block):
        return None
    plain = OmegaConf.to_container(block, resolve=True)
    known = {f.name for f in fields(AnswerSettings)}
    settings = AnswerSettings(**{k: v for k, v in plain.items() if k in known})
    typed = OmegaConf.select(config, "hydra.overrides", default=None)
    if typed is None:
        return AnswerSetup(settings, rerun_command([], [], study_name))
    # As typed: `${oc.env:...}` stays unresolved, as the sweeper keeps a storage password out.
    task, hydra = (OmegaConf.to_container(typed[k], resolve=False) for k in ("task", "hydra"))
    return AnswerSetup(settings, rerun_command(task, hydra, study_name))


def answer_configurations(study: optuna.Study) -> list[Configuration]:
    """A configuration per finished trial whose run told its result (complete, pruned,
    diverged: the answer compares the complete ones and counts the others by state)."""
    trials = study.get_trials(deepcopy=False)
    states = trial_states(trials)
    out = []
    for t in trials:
        result = TrialResult.from_attrs(t.user_attrs)
        if result is None or t.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        out.append(
            Configuration(
                params=dict(t.params),
                n_params=result.n_params,
                metric=result.metric,
                direction=result.direction,
                values=[math.nan if v is None else v for v in result.values],
                epoch=result.epochs_run if result.epoch_rule == "last" else "best",
                epochs=result.epochs_run,
                seeds=result.seeds,
                status=states[t.number],
                success_threshold=result.success_threshold,
            )
        )
    return out


def sweep_answer(study: optuna.Study, setup: AnswerSetup | None) -> Answer | None:
    """The sweep's answer from its study, once; None for an app without an `answer:` block."""
    if setup is None:
        return None
    return answer(answer_configurations(study), setup.settings, setup.command)
