"""The report's answer, on its first screen, and which hyperparameter matters, further down.

The answer card shows the comparison's answer (answer.py: `linesweep.core.answer` on the runs
shown) in the words the terminal prints and a sweep writes under `answer:`: the best
configuration with its mean and 95% interval, the smallest not distinguishable from it with its
test and p-value, what was compared, then the warnings; and for several objectives the Pareto set
of complete runs. Beside it, accuracy against size (plots.py), the answer's best starred and its
smallest ringed, error bars the 95% t intervals. The best run's own facts (its value, replicates,
epoch, config) open the section on the best run.

The importances section lists each Optuna sweep's importances (importances.py: PED-ANOVA on the
replicated values) with their caveat of seed noise, as the importance plot draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from linesweep.compare.display import Interval, format_value
from linesweep.compare.importances import sweep_importances
from linesweep.compare.markup import Links, caption, e, html_table, image
from linesweep.compare.reproduce import reproduce_command
from linesweep.compare.row import Run, objective_epoch, replicate_summary
from linesweep.compare.table import Comparison, has_replicates, objective_metrics, pareto_set
from linesweep.core.importance import Importances
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.status import Status

PICTURE = "accuracy_by_size.png"  # the first screen's picture, drawn by plots.py

# ---------------------------------------------------------------- the first screen


def answer_card(comparison: Comparison, chosen: Sequence[str], links: Links) -> str:
    """The answer's lines, the best run's folder and command; the Pareto set for several
    objectives."""
    parts = ['<section class="card" id="answer"><h2>Answer</h2>']
    answered = comparison.answer
    lines = answered.lines() if answered is not None else []
    said, warnings = lines[:3], [line.removeprefix("warning: ") for line in lines[3:]]
    parts += [
        f'<p class="line{" big" if i == 0 else ""}">{e(line)}</p>' for i, line in enumerate(said)
    ]
    if warnings:
        parts.append(
            '<ul class="warn small">' + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>"
        )
    best = (answered.best_run if answered is not None else None) or comparison.best
    if best is not None:
        parts.append(
            f'<p class="small">its run: {links.a(best.folder)}</p>'
            f"<pre><code>{e(reproduce_command(best))}</code></pre>"
        )
    runs = comparison.shown
    metrics = objective_metrics(runs)
    front = pareto_set(runs) if len(metrics) > 1 else []
    if front:
        complete = sum(1 for run in runs if run.state == Status.COMPLETE)
        counted = ["replicates"] if has_replicates(runs) else []
        columns = [*(f"obj.{m}" for m in metrics), *counted, "obj_epoch", "folder", *chosen]
        rows = [{c: run.cell(c) for c in columns} for run in front]
        directions = ", ".join(f"{m} ({METRIC_DIRECTIONS.get(m, '?')})" for m in metrics)
        parts.append(
            "<h3>The Pareto set</h3>"
            f"<p>{len(front)} of the {complete} complete runs: none beats another on every "
            f"objective ({e(directions)}). Each row is a best trade-off.</p>"
            f'<div class="scroll small">{html_table(columns, rows, "pareto", links.a)}</div>'
        )
    if not lines and best is None:
        parts.append("<p>No run has an objective value.</p>")
    return "".join(parts) + "</section>"


def picture_card(plots: Sequence[Path]) -> str:
    """Accuracy against size, as plots.py drew it for this comparison, or why it is not here."""
    drawn = next((p for p in plots if p.name == PICTURE), None)
    if drawn is not None:
        body = image(drawn, caption(drawn))
    elif plots:
        body = "<p>No run has both a size and an accuracy to draw.</p>"
    else:
        body = "<p>No plots were drawn (--no-plots): accuracy against size is not shown.</p>"
    return f'<section class="card" id="picture">{body}</section>'


# ---------------------------------------------------------------- the best run's facts


def _measured(run: Run) -> str:
    """epoch 3 of 3: when the objective was measured, out of the epochs the run trained."""
    epoch = objective_epoch(run)
    if epoch is None:
        return ""
    return f"epoch {epoch} of {run.epochs_run}" if run.epochs_run else f"epoch {epoch}"


def best_facts(comparison: Comparison, chosen: Sequence[str]) -> str:
    """The best run's objective values, replicates, epoch, config and size, and why a run that
    did not complete is the best (none did) or which ones were not ranked against it."""
    best, runs = comparison.best, comparison.shown
    if best is None:
        return ""
    complete = sum(1 for run in runs if run.state == Status.COMPLETE)
    values = ", ".join(
        f"{m} = {format_value(v)} ({METRIC_DIRECTIONS.get(m, '?')})"
        for m, v in best.objective.items()
    )
    caveat = ""
    if best.state != Status.COMPLETE:
        caveat = (
            f'<p class="warn">No run completed: this value is from a {e(best.state)} run, '
            f"measured at {e(_measured(best))}; not comparable with a finished run.</p>"
        )
    elif len(runs) > complete:
        others: dict[str, int] = {}
        for run in runs:
            if run.state != Status.COMPLETE:
                others[str(run.state)] = others.get(str(run.state), 0) + 1
        caveat = (
            f"<p>Chosen among the {complete} complete runs; the "
            f"{e(', '.join(f'{n} {state}' for state, n in others.items()))} stopped early and "
            "are not ranked against them.</p>"
        )
    config = " ".join(f"<code>{e(k)}={e(best.cell(k))}</code>" for k in chosen)
    return (
        f'<p class="big">{e(values)}</p>'
        f"<dl><dt>replicates</dt><dd>{e(replicates_behind(best))}</dd>"
        f"<dt>measured at</dt><dd>{e(_measured(best) or '-')} ({e(best.state)})</dd>"
        + (f"<dt>config</dt><dd>{config}</dd>" if config else "")
        + f"<dt>parameters</dt><dd>{e(best.n_params)}</dd></dl>"
        + caveat
    )


def replicates_behind(run: Run) -> str:
    """How many replicates stand behind a run's value, and what they say: its objective's mean
    with its 95% t interval and its success rate with its Wilson interval; or that it is one
    run's value."""
    if run.replicates < 2:
        return "1 (a single run: no spread)"
    metric = next((m for m in run.objective if m != "n_params"), None)
    summary = replicate_summary(run, metric) if metric is not None else None
    statistic = (run.config or {}).get("replicate.statistic", "mean")
    what = f"{run.replicates}, the value is their {statistic}"
    if run.grouped:
        what += f" ({len(run.grouped)} runs grouped by seed)"
    if summary is None or summary.mean is None:
        return what
    mean = Interval(summary.mean, summary.ci_low, summary.ci_high, summary.n, summary.replicates)
    what += f"; {metric} {mean} (mean, 95% Student t interval over {summary.n})"
    if summary.success_rate is not None:
        rate = Interval(summary.success_rate, summary.success_low, summary.success_high)
        what += (
            f", success rate {rate} (reaching {format_value(run.success_threshold)}; Wilson 95%)"
        )
    return what


# ---------------------------------------------------------------- which hyperparameter matters


def importances_section(comparison: Comparison, links: Links) -> str:
    """Each Optuna sweep's importances with their caveat; nothing without an Optuna sweep."""
    found = sweep_importances(comparison)
    if not found:
        return ""
    parts = ['<section id="importances"><h2 class="rule">Which hyperparameter matters</h2>']
    for sweep, result in found.items():
        parts.append(f"<h3>{links.a(sweep)}</h3>")
        if isinstance(result, str):
            parts.append(f"<p>No importances: {e(result)}.</p>")
            continue
        parts.append(_importances(result))
    return "".join(parts) + "</section>"


def _importances(found: Importances) -> str:
    if found.reason is not None:
        return f'<p>No importances: {e(found.reason)}.</p><p class="meta">{e(found.caveat)}</p>'
    rows = [{"parameter": k, "importance": v} for k, v in found.importances.items()]
    return (
        f'<p class="meta">{e(found.evaluator)}; importances sum to 1.</p>'
        + html_table(["parameter", "importance"], rows, "importances")
        + f'<p class="warn">Caveat: {e(found.caveat)}.</p>'
    )
