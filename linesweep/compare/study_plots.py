"""What an Optuna study found, as PNGs: its optimization history, parameter importances and (two
objectives) Pareto front, from the study's own trials (its journal, or --storage).

The numbers come from Optuna (the trials, `best_trials`; the importances through
`linesweep.core.importance`, PED-ANOVA on the replicated values, drawn with its caveat of seed
noise under the bars, the same numbers the report lists), but the plots are drawn here, in
plot_style's look: Optuna's matplotlib functions switch to a grey ggplot style and draw COMPLETE
trials only, without saying so. Optuna's trial states say what is drawn
(complete filled, pruned hollow); what is left out is named under the plot by linesweep's own
states (failed, diverged, infeasible, interrupted...) as the sweep counted them in its
optimization_results.yaml (`counts`, the numbers the report's question shows), or by Optuna's
state names when that file says nothing. A plot that cannot be drawn is a one-line problem for
the caller, never an exception.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from linesweep.compare.plot_style import (
    COMPLETE,
    DPI,
    FRONTIER,
    PRUNED,
    epochs_text,
    is_number,
    one_line,
    tally,
)
from linesweep.core.files import save_figure
from linesweep.core.importance import Importances
from linesweep.core.plotting import add_note, log_scale_if_wide, tex_safe
from linesweep.core.status import Status

Counts = Mapping[str, int]  # trials by linesweep's state, from optimization_results.yaml
# Optuna's states as linesweep's words, for the ones a plot draws (the others are counted).
OPTUNA_STATES = {"COMPLETE": Status.COMPLETE.value, "PRUNED": Status.PRUNED.value}
NOTE_WIDTH = 120  # characters per line of a note under a plot


def _trial_value(trial: Any, index: int) -> float | None:
    """A trial's value of objective `index`; a pruned one's is its last reported (its epoch's)."""
    if trial.values is not None and len(trial.values) > index:
        value = trial.values[index]
    elif index == 0 and trial.last_step is not None:
        value = trial.intermediate_values.get(trial.last_step)
    else:
        value = None
    return float(value) if is_number(value) else None


def not_drawn(trials: Sequence[Any], drawn: Counts, counts: Counts | None) -> str:
    """The trials a plot leaves out, by state: the sweep's `counts` less those `drawn` (both by
    state name: complete, pruned), or without counts, Optuna's state names (fail, running)."""
    if not counts:
        counts = Counter(trial.state.name.lower() for trial in trials)
    return tally({state: n - drawn.get(state, 0) for state, n in counts.items()})


def history_plot(
    study: Any, names: Sequence[str], title: str, counts: Counts | None = None
) -> Figure:
    """Each trial's first objective by trial number; the best-so-far line over complete trials."""
    import optuna

    states = optuna.trial.TrialState
    metric = names[0]
    maximize = study.directions[0].name == "MAXIMIZE"
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    trials = study.get_trials(deepcopy=False)
    drawn: dict[str, tuple[list[int], list[float], list[int]]] = {}
    for trial in trials:
        value = _trial_value(trial, 0)
        if trial.state not in (states.COMPLETE, states.PRUNED) or value is None:
            continue
        state = OPTUNA_STATES[trial.state.name]
        numbers, values, epochs = drawn.setdefault(state, ([], [], []))
        numbers.append(trial.number)
        values.append(value)
        epochs.append(trial.last_step)
    if Status.COMPLETE.value in drawn:
        numbers, values, epochs = drawn[Status.COMPLETE.value]
        label = f"{Status.COMPLETE} ({epochs_text(epochs)})"
        ax.scatter(numbers, values, s=24, color=COMPLETE, label=label)
        best, running = [], -math.inf if maximize else math.inf
        for value in values:
            running = max(running, value) if maximize else min(running, value)
            best.append(running)
        end = max(t.number for t in trials)
        ax.step(
            [*numbers, end],
            [*best, best[-1]],
            where="post",
            color=FRONTIER,
            label="best complete so far",
        )
    if Status.PRUNED.value in drawn:
        numbers, values, epochs = drawn[Status.PRUNED.value]
        ax.scatter(
            numbers,
            values,
            s=24,
            facecolors="none",
            edgecolors=PRUNED,
            linewidths=1.2,
            label=f"{Status.PRUNED}, hollow ({epochs_text(epochs)})",
        )
    ax.set(xlabel="trial", ylabel=tex_safe(f"{metric} ({'max' if maximize else 'min'}imize)"))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(tex_safe(title))
    notes = [
        "history shows COMPLETE and PRUNED trials only; pruned ones at the value of the epoch "
        "they stopped at, left out of the best line"
    ]
    left_out = not_drawn(trials, {s: len(d[0]) for s, d in drawn.items()}, counts)
    if left_out:
        notes.append(f"not drawn (no value): {left_out}")
    if len(study.directions) > 1:
        notes.append(f"the first of {len(study.directions)} objectives")
    add_note(fig, notes)
    return fig


def importances_plot(found: Importances, names: Sequence[str], title: str) -> Figure:
    """`linesweep.core.importance`'s PED-ANOVA importances for the first objective, as bars,
    with the caveat of seed noise written under them."""
    importances = found.importances
    keys = list(importances)[::-1]  # the most important on top
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * max(len(keys), 2)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh([tex_safe(k) for k in keys], [importances[k] for k in keys], color=COMPLETE)
    for y, key in enumerate(keys):
        ax.text(importances[key], y, f" {importances[key]:.2f}", va="center", fontsize=8)
    ax.set_xlabel(tex_safe(f"importance for {names[0]} (PED-ANOVA, sums to 1)"))
    ax.set_xlim(0, max([*importances.values(), 0.01]) * 1.15)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(tex_safe(title))
    notes = [f"{found.evaluator}; pruned and failed trials not used", f"caveat: {found.caveat}"]
    add_note(fig, [line for note in notes for line in textwrap.wrap(note, NOTE_WIDTH)])
    return fig


def pareto_plot(
    study: Any, names: Sequence[str], title: str, counts: Counts | None = None
) -> Figure:
    """Two objectives: every complete trial, the Pareto set (Optuna's best_trials) joined."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = {t.number for t in study.best_trials}
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.add_subplot()
    others = [t for t in complete if t.number not in best]
    front = sorted((t for t in complete if t.number in best), key=lambda t: t.values[0])
    ax.scatter(
        [t.values[0] for t in others],
        [t.values[1] for t in others],
        s=22,
        color=COMPLETE,
        alpha=0.6,
        label=Status.COMPLETE.value,
    )
    ax.plot(
        [t.values[0] for t in front],
        [t.values[1] for t in front],
        "-o",
        color=FRONTIER,
        label=f"Pareto set ({len(front)})",
    )
    for t in front:
        ax.annotate(
            f"#{t.number}",
            (t.values[0], t.values[1]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    directions = [d.name.lower() for d in study.directions]
    ax.set(
        xlabel=tex_safe(f"{names[0]} ({directions[0]})"),
        ylabel=tex_safe(f"{names[1]} ({directions[1]})"),
    )
    log_scale_if_wide(ax, "y", [t.values[1] for t in complete])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(tex_safe(title))
    left_out = not_drawn(
        study.get_trials(deepcopy=False), {Status.COMPLETE.value: len(complete)}, counts
    )
    if left_out:
        add_note(fig, [f"complete trials only; not drawn: {left_out}"])
    return fig


def study_plots(
    study: Any,
    found: Importances | str | None,
    sweep: Path,
    out: Path,
    metrics: Sequence[str],
    stem: str,
    counts: Counts | None = None,
) -> tuple[list[Path], list[str]]:
    """The sweep's study plots into `out` as study_<stem>_<kind>.png: (files, problem lines).

    `found`: the study's importances (importances.py), or why it has none (a line for the
    caller's problems); no importances, no importance plot (the report says why)."""
    import optuna

    n = len(study.directions)
    names = list(metrics) if len(metrics) == n else [f"objective {i}" for i in range(n)]
    name = study.study_name
    plots: dict[str, Any] = {
        "history": lambda: history_plot(study, names, f"{name}: optimization history", counts),
    }
    problems = []
    if isinstance(found, Importances) and found.importances:
        title = f"{name}: parameter importances"
        plots["importances"] = lambda: importances_plot(found, names, title)
    elif isinstance(found, str):
        problems.append(f"{sweep}: no importances plot ({found})")
    if n == 2:
        plots["pareto"] = lambda: pareto_plot(study, names, f"{name}: Pareto front", counts)
    written = []
    for kind, draw in plots.items():
        path = out / f"study_{stem}_{kind}.png"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                save_figure(draw(), path, DPI)
        except Exception as err:  # a study whose trials a plot cannot read
            problems.append(f"{sweep}: no {kind} plot ({one_line(err)})")
            continue
        problems += [f"{sweep}: {kind} plot: {one_line(w.message)}" for w in caught]
        written.append(path)
    return written, problems
