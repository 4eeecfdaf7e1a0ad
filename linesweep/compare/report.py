"""One self-contained HTML page for a comparison: it opens from disk, with no server and no network.

The first screen (1280x800) answers at a glance: the question (each sweep's study, objective,
search space, sampler, pruner and trial counts, from its multirun.yaml and
optimization_results.yaml), the answer (report_answer.py: the best configuration with its 95%
interval, the smallest not distinguishable from it with its test, what was compared, in the
words the terminal prints and a sweep writes under `answer:`; for several objectives also the
Pareto set of complete runs), accuracy against size with its intervals and the answer marked,
and the runs table with its key columns first (the keys the user searched, the objective, its
mean with its interval, the epoch it was measured at, state, folder); folders are relative
links. Below: which hyperparameter matters (each Optuna sweep's importances with their caveat),
the best run's numbers, config, shape plan, kernels and feature maps (the PNGs the run drew; for
a run that drew none, one line with the command that draws them), the other plots, and the
warnings.

Runs with replicates: the runs table shows each row's mean with its 95% Student t interval,
success rate with its Wilson interval and replicates, under a line saying what they are.

Images are embedded and the CSS is inline (markup.py); there is no JavaScript and no external
URL, so the file can be mailed or archived and still shows everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from linesweep.compare.display import display_table, format_value, key_columns
from linesweep.compare.markup import STYLE, Links, caption, e, html_table, image
from linesweep.compare.pictures import run_pictures
from linesweep.compare.question import Question, chosen_keys
from linesweep.compare.report_answer import (
    PICTURE,
    answer_card,
    best_facts,
    importances_section,
    picture_card,
)
from linesweep.compare.row import Run
from linesweep.compare.table import Comparison, has_replicates, objective_metrics, varying_keys
from linesweep.core.files import atomic_write_text
from linesweep.core.flat import unflatten
from linesweep.core.metrics import METRIC_DIRECTIONS

# ---------------------------------------------------------------- the question


def _trials(question: Question) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in question.counts.items())
    if question.n_trials is None:
        return counts or "-"
    return f"{sum(question.counts.values())} of {question.n_trials}" + (
        f": {counts}" if counts else ""
    )


def _space(question: Question) -> str:
    lines = [f"<code>{e(k)}</code> = <code>{e(v)}</code>" for k, v in question.space.items()]
    return "<br>".join(lines) or "none recorded"


def _objective(question: Question) -> str:
    text = ", ".join(question.objective) or "not recorded"
    return e(f"{text}, at the {question.epoch} epoch" if question.epoch else text)


def question_card(questions: Sequence[Question], runs: Sequence[Run], links: Links) -> str:
    """What was asked: each sweep's settings (a table row each when there are several); for runs
    outside sweeps, their objective and what their overrides varied."""
    parts = ['<section class="card" id="question"><h2>Question</h2>']
    if len(questions) == 1:
        (q,) = questions
        facts = {
            "study": f"<b>{e(q.study)}</b> ({links.a(q.folder)})",
            "objective": _objective(q),
            "search space": _space(q),
            "fixed": " ".join(f"<code>{e(o)}</code>" for o in q.fixed) or "-",
            "sampler": e(q.sampler or "-"),
            "pruner": e(q.pruner or "-"),
            "trials": e(_trials(q)),
        }
        parts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items()))
        parts.append("</dl>")
    elif questions:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("study", "objective", "search space", "sampler", "pruner", "trials")
        )
        body = "".join(
            f"<tr><td>{links.a(q.folder)}</td><td>{_objective(q)}</td><td>{_space(q)}</td>"
            f"<td>{e(q.sampler or '-')}</td><td>{e(q.pruner or '-')}</td>"
            f"<td>{e(_trials(q))}</td></tr>"
            for q in questions
        )
        parts.append(
            f'<div class="scroll small"><table class="questions"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    outside = [run for run in runs if run.sweep is None]
    if outside or not questions:
        metrics = objective_metrics(outside or runs)
        directions = [f"{m} ({METRIC_DIRECTIONS.get(m, '?')})" for m in metrics]
        varied = chosen_keys(outside, varying_keys(outside)) if len(outside) > 1 else []
        what = "outside any sweep" if questions else "compared"
        parts.append(
            f"<p>{len(outside)} run{'s' if len(outside) != 1 else ''} {what}: objective "
            f"{e(', '.join(directions) or '-')}; varied by their overrides: "
            f"{e(', '.join(varied) or 'nothing')}.</p>"
        )
    return "".join(parts) + "</section>"


# ---------------------------------------------------------------- the runs table


def replicates_line(comparison: Comparison) -> str:
    """Above the runs table: how many replicates stand behind its rows, and what the spread
    columns are; nothing when every run is one replicate."""
    runs = comparison.shown
    if not has_replicates(runs):
        return ""
    low, high = min(run.replicates for run in runs), max(run.replicates for run in runs)
    plain = sum(run.replicates == 1 for run in runs)
    counts = f"{low} to {high} per row" if low != high else f"{low} per row"
    counts += f"; {plain} row{'s' if plain > 1 else ''} with one" if plain else ""
    thresholds = {run.success_threshold for run in runs if run.success_threshold is not None}
    at = ", ".join(format_value(t) for t in sorted(thresholds)) or "-"
    return (
        '<p class="meta">Each row stands on the replicates its <code>replicates</code> column '
        f"counts ({e(counts)}): "
        "<code>&lt;metric&gt;_mean [95% t]</code> is the mean of the objective over them and its "
        "95% Student t interval, <code>success_rate [Wilson 95%]</code> the share reaching the "
        f"success threshold ({e(at)}) and its Wilson interval (table.csv adds each one's std "
        "and n); <code>val_acc</code>, <code>best_acc</code> and <code>val_loss</code> are "
        "means over them. Rows with one replicate show <code>-</code> for the spread.</p>"
    )


# ---------------------------------------------------------------- the best run's details


def _config_text(run: Run) -> str:
    if run.config_text is not None:  # .hydra/config.yaml, as read_run read it
        return run.config_text
    # an older layout: the config rebuilt from the sweep's multirun.yaml
    return yaml.safe_dump(unflatten(run.config or {}), sort_keys=False)


def shape_plan(run: Run) -> str:
    """The best run's shapes.yaml as a table: each layer's input, output and parameters."""
    shapes = run.shapes  # checked by read_run
    if shapes is None or not shapes.plan:
        return "<p>No readable shapes.yaml in the run folder.</p>"

    def dims(shape: list[int]) -> str:
        return "x".join(str(n) for n in shape)

    rows = [
        {
            "layer": layer.layer,
            "type": layer.type,
            "input": dims(layer.input),
            "output": dims(layer.output),
            "params": layer.params,
        }
        for layer in shapes.plan
    ]
    rows.append({"layer": "total", "params": shapes.n_params})
    verdict = "agrees" if shapes.agree else "does NOT agree"
    return html_table(["layer", "type", "input", "output", "params"], rows) + (
        f"<p>Linear layer input: {e(shapes.flat_features)} features; "
        f"the plan {verdict} with a forward pass.</p>"
    )


def best_section(comparison: Comparison, links: Links) -> str:
    """The best run: its config, shape plan, and the kernels and feature maps it drew."""
    best = comparison.best
    if best is None:
        return ""
    several = len(objective_metrics(comparison.shown)) > 1
    title = "The first run of the Pareto set" if several else "The best run"
    pictures = run_pictures(best)
    missing = pictures.missing_line()
    picture_html = "".join(image(p, caption(p)) for p in pictures.found)
    if missing is not None:
        picture_html += f"<p>{e(missing)}</p>"
    return (
        f'<h2 class="rule">{title}: {links.a(best.folder)}</h2>'
        + best_facts(comparison, comparison.searched)
        + '<div class="side"><div><h3>Config</h3>'
        + f'<pre class="config">{e(_config_text(best))}</pre></div>'
        + f"<div><h3>Shape plan</h3>{shape_plan(best)}</div></div>"
        + f"<h3>Kernels and feature maps</h3>{picture_html}"
    )


# ---------------------------------------------------------------- the page


def render_report(comparison: Comparison, plots: Sequence[Path], base: Path | None = None) -> str:
    """The whole page as one string; folder links are relative to `base` (the report's folder)."""
    runs = comparison.shown
    links = Links(base if base is not None else Path.cwd(), [run.folder for run in runs])
    questions = comparison.questions
    chosen = comparison.searched
    rows, columns = display_table(comparison.rows, comparison.columns)  # mean [interval]: a cell
    others = [p for p in plots if p.name != PICTURE]  # the picture: on the first screen
    head, tail = key_columns(columns, chosen)
    warned = comparison.with_warnings
    warnings = [
        f"<li><code>{e(str(run.folder))}</code>: {e(w)}</li>"
        for run in comparison.runs
        for w in run.warnings
    ]
    studies = ", ".join(q.study for q in questions) or f"{len(runs)} runs"
    meta = f"{comparison.count_line()}; written {datetime.now().isoformat(timespec='seconds')}"
    sections = [
        f"<h1>linesweep comparison: {e(studies)}</h1>",
        f'<p class="meta">{e(meta)}'
        + (f'; <a href="#warnings">{warned} with warnings</a>' if warned else "")
        + "</p>",
        '<div class="top"><div class="stack">'
        + question_card(questions, runs, links)
        + answer_card(comparison, chosen, links)
        + "</div>"
        + picture_card(plots)
        + "</div>",
        f'<section id="runs"><h2>Runs ({len(comparison.rows)})</h2>'
        + replicates_line(comparison)
        + '<div class="scroll">'
        + html_table(head + tail, rows, "runs", links.a, keys=head)
        + "</div></section>",
        importances_section(comparison, links),
        best_section(comparison, links),
        '<h2 class="rule">Plots</h2>'
        + ("".join(image(p, caption(p)) for p in others) or "<p>No plots were drawn.</p>"),
    ]
    if warnings:
        sections.append(
            f'<h2 class="rule" id="warnings">Warnings</h2><ul class="warn">{"".join(warnings)}</ul>'
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>linesweep comparison: {e(studies)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(path: Path, comparison: Comparison, plots: Sequence[Path]) -> Path:
    """Write report.html atomically; returns its path."""
    atomic_write_text(path, render_report(comparison, plots, base=path.parent))
    return path
