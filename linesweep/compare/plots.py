"""Pictures that compare runs, one PNG per question a sweep raises; and the one call that draws
them all (`save_comparison_plots`), with each sweep's study plots (study_plots.py).

Which runs learned best (learning curves of the top runs), how the objective depends on each
parameter the user searched, and how few parameters suffice (accuracy against size). The best
run's kernels and feature maps are the run's own PNGs (pictures.py): nothing here rebuilds a
model.

One look throughout (plot_style.py): matplotlib's object API and default style, as
linesweep.run.plots draws. Every value is drawn with the epoch it was measured at: complete runs
filled, pruned runs hollow (their value is from the epoch they stopped at), other states as grey
crosses; frontiers and "best" lines use complete runs only; what a plot leaves out is written
under it. A run with replicates is drawn at its mean, with an error bar of the mean's 95% Student
t interval over its replicates (`linesweep.core.stats.summarize`, the interval every table and
the answer show) and each replicate as a small dot; the note under the plot says how many
replicates stand behind the bars. Accuracy against size, the report's first picture, marks the
answer: its best configuration and the smallest one not distinguishable from it. Parameter plots
are drawn only for the keys the user searched (the search space, the runs' overrides), not for
every key that differs between experiments.
A plot that cannot be drawn is a one-line problem for the caller, never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from linesweep.compare.answer import RunsAnswer
from linesweep.compare.display import format_value, short_names
from linesweep.compare.importances import studied, sweep_importances, sweep_study
from linesweep.compare.plot_style import (
    COMPLETE,
    DPI,
    FRONTIER,
    OTHER,
    PRUNED,
    epochs_text,
    is_number,
    one_line,
)
from linesweep.compare.row import Run, objective_epoch
from linesweep.compare.study_plots import study_plots
from linesweep.compare.table import Comparison, objective_metrics
from linesweep.core.files import save_figure
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.plotting import add_note, legend_row, log_scale_if_wide, set_log, tex_safe
from linesweep.core.stats import TEST_NAMES, summarize
from linesweep.core.status import Status

TOP_CURVES = 8  # learning curves overlaid; more than this is a tangle
ACCURACY_MARGIN = 0.05  # accuracy axes end this far beyond [0, 1], whatever a bar reaches
MAX_PARAMETER_PANELS = 12


def _distinct(runs: Sequence[Run], key: str) -> int:
    return len({format_value(run.cell(key)) for run in runs})


def label_keys(runs: Sequence[Run], keys: Sequence[str], most: int = 4) -> list[str]:
    """The keys that tell these runs apart best: those with the most distinct values."""
    telling = [k for k in keys if _distinct(runs, k) > 1]
    return sorted(telling, key=lambda k: -_distinct(runs, k))[:most]


def run_label(rank: int, run: Run, keys: Sequence[str]) -> str:
    names = short_names(keys)
    values = " ".join(f"{names[k]}={format_value(run.cell(k))}" for k in keys)
    label = f"#{rank} {values}" if values else f"#{rank} {run.folder.name}"
    if run.state != Status.COMPLETE:
        label += f" ({run.state} after epoch {run.epochs_run})"
    return tex_safe(label)


def _state_groups(runs: Sequence[Run]) -> list[tuple[str, list[int], dict[str, Any]]]:
    """(legend label, indices, scatter style): complete filled, pruned hollow, the rest crosses."""
    groups = []
    complete = [i for i, r in enumerate(runs) if r.state == Status.COMPLETE]
    pruned = [i for i, r in enumerate(runs) if r.state == Status.PRUNED]
    other = [i for i, r in enumerate(runs) if r.state not in (Status.COMPLETE, Status.PRUNED)]
    if complete:
        epochs = epochs_text([objective_epoch(runs[i]) or runs[i].epochs_run for i in complete])
        groups.append((f"{Status.COMPLETE} ({epochs})", complete, {"color": COMPLETE}))
    if pruned:
        epochs = epochs_text([runs[i].epochs_run for i in pruned])
        style = {"facecolors": "none", "edgecolors": PRUNED, "linewidths": 1.2}
        groups.append((f"{Status.PRUNED}, hollow ({epochs})", pruned, style))
    if other:
        states = ", ".join(sorted({str(runs[i].state) for i in other}))
        groups.append((f"{states} (stopped early)", other, {"color": OTHER, "marker": "x"}))
    return groups


def _scatter_by_state(
    ax: Any, runs: Sequence[Run], xs: Sequence[float], ys: Sequence[float]
) -> None:
    for label, picked, style in _state_groups(runs):
        ax.scatter([xs[i] for i in picked], [ys[i] for i in picked], s=22, label=label, **style)


def _draw_replicates(
    ax: Any, runs: Sequence[Run], xs: Sequence[float], values: Sequence[list[float | None]]
) -> str | None:
    """Error bars (the mean's 95% t interval) and a dot per replicate for the runs with
    replicates; `values[i]` holds run i's replicate values (empty for a plain run). A note on
    what was drawn, or None."""
    drawn = [i for i, v in enumerate(values) if len(v) > 1 and any(x is not None for x in v)]
    if not drawn:
        return None
    dots_x, dots_y, counts = [], [], []
    bars_x, means, below, above = [], [], [], []
    for i in drawn:
        finite = [v for v in values[i] if v is not None and math.isfinite(v)]
        dots_x += [xs[i]] * len(finite)
        dots_y += finite
        counts.append(len(values[i]))
        # a missing (diverged) replicate is left out of the mean and its interval
        summary = summarize([math.nan if v is None else v for v in values[i]])
        if summary.mean is not None and summary.ci_low is not None:
            bars_x.append(xs[i])
            means.append(summary.mean)
            below.append(summary.mean - summary.ci_low)
            above.append(summary.ci_high - summary.mean)  # type: ignore[operator]
    ax.scatter(dots_x, dots_y, s=7, color="black", alpha=0.3, linewidths=0, label="each replicate")
    ax.errorbar(
        bars_x,
        means,
        yerr=[below, above],
        fmt="none",
        ecolor="black",
        elinewidth=1,
        capsize=3,
        label="mean, 95% t interval",
    )
    low, high = min(counts), max(counts)
    n = f"{low}" if low == high else f"{low}–{high}"
    return (
        f"{len(drawn)} runs with replicates drawn at their mean, bars the mean's 95% Student t "
        f"interval over n = {n} replicates each, dots each replicate"
    )


def learning_curves(runs: Sequence[Run], keys: Sequence[str]) -> Figure | None:
    """Validation accuracy and loss per epoch of the first TOP_CURVES runs, in table order."""
    ranked = [(rank, run) for rank, run in enumerate(runs, start=1) if run.history][:TOP_CURVES]
    if not ranked:
        return None
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    (acc_ax, loss_ax), legend_ax = legend_row(fig, 1, 2, len(ranked), per_line=2)
    telling = label_keys([run for _, run in ranked], keys)
    losses = []
    for rank, run in ranked:
        epochs = [row["epoch"] for row in run.history]
        style = "-" if run.state == Status.COMPLETE else "--"  # pruned, killed: stopped early
        label = run_label(rank, run, telling)
        (line,) = acc_ax.plot(epochs, [r["val_accuracy"] for r in run.history], style, marker=".")
        loss_ax.plot(
            epochs,
            [r["val_loss"] for r in run.history],
            style,
            marker=".",
            color=line.get_color(),
            label=label,
        )
        losses += [r["val_loss"] for r in run.history]
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(-0.02, 1.02))
    loss_ax.set(xlabel="epoch", ylabel="validation loss")
    log_scale_if_wide(loss_ax, "y", losses)
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = loss_ax.get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="upper center", ncols=2, fontsize=9, frameon=False)
    with_curves = sum(1 for run in runs if run.history)
    fig.suptitle(f"learning curves of the top {len(ranked)} runs in the table's order")
    notes = []
    if any(run.state != Status.COMPLETE for _, run in ranked):
        notes.append("dashed: stopped early (pruned, killed...): the curve ends where it stopped")
    if with_curves > len(ranked):
        notes.append(f"{with_curves - len(ranked)} more runs with curves not drawn")
    add_note(fig, notes)
    return fig


def wants_log_axis(key: str, values: Sequence[float]) -> bool:
    """Learning rates, and any positive values spanning more than 1.5 decades."""
    if not values or min(values) <= 0:
        return False
    return key.split(".")[-1].endswith("lr") or max(values) / min(values) > 10**1.5


def objective_by_parameter(runs: Sequence[Run], keys: Sequence[str]) -> Figure | None:
    """The first objective against each parameter the user varied, one panel per parameter."""
    metrics = objective_metrics(runs)
    if not metrics or not keys:
        return None
    metric = metrics[0]
    scored = [run for run in runs if run.objective.get(metric) is not None and run.config]
    varied = [k for k in keys if _distinct(scored, k) > 1]
    panels = varied[:MAX_PARAMETER_PANELS]
    if not scored or not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows), layout="constrained")
    entries = len(_state_groups(scored)) + 2 * any(run.replicates > 1 for run in scored)
    axes, legend_ax = legend_row(fig, rows, columns, entries, per_line=3)
    ys = [run.objective[metric] for run in scored]
    per_replicate = [[m.values.get(metric) for m in run.members] for run in scored]
    spread_note = None
    for ax, key in zip(axes, panels, strict=False):
        values = [run.cell(key) for run in scored]
        if all(is_number(v) for v in values):
            xs = [float(v) for v in values]
            if wants_log_axis(key, xs):  # learning rates even within a decade
                set_log(ax, "x")
            elif all(isinstance(v, int) for v in values):  # channels, epochs: no 2.2 ticks
                ax.xaxis.get_major_locator().set_params(integer=True)
        else:  # strings, booleans, lists: one position per distinct value
            labels = sorted({format_value(v) for v in values})
            xs = [labels.index(format_value(v)) for v in values]
            ax.set_xticks(
                range(len(labels)), [tex_safe(t) for t in labels], rotation=20, fontsize=7
            )
        _scatter_by_state(ax, scored, xs, ys)
        spread_note = _draw_replicates(ax, scored, xs, per_replicate)
        ax.set(xlabel=tex_safe(key), ylabel=tex_safe(metric))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="upper center", ncols=3, fontsize=9, frameon=False)
    direction = METRIC_DIRECTIONS.get(metric, "")
    fig.suptitle(tex_safe(f"objective {metric} ({direction}) against each parameter varied"))
    notes = []
    if any(run.state == Status.PRUNED for run in scored):
        notes.append(
            "pruned runs drawn hollow: their value is from the epoch they stopped at, "
            "not comparable with complete runs"
        )
    if spread_note is not None:
        notes.append(f"{spread_note}; the marker: {_statistics(scored)}")
    if len(varied) > len(panels):
        notes.append(f"first {len(panels)} of {len(varied)} varied parameters drawn")
    unscored = len(runs) - len(scored)
    if unscored:
        notes.append(f"{unscored} runs without an objective value not drawn")
    add_note(fig, notes)
    return fig


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (size, accuracy) points that no smaller or equal model beats: fewest parameters first."""
    best, kept = -math.inf, []
    for size, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            best = accuracy
            kept.append((size, accuracy))
    return kept


def accuracy_by_size(runs: Sequence[Run], answered: RunsAnswer | None = None) -> Figure | None:
    """Last-epoch validation accuracy against parameter count: how few channels does it need?
    With the answer, its best and its smallest not distinguishable from the best are marked."""
    sized = [run for run in runs if is_number(run.n_params) and is_number(run.cell("val_acc"))]
    if not sized:
        return None
    xs = [float(run.n_params) for run in sized]  # type: ignore[arg-type]
    ys = [float(run.cell("val_acc")) for run in sized]  # a mean over replicates, if any
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.add_subplot()
    _scatter_by_state(ax, sized, xs, ys)
    finals = [[m.final.get("val_accuracy") for m in run.members] for run in sized]
    spread_note = _draw_replicates(ax, sized, xs, finals)
    complete = [(x, y) for x, y, r in zip(xs, ys, sized, strict=True) if r.state == Status.COMPLETE]
    edge = frontier(complete)
    if edge:
        ax.step(
            [p[0] for p in edge],
            [p[1] for p in edge],
            where="post",
            color=FRONTIER,
            marker="o",
            label="best accuracy for its size (complete runs)",
        )
    answer_note = _mark_answer(ax, sized, xs, ys, answered)
    log_scale_if_wide(ax, "x", xs)
    low, high = ax.get_ylim()
    cut = low < -ACCURACY_MARGIN or high > 1 + ACCURACY_MARGIN  # only a bar reaches there
    if cut:
        ax.set_ylim(max(low, -ACCURACY_MARGIN), min(high, 1 + ACCURACY_MARGIN))
    ax.set(xlabel="parameters", ylabel="validation accuracy at the last epoch trained")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"accuracy against size, {len(sized)} runs")
    notes = []
    early = len(sized) - len(complete)
    if early:
        notes.append(
            f"{early} runs that stopped early drawn hollow or as crosses and left out "
            "of the frontier: their accuracy is from the epoch they stopped at"
        )
    if not complete:
        notes.append("no complete run: no frontier")
    if spread_note is not None:
        notes.append(f"{spread_note}; the frontier joins the means")
    if cut:
        notes.append(
            "bars cut at the axis: a t interval of few replicates reaches past the [0, 1] an "
            "accuracy lies in"
        )
    if answer_note is not None:
        notes.append(answer_note)
    add_note(fig, notes)
    return fig


