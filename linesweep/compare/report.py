"""One self-contained HTML page for a comparison: it opens from disk, with no server and no network.

The first screen answers at a glance: the question (each sweep's study, objective, search space,
sampler, pruner and trial counts, from its multirun.yaml and optimization_results.yaml), the answer
(the best complete run, or for several objectives the Pareto set of complete runs as a table), and
the runs table with its key columns first (the keys the user varied, the objective and the epoch
it was measured at, state, folder); folders are relative links. Below: the best run's config,
shape plan, kernels and feature maps, the plots, and the warnings.

Runs with replicates: the answer says how many replicates stand behind the best value, with
their mean ± std and success rate; the runs table shows those per row (its `replicates` column)
under a line saying what they are.

Images are embedded as base64 `data:` URIs and the CSS is inline; there is no JavaScript and no
external URL, so the file can be mailed or archived and still shows everything. Every piece of text
(paths, config values, errors, the sweep's settings) is escaped.

Why one module over 300 lines: the page is one HTML document whose sections share its escaping
and its style sheet; each section is one short function.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from linesweep.compare.question import Question, chosen_keys, read_question
from linesweep.compare.runs import Run, objective_epoch, replicate_spread, reproduce_command
from linesweep.compare.table import (
    Comparison,
    MeanStd,
    display_table,
    format_value,
    has_replicates,
    key_columns,
    objective_metrics,
    pareto_set,
    varying_keys,
)
from linesweep.core.files import atomic_write_text
from linesweep.core.flat import unflatten
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.core.record import PICTURE_CAP
from linesweep.core.safe_read import Unreadable, read_png
from linesweep.core.status import Status

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: .8em auto; max-width: 1500px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.35em; margin: 0 0 .1em; } h2 { font-size: 1.1em; margin: 0 0 .35em; }
h2.rule { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.2em; }
h3 { font-size: 1em; margin: .8em 0 .3em; }
p.meta { color: #555; margin: 0 0 .6em; font-size: 12.5px; }
.top { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1em;
       margin-bottom: .8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5em .8em; background: #fcfcfc; }
#answer { border-color: #1a7f37; background: #f6fbf7; }
.big { font-size: 1.15em; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .1em .8em;
     margin: 0; font-size: 13px; }
dt { font-weight: 600; color: #444; } dd { margin: 0; overflow-wrap: anywhere; }
code, pre { font: 12.5px/1.35 ui-monospace, monospace; }
pre { background: #f6f8fa; padding: .4em .6em; overflow-x: auto; border: 1px solid #ddd;
      margin: .3em 0; white-space: pre-wrap; overflow-wrap: anywhere; }
pre.config { max-height: 26em; overflow-y: auto; white-space: pre; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; z-index: 1; white-space: normal;
     vertical-align: bottom; max-width: 9em; }
th.key { background: #e6eef7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.note { max-width: 28em; overflow: hidden; text-overflow: ellipsis; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow: auto; max-height: 62vh; border: 1px solid #ddd; }
.scroll.small { max-height: 13.5em; }
table.questions td { white-space: normal; vertical-align: top; }
.state-complete { color: #1a7f37; } .state-pruned, .state-running { color: #9a6700; }
.state-bad { color: #cf222e; }
.warn { color: #9a6700; }
.side { display: grid; grid-template-columns: minmax(18em, 1fr) 2fr; gap: 1.5em;
        align-items: start; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font: 12px ui-monospace, monospace; color: #555; }
ul.warn { font-size: 12.5px; }
"""


def e(value: Any) -> str:
    """Escaped text of any value, as the tables show it."""
    return html.escape(value if isinstance(value, str) else format_value(value))


def image(path: Path, caption: str) -> str:
    """A figure with the PNG embedded, so that the page needs no file beside it."""
    try:  # a regular PNG file only: a link or a FIFO put there since it was checked is not read
        data = base64.b64encode(read_png(path, path.parent, PICTURE_CAP)).decode("ascii")
    except (OSError, Unreadable) as err:
        return f"<p>{e(caption)}: not shown ({e(str(err))})</p>"
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


