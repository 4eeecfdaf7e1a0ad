"""The pieces of report.html: escaped text, embedded images, folder links and tables.

Every piece of text (paths, config values, errors, the sweep's settings) is escaped (`e`), and
images are embedded as base64 `data:` URIs, so the page needs no file beside it. report.py puts
the pieces together into the page.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from linesweep.compare.display import Interval, format_value
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
.top { display: grid; grid-template-columns: minmax(0, 1.5fr) minmax(0, 1fr); gap: .8em;
       margin-bottom: .6em; align-items: start; }
.stack { display: grid; gap: .6em; }
#picture { padding: .3em; } #picture figure { margin: 0; display: block; }
#picture img { width: 100%; border: 0; }
p.line { margin: .2em 0; font-size: 13px; } p.line.big { font-size: 13.5px; }
.small { font-size: 12px; } ul.small { margin: .2em 0; padding-left: 1.2em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5em .8em; background: #fcfcfc; }
#answer { border-color: #1a7f37; background: #f6fbf7; }
.big { font-size: 1.15em; font-weight: 600; }
#question dl { font-size: 12.5px; }
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
    text = text.replace("<wbr>", ".<wbr>").replace("_mean [", "_<wbr>mean [")  # a mean [95% t]
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
            elif isinstance(value, (int, float, Interval)) and not isinstance(value, bool):
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


def caption(path: Path) -> str:
    """The file's name as written (study_channels_lr_history): it names the PNG in plots/."""
    return path.stem