def _mark_answer(
    ax: Any,
    runs: Sequence[Run],
    xs: Sequence[float],
    ys: Sequence[float],
    answered: RunsAnswer | None,
) -> str | None:
    """The answer's best (a star) and smallest not distinguishable from it (a ring), where they
    are among `runs`; a note on what the marks mean, or None."""
    if answered is None or not answered.answer.has_spread:
        return None
    a = answered.answer
    marks = [
        (answered.best_run, {"marker": "*", "s": 170, "color": FRONTIER}, "the answer's best"),
        (
            answered.smallest_run,
            {"marker": "o", "s": 190, "facecolors": "none", "edgecolors": "tab:green"},
            "smallest not distinguishable from the best",
        ),
    ]
    drawn = False
    for run, style, label in marks:
        i = next((i for i, r in enumerate(runs) if r is run), None)
        if i is not None:
            ax.scatter([xs[i]], [ys[i]], linewidths=2, zorder=3, label=label, **style)
            drawn = True
    if not drawn:
        return None
    tests = ", ".join(a.tests) or TEST_NAMES["none"]
    return (
        f"star and ring: the answer, judged on {a.metric} ({a.direction}) over {a.ranked} "
        f"configurations with replicates ({tests}, alpha={a.settings.alpha:g})"
    )