class Links:
    """Folders as relative links from the report's folder, shown relative to what they share."""

    def __init__(self, base: Path, folders: Iterable[Path]) -> None:
        self.base = base.resolve()
        resolved = [Path(f).resolve() for f in folders]
        parents = [f.parent for f in resolved]
        try:
            common = Path(os.path.commonpath(parents)) if parents else None
        except ValueError:  # different drives
            common = None
        self.shown_from = common.parent if common is not None else None

    def href(self, folder: Path | str) -> str:
        target = Path(folder).resolve()
        try:
            relative = Path(os.path.relpath(target, self.base)).as_posix()
        except ValueError:  # another drive: no relative path exists
            return html.escape(target.as_uri(), quote=True)
        return html.escape(quote(relative) + "/", quote=True)

    def text(self, folder: Path | str) -> str:
        target = Path(folder).resolve()
        if self.shown_from is not None and target.is_relative_to(self.shown_from):
            return target.relative_to(self.shown_from).as_posix()
        return str(folder)

    def a(self, folder: Path | str) -> str:
        return f'<a href="{self.href(folder)}" title="{e(str(folder))}">{e(self.text(folder))}</a>'


def _header(column: str, key: bool) -> str:
    """A header that may break after its dots (model.<wbr>out_1), marked when a key column."""
    text = "<wbr>".join(html.escape(part) for part in column.split("."))
    text = text.replace("<wbr>", ".<wbr>").replace("_mean ±", "_<wbr>mean ±")  # a mean ± std
    return f'<th class="key">{text}</th>' if key else f"<th>{text}</th>"


