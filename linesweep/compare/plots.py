"""Pictures that compare runs, one PNG per question a sweep raises.

Which runs learned best (learning curves of the top runs), how the objective depends on each
parameter that varied, how few parameters suffice (accuracy against size), what an Optuna study
found (its history, parameter importances and Pareto front), and what the best run learned (its
kernels and feature maps, drawn from its weights when the run did not save them).

Our own figures use matplotlib's object API, as linesweep.run.plots does. Optuna's use pyplot:
they are drawn with the Agg backend inside an rc_context (they switch the global style) and closed
once saved. A plot that cannot be drawn is a one-line problem for the caller, never an exception.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure

from linesweep.compare.runs import config_tree
from linesweep.compare.table import format_value, objective_metrics
from linesweep.core.files import save_figure
from linesweep.core.metrics import METRIC_DIRECTIONS
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
STATE_COLOURS = {Status.COMPLETE: "tab:blue", Status.PRUNED: "tab:orange"}  # others: grey


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
    return f"#{rank} {values}" if values else f"#{rank} {run.folder.name}"


def learning_curves(runs: Sequence[Run], keys: Sequence[str]) -> Figure | None:
    """Validation accuracy and loss per epoch of the first TOP_CURVES runs, in table order."""
    ranked = [(rank, run) for rank, run in enumerate(runs, start=1) if run.history]
    if not ranked:
        return None
    fig = Figure(figsize=(11, 4.2), layout="constrained")  # room for the legend on the right
    acc_ax, loss_ax = fig.subplots(1, 2)
    telling = label_keys([run for _, run in ranked[:TOP_CURVES]], keys)
    for rank, run in ranked[:TOP_CURVES]:
        epochs = [row["epoch"] for row in run.history]
        label = run_label(rank, run, telling)
        style = "-" if run.state == Status.COMPLETE else "--"  # pruned, killed: stopped early
        acc_ax.plot(epochs, [r["val_accuracy"] for r in run.history], style, marker=".")
        loss_ax.plot(epochs, [r["val_loss"] for r in run.history], style, marker=".", label=label)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(-0.02, 1.02))
    loss_ax.set(xlabel="epoch", ylabel="validation loss")
    if all(r["val_loss"] > 0 for _, run in ranked[:TOP_CURVES] for r in run.history):
        loss_ax.set_yscale("log")
    loss_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    shown = min(len(ranked), TOP_CURVES)
    fig.suptitle(f"learning curves of the top {shown} runs (dashed: stopped early)")
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def wants_log_axis(key: str, values: Sequence[float]) -> bool:
    """Learning rates, and any positive values spanning more than 1.5 decades."""
    if not values or min(values) <= 0:
        return False
    return key.split(".")[-1].endswith("lr") or max(values) / min(values) > 10**1.5


def _scatter_by_state(ax: Any, runs: Sequence[Run], xs: Sequence[float], ys: Sequence[float]):
    for state in sorted({run.state for run in runs}):
        picked = [i for i, run in enumerate(runs) if run.state == state]
        ax.scatter(
            [xs[i] for i in picked],
            [ys[i] for i in picked],
            s=18,
            alpha=0.75,
            color=STATE_COLOURS.get(state, "tab:gray"),
            label=state,
        )


def objective_by_parameter(runs: Sequence[Run], keys: Sequence[str]) -> Figure | None:
    """The first objective against each varied parameter, one panel per parameter."""
    metrics = objective_metrics(runs)
    if not metrics or not keys:
        return None
    metric = metrics[0]
    scored = [run for run in runs if run.objective.get(metric) is not None and run.config]
    panels = [k for k in keys if _distinct(scored, k) > 1][:MAX_PARAMETER_PANELS]
    if not scored or not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    ys = [run.objective[metric] for run in scored]
    for ax, key in zip(axes, panels, strict=False):
        values = [run.cell(key) for run in scored]
        if all(_is_number(v) for v in values):
            xs = [float(v) for v in values]
            if wants_log_axis(key, xs):
                ax.set_xscale("log")
        else:  # strings, booleans, lists: one position per distinct value
            labels = sorted({format_value(v) for v in values})
            xs = [labels.index(format_value(v)) for v in values]
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        _scatter_by_state(ax, scored, xs, ys)
        ax.set(xlabel=key, ylabel=metric)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    direction = METRIC_DIRECTIONS.get(metric, "")
    fig.suptitle(f"objective {metric} ({direction}) against each parameter that varied")
    fig.tight_layout()
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
    sized = [
        run
        for run in runs
        if _is_number(run.n_params) and _is_number(run.final.get("val_accuracy"))
    ]
    if not sized:
        return None
    xs = [float(run.n_params) for run in sized]  # type: ignore[arg-type]
    ys = [float(run.final["val_accuracy"]) for run in sized]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    _scatter_by_state(ax, sized, xs, ys)
    edge = frontier(list(zip(xs, ys, strict=True)))
    ax.step(
        [p[0] for p in edge],
        [p[1] for p in edge],
        where="post",
        color="tab:red",
        marker="o",
        label="best accuracy for its size",
    )
    if min(xs) > 0:
        ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="validation accuracy (last epoch)")
    ax.legend(fontsize=8)
    ax.set_title(f"accuracy against size, {len(sized)} runs")
    fig.tight_layout()
    return fig


def _pyplot() -> Any:
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # never a window; a caller's own pyplot setup is left alone
    import matplotlib.pyplot as plt

    return plt


def load_study(sweep: Path, storage: str | None = None) -> Any:
    """The Optuna study of a sweep folder: its own journal file, or the user's --storage."""
    from linesweep.compare.studies import open_study  # never a URL a results file names

    return open_study(sweep, storage)


