"""Pictures that compare runs, one PNG per question a sweep raises.

Which runs learned best (learning curves of the top runs), how the objective depends on each
parameter the user varied, how few parameters suffice (accuracy against size), what an Optuna study
found (its history, parameter importances and Pareto front), and what the best run learned (its
kernels and feature maps, drawn from its weights when the run did not save them).

One look throughout: matplotlib's object API and default style, as linesweep.run.plots draws. The
study plots take their numbers from Optuna (the trials, `get_param_importances`, `best_trials`) but
are drawn here, because Optuna's matplotlib functions switch to a grey ggplot style and draw
COMPLETE trials only, without saying so. Every value is drawn with the epoch it was measured at:
complete runs filled, pruned runs hollow (their value is from the epoch they stopped at), other
states as grey crosses; frontiers and "best" lines use complete runs only; what a plot leaves out
is written under it. A run with replicates is drawn at its mean, with an error bar of one standard
deviation over its replicates and each replicate as a small dot; the note under the plot says how
many replicates stand behind the bars. Parameter plots are drawn only for the keys the runs'
overrides set (the search space, the command line), not for every key that differs between
experiments. A plot that
cannot be drawn is a one-line problem for the caller, never an exception.

Why one module over 300 lines: one function per picture, sharing the run labels, the state
colours and the notes that say what a picture leaves out; split, those would be passed around.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from linesweep.compare.question import chosen_keys
from linesweep.compare.runs import config_tree, objective_epoch
from linesweep.compare.studies import open_study
from linesweep.compare.table import format_value, objective_metrics
from linesweep.core.files import save_figure
from linesweep.core.metrics import METRIC_DIRECTIONS, spread
from linesweep.core.plotting import add_note, legend_row, log_scale_if_wide, set_log, tex_safe
from linesweep.core.record import PICTURE_CAP, WEIGHTS, WEIGHTS_CAP, read_weights
from linesweep.core.safe_read import is_regular
from linesweep.core.status import Status

if TYPE_CHECKING:
    from linesweep.compare.runs import Run
    from linesweep.compare.table import Comparison

TOP_CURVES = 8  # learning curves overlaid; more than this is a tangle
MAX_PARAMETER_PANELS = 12
DPI = 100
RUN_PICTURES = ("kernels_conv1.png", "kernels_conv2.png", "feature_maps.png")
COMPLETE, PRUNED, OTHER = "tab:blue", "tab:orange", "tab:gray"
FRONTIER = "tab:red"


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix that still tells the keys apart: optimizer.lr -> lr."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if sum(k == suffix or k.endswith("." + suffix) for k in keys) == 1:
                break
        names[key] = suffix
    return names


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


def _epochs(values: Sequence[int | None]) -> str:
    """epoch 3, or epochs 1-2: the epochs a group of values was measured at."""
    known = sorted({v for v in values if v is not None})
    if not known:
        return "epoch unknown"
    return f"epoch {known[0]}" if len(known) == 1 else f"epochs {known[0]}–{known[-1]}"


def _state_groups(runs: Sequence[Run]) -> list[tuple[str, list[int], dict[str, Any]]]:
    """(legend label, indices, scatter style): complete filled, pruned hollow, the rest crosses."""
    groups = []
    complete = [i for i, r in enumerate(runs) if r.state == Status.COMPLETE]
    pruned = [i for i, r in enumerate(runs) if r.state == Status.PRUNED]
    other = [i for i, r in enumerate(runs) if r.state not in (Status.COMPLETE, Status.PRUNED)]
    if complete:
        epochs = _epochs([objective_epoch(runs[i]) or runs[i].epochs_run for i in complete])
        groups.append((f"complete ({epochs})", complete, {"color": COMPLETE}))
    if pruned:
        epochs = _epochs([runs[i].epochs_run for i in pruned])
        style = {"facecolors": "none", "edgecolors": PRUNED, "linewidths": 1.2}
        groups.append((f"pruned, hollow ({epochs})", pruned, style))
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
    """Error bars (± one std) and a dot per replicate for the runs with replicates; `values[i]`
    holds run i's replicate values (empty for a plain run). A note on what was drawn, or None."""
    drawn = [i for i, v in enumerate(values) if len(v) > 1 and any(x is not None for x in v)]
    if not drawn:
        return None
    dots_x, dots_y, counts = [], [], []
    for i in drawn:
        finite = [v for v in values[i] if v is not None and math.isfinite(v)]
        dots_x += [xs[i]] * len(finite)
        dots_y += finite
        counts.append(len(values[i]))
    # spread's mean and std leave a missing (diverged) replicate out; its threshold is unused here
    nan = math.nan
    stats = [spread([nan if v is None else v for v in values[i]], "val_accuracy", 0) for i in drawn]
    ax.scatter(dots_x, dots_y, s=7, color="black", alpha=0.3, linewidths=0, label="each replicate")
    ax.errorbar(
        [xs[i] for i in drawn],
        [st["mean"] for st in stats],
        yerr=[st["std"] for st in stats],
        fmt="none",
        ecolor="black",
        elinewidth=1,
        capsize=3,
        label="mean ± 1 std over replicates",
    )
    low, high = min(counts), max(counts)
    n = f"{low}" if low == high else f"{low}–{high}"
    return (
        f"{len(drawn)} runs with replicates drawn at their mean, bars ± one standard deviation "
        f"over n = {n} replicates each (sample std), dots each replicate"
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
        if all(_is_number(v) for v in values):
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


def accuracy_by_size(runs: Sequence[Run]) -> Figure | None:
    """Last-epoch validation accuracy against parameter count: how few channels does it need?"""
    sized = [run for run in runs if _is_number(run.n_params) and _is_number(run.cell("val_acc"))]
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
    log_scale_if_wide(ax, "x", xs)
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
    add_note(fig, notes)
    return fig


def _statistics(runs: Sequence[Run]) -> str:
    """What a run's objective value is: its replicates' mean (or median...), or its one value."""
    named = {
        str((run.config or {}).get("replicate.statistic", "mean"))
        for run in runs
        if run.replicates > 1
    }
    return f"the objective ({', '.join(sorted(named))} over the replicates)"


# ---------------------------------------------------------------- an Optuna study's plots


def _trial_value(trial: Any, index: int) -> float | None:
    """A trial's value of objective `index`; a pruned one's is its last reported (its epoch's)."""
    if trial.values is not None and len(trial.values) > index:
        value = trial.values[index]
    elif index == 0 and trial.last_step is not None:
        value = trial.intermediate_values.get(trial.last_step)
    else:
        value = None
    return float(value) if _is_number(value) else None


def _not_drawn(states: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def history_plot(study: Any, names: Sequence[str], title: str) -> Figure:
    """Each trial's first objective by trial number; the best-so-far line over complete trials."""
    from linesweep.sweep.results import trial_states

    metric = names[0]
    maximize = study.directions[0].name == "MAXIMIZE"
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    drawn: dict[str, tuple[list[int], list[float], list[int]]] = {}
    left_out: list[str] = []
    states = trial_states(study.get_trials(deepcopy=False))
    for trial in study.get_trials(deepcopy=False):
        state, value = states[trial.number], _trial_value(trial, 0)
        if state not in ("complete", "pruned") or value is None:
            left_out.append(state)
            continue
        numbers, values, epochs = drawn.setdefault(state, ([], [], []))
        numbers.append(trial.number)
        values.append(value)
        epochs.append(trial.last_step)
    if "complete" in drawn:
        numbers, values, epochs = drawn["complete"]
        ax.scatter(numbers, values, s=24, color=COMPLETE, label=f"complete ({_epochs(epochs)})")
        best, running = [], -math.inf if maximize else math.inf
        for value in values:
            running = max(running, value) if maximize else min(running, value)
            best.append(running)
        end = max(t.number for t in study.get_trials(deepcopy=False))
        ax.step(
            [*numbers, end],
            [*best, best[-1]],
            where="post",
            color=FRONTIER,
            label="best complete so far",
        )
    if "pruned" in drawn:
        numbers, values, epochs = drawn["pruned"]
        ax.scatter(
            numbers,
            values,
            s=24,
            facecolors="none",
            edgecolors=PRUNED,
            linewidths=1.2,
            label=f"pruned, hollow ({_epochs(epochs)})",
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
    if left_out:
        notes.append(f"not drawn (no value): {_not_drawn(left_out)}")
    if len(study.directions) > 1:
        notes.append(f"the first of {len(study.directions)} objectives")
    add_note(fig, notes)
    return fig


def importances_plot(study: Any, names: Sequence[str], title: str) -> Figure:
    """Optuna's PED-ANOVA parameter importances for the first objective, as bars."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator  # fANOVA would need scikit-learn

    target: dict[str, Any] = {}
    if len(study.directions) > 1:  # PED-ANOVA ranks a `target` by "lower is better"
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        target = {"target": lambda t: sign * t.values[0]}
    importances = optuna.importance.get_param_importances(
        study, evaluator=PedAnovaImportanceEvaluator(), **target
    )
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
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
    add_note(fig, [f"from the {complete} complete trials; pruned and failed trials not used"])
    return fig


def pareto_plot(study: Any, names: Sequence[str], title: str) -> Figure:
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
        label="complete",
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
    rest = len(study.get_trials(deepcopy=False)) - len(complete)
    if rest:
        from linesweep.sweep.results import trial_states

        numbers = {t.number for t in complete}
        by_number = trial_states(study.get_trials(deepcopy=False))
        states = [state for number, state in by_number.items() if number not in numbers]
        add_note(fig, [f"complete trials only; not drawn: {_not_drawn(states)}"])
    return fig


def study_plots(
    sweep: Path, out: Path, metrics: Sequence[str], stem: str, storage: str | None = None
) -> tuple[list[Path], list[str]]:
    """An Optuna study's optimization history, parameter importances and (two objectives) Pareto
    front, drawn from the study's trials."""
    try:
        study = open_study(sweep, storage)  # never a URL a results file names
    except Exception as err:
        return [], [f"{sweep}: no study plots: cannot open the study ({_one_line(err)})"]
    import optuna

    n = len(study.directions)
    names = list(metrics) if len(metrics) == n else [f"objective {i}" for i in range(n)]
    name = study.study_name
    plots: dict[str, Any] = {
        "history": lambda: history_plot(study, names, f"{name}: optimization history"),
        "importances": lambda: importances_plot(study, names, f"{name}: parameter importances"),
    }
    if n == 2:
        plots["pareto"] = lambda: pareto_plot(study, names, f"{name}: Pareto front")
    written, problems = [], []
    for kind, draw in plots.items():
        path = out / f"study_{stem}_{kind}.png"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Its reminder that a target is minimised: the target is built that way.
                warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes")
                save_figure(draw(), path, DPI)
        except Exception as err:  # e.g. a study with one complete trial has no importances
            problems.append(f"{sweep}: no {kind} plot ({_one_line(err)})")
            continue
        # Optuna's caveats (e.g. too few trials to rank importances) as one line each.
        problems += [f"{sweep}: {kind} plot: {_one_line(w.message)}" for w in caught]
        written.append(path)
    return written, problems


def _one_line(err: Exception | Warning) -> str:
    text = " ".join(str(err).split())
    return text[:160] if text else type(err).__name__


# ---------------------------------------------------------------- the best run's pictures


def best_run_pictures(run: Run, out: Path) -> tuple[list[Path], list[str]]:
    """The best run's kernels and feature maps: its own PNGs, or drawn from model.pt into `out`."""
    own = [run.folder / "plots" / name for name in RUN_PICTURES]
    if all(is_regular(path, run.folder, PICTURE_CAP) for path in own):  # no link out, no FIFO
        extra = run.folder / "plots" / "flattened_activations.png"
        return own + ([extra] if is_regular(extra, run.folder, PICTURE_CAP) else []), []
    if run.config is None or not is_regular(run.folder / WEIGHTS, run.folder, WEIGHTS_CAP):
        return [], [f"{run.folder}: no kernel or feature-map pictures (needs model.pt and config)"]
    try:
        return _draw_pictures(run, out), []
    except Exception as err:  # a config or weights this version cannot rebuild
        return [], [f"{run.folder}: no kernel or feature-map pictures ({_one_line(err)})"]


def _draw_pictures(run: Run, out: Path) -> list[Path]:
    from omegaconf import OmegaConf

    from linesweep.compare.runs import read_overrides
    from linesweep.core.plotting import add_caption
    from linesweep.run import plots
    from linesweep.run.data import make_split
    from linesweep.run.drawing import TrainedPictures, run_caption
    from linesweep.run.model import build_model
    from linesweep.run.seeds import derive_seeds
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.validation import to_train_config

    tree = config_tree(run)  # no ${oc.env:...} resolved
    if isinstance(tree.get("seed"), list):  # a row of runs grouped by seed: the first's pictures
        tree["seed"] = tree["seed"][0]
    cfg = to_train_config(OmegaConf.create(tree))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    model = build_model(cfg.model, plan, seed=0)
    model.load_state_dict(read_weights(run.folder))  # weights_only, size-capped, no link
    model.eval()
    images = make_split(cfg.data, 8, derive_seeds(cfg.seed).train_data)  # 4 of each class
    trained = TrainedPictures.of(model, images)
    figures = {
        "kernels_conv1.png": plots.kernels(trained.conv1, "conv1 kernels"),
        "kernels_conv2.png": plots.kernels(trained.conv2, "conv2 kernels"),
        "feature_maps.png": plots.feature_maps(trained.seen),
        "flattened_activations.png": plots.flattened_activations(trained.seen),
    }
    caption = run_caption(run.folder, read_overrides(run))
    paths = []
    for name, fig in figures.items():
        add_caption(fig, caption)
        paths.append(out / f"best_{name}")
        save_figure(fig, paths[-1], DPI)
    return paths


def save_comparison_plots(
    comparison: Comparison, out: Path
) -> tuple[list[Path], list[Path], list[str]]:
    """Write every comparison plot into `out`: (plots, the best run's pictures, problems)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = comparison.shown
    keys = chosen_keys(runs, comparison.varying)
    if any(run.grouped for run in runs):  # --group-seeds: a row's seeds are its replicates
        keys = [key for key in keys if key != "seed"]
    figures = {
        "learning_curves.png": learning_curves(runs, keys),
        "objective_by_parameter.png": objective_by_parameter(runs, keys),
        "accuracy_by_size.png": accuracy_by_size(runs),
    }
    written = []
    for name, fig in figures.items():
        if fig is not None:
            save_figure(fig, out / name, DPI)
            written.append(out / name)
    problems, stems = [], set()
    for sweep in sorted({run.sweep for run in runs if run.sweep is not None}):
        if (sweep / "optimization_results.yaml").is_file():
            stem = re.sub(r"[^\w.-]+", "_", sweep.name)  # sweeps/<study name>/ by default
            while stem in stems:  # two sweeps of one name, from different outputs/ folders
                stem += "_"
            stems.add(stem)
            in_sweep = [run for run in runs if run.sweep == sweep]
            paths, trouble = study_plots(
                sweep, out, objective_metrics(in_sweep), stem, comparison.storage
            )
            written += paths
            problems += trouble
    pictures: list[Path] = []
    if comparison.best is not None:  # several objectives: the first of the Pareto set
        pictures, trouble = best_run_pictures(comparison.best, out)
        problems += trouble
    return written, pictures, problems