def html_table(
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    css_class: str = "",
    link: Callable[[str], str] | None = None,
    keys: Sequence[str] = (),
) -> str:
    """A table with numbers right-aligned, each state coloured, folders as links (`link`)."""
    head = "".join(_header(c, c in keys) for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if column == "folder" and link is not None and value is not None:
                cells.append(f"<td>{link(value)}</td>")
            elif isinstance(value, (int, float, MeanStd)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{e(value)}</td>')
            elif column == "state":
                cells.append(f'<td class="{_state_class(value)}">{e(value)}</td>')
            elif column == "note" and value:
                cells.append(f'<td class="note" title="{e(value)}">{e(value)}</td>')
            else:
                cells.append(f"<td>{e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="{css_class}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _state_class(state: Any) -> str:
    """A CSS class per status: complete green, pruned and running amber, every other end red."""
    if state in (Status.COMPLETE, Status.PRUNED, Status.RUNNING):
        return f"state-{Status(state).value}"
    return "state-bad"


def _caption(path: Path) -> str:
    """The file's name as written (study_channels_lr_history): it names the PNG in plots/."""
    return path.stem


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


# ---------------------------------------------------------------- the answer


def _measured(run: Run) -> str:
    """epoch 3 of 3: when the objective was measured, out of the epochs the run trained."""
    epoch = objective_epoch(run)
    if epoch is None:
        return ""
    return f"epoch {epoch} of {run.epochs_run}" if run.epochs_run else f"epoch {epoch}"


def answer_card(comparison: Comparison, chosen: Sequence[str], links: Links) -> str:
    """The best complete run; for several objectives, the Pareto set of complete runs."""
    runs = comparison.shown
    metrics = objective_metrics(runs)
    complete = sum(1 for run in runs if run.state == Status.COMPLETE)
    if len(metrics) > 1:
        front = pareto_set(runs)
        if front:
            counted = ["replicates"] if has_replicates(runs) else []
            columns = [*(f"obj.{m}" for m in metrics), *counted, "obj_epoch", "folder", *chosen]
            rows = [{c: run.cell(c) for c in columns} for run in front]
            directions = ", ".join(f"{m} ({METRIC_DIRECTIONS.get(m, '?')})" for m in metrics)
            return (
                '<section class="card" id="answer"><h2>Answer: the Pareto set</h2>'
                f"<p>{len(front)} of the {complete} complete runs: none beats another on every "
                f"objective ({e(directions)}). Each row is a best trade-off.</p>"
                f'<div class="scroll small">{html_table(columns, rows, "pareto", links.a)}</div>'
                "</section>"
            )
    best = comparison.best
    if best is None:
        return (
            '<section class="card" id="answer"><h2>Answer</h2>'
            "<p>No run has an objective value.</p></section>"
        )
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
        '<section class="card" id="answer"><h2>Answer: the best run</h2>'
        f'<p class="big">{e(values)}</p>'
        f"<dl><dt>replicates</dt><dd>{e(replicates_behind(best))}</dd>"
        f"<dt>measured at</dt><dd>{e(_measured(best) or '-')} ({e(best.state)})</dd>"
        + (f"<dt>config</dt><dd>{config}</dd>" if config else "")
        + f"<dt>parameters</dt><dd>{e(best.n_params)}</dd>"
        f"<dt>folder</dt><dd>{links.a(best.folder)}</dd></dl>"
        f"{caveat}<pre><code>{e(reproduce_command(best))}</code></pre></section>"
    )


def replicates_behind(run: Run) -> str:
    """How many replicates stand behind a run's value, and what they say: its objective's mean ±
    std and success rate over them; or that it is one run's value."""
    if run.replicates < 2:
        return "1 (a single run: no spread)"
    metric = next((m for m in run.objective if m != "n_params"), None)
    stats = replicate_spread(run, metric) if metric is not None else None
    statistic = (run.config or {}).get("replicate.statistic", "mean")
    what = f"{run.replicates}, the value is their {statistic}"
    if run.grouped:
        what += f" ({len(run.grouped)} runs grouped by seed)"
    if stats is None:
        return what
    what += f"; {metric} {MeanStd(stats['mean'], stats['std'])} (mean ± std over {stats['count']})"
    if stats["success_rate"] is not None:
        what += (
            f", success rate {format_value(stats['success_rate'])} "
            f"(reaching {format_value(run.success_threshold)})"
        )
    return what


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
        "<code>&lt;metric&gt;_mean ± std</code> is the mean and sample standard deviation of the "
        "objective over them, <code>success_rate</code> the share reaching the success threshold "
        f"({e(at)}); <code>val_acc</code>, <code>best_acc</code> and <code>val_loss</code> are "
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


def best_section(comparison: Comparison, pictures: Sequence[Path], links: Links) -> str:
    best = comparison.best
    if best is None:
        return ""
    several = len(objective_metrics(comparison.shown)) > 1
    title = "The first run of the Pareto set" if several else "The best run"
    picture_html = "".join(image(p, _caption(p)) for p in pictures) or (
        "<p>No kernel or feature-map pictures (see the warnings).</p>"
    )
    return (
        f'<h2 class="rule">{title}: {links.a(best.folder)}</h2>'
        + '<div class="side"><div><h3>Config</h3>'
        + f'<pre class="config">{e(_config_text(best))}</pre></div>'
        + f"<div><h3>Shape plan</h3>{shape_plan(best)}</div></div>"
        + f"<h3>Kernels and feature maps</h3>{picture_html}"
    )


# ---------------------------------------------------------------- the page


def render_report(
    comparison: Comparison,
    plots: Sequence[Path],
    pictures: Sequence[Path],
    base: Path | None = None,
) -> str:
    """The whole page as one string; folder links are relative to `base` (the report's folder)."""
    runs = comparison.shown
    links = Links(base if base is not None else Path.cwd(), [run.folder for run in runs])
    sweeps = sorted({run.sweep for run in runs if run.sweep is not None})
    questions = [read_question(sweep) for sweep in sweeps]
    chosen = chosen_keys(runs, comparison.varying)
    rows, columns = display_table(comparison.rows, comparison.columns)  # mean ± std: one cell
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
        '<div class="top">'
        + question_card(questions, runs, links)
        + answer_card(comparison, chosen, links)
        + "</div>",
        f'<section id="runs"><h2>Runs ({len(comparison.rows)})</h2>'
        + replicates_line(comparison)
        + '<div class="scroll">'
        + html_table(head + tail, rows, "runs", links.a, keys=head)
        + "</div></section>",
        best_section(comparison, pictures, links),
        '<h2 class="rule">Plots</h2>'
        + ("".join(image(p, _caption(p)) for p in plots) or "<p>No plots were drawn.</p>"),
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


def write_report(
    path: Path, comparison: Comparison, plots: Sequence[Path], pictures: Sequence[Path]
) -> Path:
    """Write report.html atomically; returns its path."""
    atomic_write_text(path, render_report(comparison, plots, pictures, base=path.parent))
    return path
