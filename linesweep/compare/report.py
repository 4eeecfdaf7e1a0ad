"""One self-contained HTML page for a comparison: it opens from disk, with no server and no network.

Images are embedded as base64 `data:` URIs and the CSS is inline; there is no JavaScript and no
external URL, so the file can be mailed or archived and still shows everything. Every piece of text
(paths, config values, errors) is escaped. Sections: summary counts, the best run (objective,
folder, the command that reproduces it, its config, its shape plan, its kernels and feature
maps), the comparison table, the plots, and the warnings.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from linesweep.compare.runs import Run, reproduce_command, unflatten
from linesweep.compare.table import Comparison, format_value, objective_metrics
from linesweep.core.files import atomic_write_text
from linesweep.core.record import PICTURE_CAP
from linesweep.core.safe_read import Unreadable, read_png
from linesweep.core.status import Status

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 2px 7px; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; max-height: 80vh; overflow-y: auto; border: 1px solid #ddd; }
.state-complete { color: #1a7f37; } .state-pruned, .state-running { color: #9a6700; }
.state-bad { color: #cf222e; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; border: 1px solid #ddd; }
pre.config { max-height: 26em; overflow-y: auto; margin: 0; }
.side { display: grid; grid-template-columns: minmax(18em, 1fr) 2fr; gap: 1.5em;
        align-items: start; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
.warn { color: #9a6700; font-size: 12.5px; }
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


def html_table(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], css_class: str = ""
) -> str:
    """A table with numbers right-aligned and each state cell coloured by its state."""
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{e(value)}</td>')
            elif column == "state":
                cells.append(f'<td class="{_state_class(value)}">{e(value)}</td>')
            else:
                cells.append(f"<td>{e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="{css_class}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _state_class(state: Any) -> str:
    """A CSS class per status: complete green, pruned and running amber, every other end red."""
    if state in (Status.COMPLETE, Status.PRUNED, Status.RUNNING):
        return f"state-{Status(state).value}"
    return "state-bad"


def _caption(path: Path) -> str:
    return path.stem.removeprefix("best_").replace("_", " ")


def _config_text(run: Run) -> str:
    if run.config_text is not None:  # .hydra/config.yaml, as read_run read it
        return run.config_text
    # an older layout: the config rebuilt from the sweep's multirun.yaml
    return yaml.safe_dump(unflatten(run.config or {}), sort_keys=False)


def shape_plan(run: Run) -> str:
    """The best run's shapes.yaml as a table: each layer's input, output and parameters."""
    shapes = run.shapes or {}  # type-checked by read_run: plan is a list of layer mappings
    plan = shapes.get("plan")
    if plan is None:
        return "<p>No readable shapes.yaml in the run folder.</p>"

    def dims(shape: Any) -> str:
        return "x".join(str(n) for n in shape) if isinstance(shape, list) else str(shape)

    rows = [
        {
            "layer": layer.get("layer"),
            "type": layer.get("type"),
            "input": dims(layer.get("input")),
            "output": dims(layer.get("output")),
            "params": layer.get("params"),
        }
        for layer in plan
        if isinstance(layer, dict)
    ]
    rows.append({"layer": "total", "params": shapes.get("n_params")})
    verdict = "agrees" if shapes.get("agree") else "does NOT agree"
    return html_table(["layer", "type", "input", "output", "params"], rows) + (
        f"<p>Linear layer input: {e(shapes.get('flat_features'))} features; "
        f"the plan {verdict} with a forward pass.</p>"
    )


def best_section(comparison: Comparison, pictures: Sequence[Path]) -> str:
    best = comparison.best
    if best is None:
        return "<h2>Best run</h2><p>No run has an objective value.</p>"
    objective = ", ".join(f"{e(m)} = {e(v)}" for m, v in best.objective.items())
    facts = {
        "objective": objective,
        "state": e(best.state),
        "folder": e(str(best.folder)),
        "parameters": e(best.n_params),
        "epochs": e(best.epochs_run),
        "wall time (s)": e(best.wall_time_s),
    }
    picture_html = "".join(image(p, _caption(p)) for p in pictures) or (
        "<p>No kernel or feature-map pictures (see the warnings).</p>"
    )
    return (
        "<h2>Best run</h2><dl>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
        + "</dl><h3>Reproduce</h3>"
        + f"<pre><code>{e(reproduce_command(best))}</code></pre>"
        + '<div class="side"><div><h3>Config</h3>'
        + f'<pre class="config">{e(_config_text(best))}</pre></div>'
        + f"<div><h3>Shape plan</h3>{shape_plan(best)}</div></div>"
        + f"<h3>Kernels and feature maps</h3>{picture_html}"
    )


def render_report(comparison: Comparison, plots: Sequence[Path], pictures: Sequence[Path]) -> str:
    """The whole page as one string."""
    metrics = objective_metrics(comparison.runs)
    counts = [{"state": s, "runs": n} for s, n in comparison.state_counts().items()]
    warnings = [
        f"<li><code>{e(str(run.folder))}</code>: {e(w)}</li>"
        for run in comparison.runs
        for w in run.warnings
    ]
    sections = [
        "<h1>linesweep comparison</h1>",
        f"<p>{e(comparison.count_line())}; objective: {e(', '.join(metrics) or 'none')}; "
        f"written {e(datetime.now().isoformat(timespec='seconds'))}.</p>",
        "<h2>Summary</h2>" + html_table(["state", "runs"], counts),
        best_section(comparison, pictures),
        f"<h2>Runs ({len(comparison.rows)})</h2>"
        + html_table(comparison.columns, comparison.rows, "runs"),
        "<h2>Plots</h2>"
        + ("".join(image(p, _caption(p)) for p in plots) or "<p>No plots were drawn.</p>"),
    ]
    if warnings:
        sections.append(f'<h2>Warnings</h2><ul class="warn">{"".join(warnings)}</ul>')
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>linesweep comparison</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(
    path: Path, comparison: Comparison, plots: Sequence[Path], pictures: Sequence[Path]
) -> Path:
    """Write report.html atomically; returns its path."""
    atomic_write_text(path, render_report(comparison, plots, pictures))
    return path