def study_plots(
    sweep: Path, out: Path, metrics: Sequence[str], stem: str, storage: str | None = None
) -> tuple[list[Path], list[str]]:
    """Optuna's optimization history, parameter importances and (two objectives) Pareto front."""
    try:
        study = load_study(sweep, storage)
    except Exception as err:
        return [], [f"{sweep}: no study plots: cannot open the study ({_one_line(err)})"]
    import optuna
    import optuna.visualization.matplotlib as ov
    from optuna.importance import PedAnovaImportanceEvaluator  # fANOVA would need scikit-learn

    names = list(metrics) if len(metrics) == len(study.directions) else None
    first: dict[str, Any] = {}  # one objective: Optuna reads the direction from the study
    lower_first: dict[str, Any] = {}
    if len(study.directions) > 1:  # several: history and importances of the first objective
        name = names[0] if names else "objective 0"
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        first = {"target": lambda t: t.values[0], "target_name": name}
        # PED-ANOVA ranks a `target` by "lower is better": give it one that is.
        lower_first = {"target": lambda t: sign * t.values[0], "target_name": name}
    plots: dict[str, Any] = {
        "history": lambda: ov.plot_optimization_history(study, **first),
        "importances": lambda: ov.plot_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator(), **lower_first
        ),
    }
    if len(study.directions) == 2:
        plots["pareto"] = lambda: ov.plot_pareto_front(study, target_names=names)
    plt, written, problems = _pyplot(), [], []
    for kind, draw in plots.items():
        path = out / f"study_{stem}_{kind}.png"
        try:
            with matplotlib.rc_context(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Its reminder that a target is minimised: lower_first is built that way.
                warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes")
                axes = draw()
                fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                try:
                    save_figure(fig, path, DPI)
                finally:
                    plt.close(fig)
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
    import torch
    from omegaconf import OmegaConf

    from linesweep.run import plots
    from linesweep.run.data import make_split
    from linesweep.run.model import build_model
    from linesweep.run.seeds import derive_seeds
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.validation import to_train_config

    cfg = to_train_config(OmegaConf.create(config_tree(run)))  # no ${oc.env:...} resolved
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    model = build_model(cfg.model, plan, seed=0)
    model.load_state_dict(read_weights(run.folder))  # weights_only, size-capped, no link
    model.eval()
    images = make_split(cfg.data, 8, derive_seeds(cfg.seed).train_data)  # 4 of each class
    with torch.no_grad():
        figures = {
            "kernels_conv1.png": plots.kernels(model.conv1.weight, "conv1 kernels"),
            "kernels_conv2.png": plots.kernels(model.conv2.weight, "conv2 kernels"),
            "feature_maps.png": plots.feature_maps(model, images),
            "flattened_activations.png": plots.flattened_activations(model, images),
        }
    paths = []
    for name, fig in figures.items():
        paths.append(out / f"best_{name}")
        save_figure(fig, paths[-1], DPI)
    return paths


def save_comparison_plots(
    comparison: Comparison, out: Path
) -> tuple[list[Path], list[Path], list[str]]:
    """Write every comparison plot into `out`: (plots, the best run's pictures, problems)."""
    out.mkdir(parents=True, exist_ok=True)
    runs, keys = comparison.shown, comparison.varying
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
    if comparison.best is not None:
        pictures, trouble = best_run_pictures(comparison.best, out)
        problems += trouble
    return written, pictures, problems