def _statistics(runs: Sequence[Run]) -> str:
    """What a run's objective value is: its replicates' mean (or median...), or its one value."""
    named = {
        str((run.config or {}).get("replicate.statistic", "mean"))
        for run in runs
        if run.replicates > 1
    }
    return f"the objective ({', '.join(sorted(named))} over the replicates)"


def save_comparison_plots(comparison: Comparison, out: Path) -> tuple[list[Path], list[str]]:
    """Write every comparison plot into `out`, and each Optuna sweep's study plots: (files,
    problem lines)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = comparison.shown
    keys = comparison.searched
    if any(run.grouped for run in runs):  # --group-seeds: a row's seeds are its replicates
        keys = [key for key in keys if key != "seed"]
    figures = {
        "learning_curves.png": learning_curves(runs, keys),
        "objective_by_parameter.png": objective_by_parameter(runs, keys),
        "accuracy_by_size.png": accuracy_by_size(runs, comparison.answer),
    }
    written = []
    for name, fig in figures.items():
        if fig is not None:
            save_figure(fig, out / name, DPI)
            written.append(out / name)
    problems, stems = [], set()
    found = sweep_importances(comparison)
    for question in studied(comparison):
        sweep = question.folder
        stem = re.sub(r"[^\w.-]+", "_", sweep.name)  # sweeps/<study name>/ by default
        while stem in stems:  # two sweeps of one name, from different outputs/ folders
            stem += "_"
        stems.add(stem)
        try:
            study = sweep_study(comparison, sweep)  # never a URL a results file names
        except Exception as err:
            problems.append(f"{sweep}: no study plots: cannot open the study ({one_line(err)})")
            continue
        metrics = objective_metrics([run for run in runs if run.sweep == sweep])
        paths, trouble = study_plots(
            study, found.get(sweep), sweep, out, metrics, stem, question.counts
        )
        written += paths
        problems += trouble
    return written, problems
