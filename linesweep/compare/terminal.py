"""The comparison in a terminal: the answer's lines, the table fitted to its width, then the best
run's lines.

The answer comes first, as `linesweep.core.answer.Answer.lines()` words it (the same lines a
sweep's end says and writes under `answer:` in optimization_results.yaml): the best
configuration with its interval, the smallest not distinguishable from it with its test, what
was compared, then any warnings. Each line is whole: a terminal wraps it, a pipe keeps it.

At any width, down to 60 columns, the table shows what a sweep asked and answered: rank, the
parameters the user searched (each sweep's search space, the runs' overrides) and the objective.
Then, while they fit: a mean and its 95% interval and its replicates, state, folder, the
objective's epoch, the
other key columns; then the folder widens to its full length; then the other columns join in
order. The ones left out are named on one last line (they are all in table.csv). When the full
headers leave out a column, config keys are headed by the shortest dotted suffix that tells them
apart (`lr`, `conv1.kernel_size`), split after a dot or underscore onto two lines if that leaves
room for more; numbers read to 4 significant digits. Wide values, folders (from the left) and
notes are shortened with an ellipsis; if even the searched parameters and the objective do not
fit, their values are.

Plain text, no colour: it reads the same in a pipe or a file. Rendered by rich (its column
layout, alignment and ellipsis). Every cell is escaped (`printable`): values come from files.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from linesweep.compare.console import printable
from linesweep.compare.display import (
    KEY_TAIL,
    display_table,
    format_value,
    key_columns,
    numeric,
    short_names,
)
from linesweep.compare.pictures import RunPictures
from linesweep.compare.reproduce import reproduce_command
from linesweep.compare.table import (
    FIXED_COLUMNS,
    MEAN_INTERVAL,
    RATE_INTERVAL,
    Comparison,
    is_spread_column,
    objectives_of,
)

VALUE_WIDTH = 24  # a wide config value (a list, a class path) is shortened to this in the terminal
SHORTENED = {"folder": 12, "note": 10}  # these two start this wide and take what width is left
NARROWEST = 4  # a searched value or the objective is never cut narrower than this


def terminal_lines(
    comparison: Comparison, pictures: RunPictures | None = None, width: int | None = None
) -> list[str]:
    """What compare prints: the answer's lines, the table, how many runs, the best run and the
    command that trains it again (and the one that draws its pictures, when it drew none)."""
    lines = [printable(line) for line in (comparison.answer.lines() if comparison.answer else [])]
    if lines:
        lines.append("")
    lines.append(text_table(comparison.rows, comparison.columns, width, first=comparison.searched))
    lines.append(comparison.count_line())
    hidden = comparison.hidden_line()
    if hidden:
        lines.append(hidden)
    objectives = objectives_of(comparison.shown)
    if len(objectives) > 1:
        lines.append(
            f"no best: the runs were judged by {len(objectives)} different objectives "
            f"({'; '.join(objectives)}), ranked by each in turn; compare one at a time with "
            "--where 'objective.metrics=[...]'"
        )
    best = comparison.best
    if best is not None:
        lines.append(printable(f"best: {best.folder}"))
        lines.append(printable(f"  reproduce: {reproduce_command(best)}"))
        if pictures is not None and pictures.missing:
            lines.append(printable(f"  its pictures: {pictures.command}"))
    return lines


def text_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    width: int | None = None,
    first: Sequence[str] | None = None,
) -> str:
    """The table for a terminal `width` columns wide (default: $COLUMNS, else the terminal's);
    `first`: the searched config keys, always shown (None: every config key is a key column,
    shown while it fits)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = width or shutil.get_terminal_size().columns
    rows, columns = display_table(rows, columns)
    head, tail = key_columns(columns, first)
    order = head + tail
    full = {c: printable(c) for c in order}
    cells = {c: [printable(format_value(row.get(c))) for row in rows] for c in order}
    longest = {c: max((len(text) for text in cells[c]), default=1) for c in order}
    always = [c for c in head if c == "rank" or c.startswith("obj.") or (first and c in set(first))]
    answer = [c for c in head if c.endswith(MEAN_INTERVAL) or c == "replicates"]
    answer += [c for c in head if c.endswith(RATE_INTERVAL)]
    wanted = [*answer, "state", "folder", "obj_epoch", *head]
    priority = [c for c in dict.fromkeys(wanted) if c in head and c not in always]

    def layout(names: dict[str, str], split: bool) -> tuple[list[str], dict[str, int], int]:
        header = {c: max(len(part) for part in _header(names[c], split).split("\n")) for c in order}
        need = {c: max(header[c], min(longest[c], _cap(c))) for c in order}

        def spare(kept: Sequence[str]) -> int:
            return width - sum(need[c] for c in kept) - 2 * (len(kept) - 1)

        kept = list(always)
        cut = 0
        while spare(kept) < 0:  # even these do not fit: narrow their widest values
            floor = {c: max(header[c], NARROWEST) for c in kept}
            widest = max((c for c in kept if need[c] > floor[c]), key=need.get, default=None)
            if widest is None:
                break  # wider than the terminal: shown all the same, never hidden
            need[widest] -= 1
            cut += 1
        for c in priority:  # any key column that fits, most wanted first
            if spare([*kept, c]) >= 0:
                kept.append(c)
        for c in ("folder", *tail):
            if c in kept and c in SHORTENED:  # widen to the whole folder if room
                need[c] += max(0, min(spare(kept), longest[c] - need[c]))
            elif c in tail and spare([*kept, c]) >= 0:
                kept.append(c)
                if c in SHORTENED:
                    need[c] += max(0, min(spare(kept), longest[c] - need[c]))
            elif c in tail:
                break  # keep the order: no narrow column after a hidden one
        return [c for c in order if c in kept], need, cut

    # Full headers on one line; else short ones (conv1.kernel_size), on two lines (conv1. /
    # kernel_size) if that shows more columns or cuts fewer values.
    short = _short(order)
    headings = [(full, False), (short, False), (short, True)]
    plans = [layout(names, split) for names, split in headings]

    def merit(i: int) -> tuple[int, int, int, int]:
        shown, need, cut = plans[i]
        over = max(0, sum(need[c] for c in shown) + 2 * (len(shown) - 1) - width)
        return -over, len(shown), -cut, -i  # fits first, then shows most, then cuts least

    pick = max(range(3), key=merit)
    shown, need, _ = plans[pick]
    names, split = headings[pick]

    # A one-space divider and one space of right padding: the 2 between columns counted above.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for c in shown:
        table.add_column(
            Text(_header(names[c], split)),
            justify="right" if numeric(rows, c) else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=need[c],
        )
    for i in range(len(rows)):
        table.add_row(*(Text(_shorten(cells[c][i], need[c], c == "folder")) for c in shown))
    console = Console(
        width=max(width, sum(need[c] + 2 for c in shown)),  # the searched ones: never wrapped
        color_system=None,
        force_terminal=False,
        highlight=False,
    )
    with console.capture() as capture:
        console.print(table)
    lines = [line.rstrip() for line in capture.get().splitlines()]
    hidden = [c for c in order if c not in shown]
    if hidden:
        lines.append(f"not shown at {width} columns: {', '.join(hidden)} (in table.csv)")
    return "\n".join(lines)


def _cap(column: str) -> int:
    """How wide a column starts: a folder or note at its minimum, any other value at most 24."""
    return SHORTENED.get(column, VALUE_WIDTH)


def _short(order: Sequence[str]) -> dict[str, str]:
    """Short headers: config keys by their shortest telling suffix, printable; the others
    (rank, obj.val_accuracy, val_acc...) as they are."""
    named = {"rank", "note", *KEY_TAIL, *FIXED_COLUMNS}
    short = short_names(order)
    return {
        c: printable(c if c in named or c.startswith("obj.") or is_spread_column(c) else short[c])
        for c in order
    }


def _header(name: str, split: bool) -> str:
    """A header; when space is short, on two lines after the dot or underscore that makes it
    narrowest (conv1. / kernel_size), each line at least 3 characters (no out_ / 1)."""
    cuts = [i + 1 for i, char in enumerate(name) if char in "._" and 3 <= i + 1 <= len(name) - 3]
    if not split or not cuts:
        return name
    cut = min(cuts, key=lambda i: max(i, len(name) - i))
    return f"{name[:cut]}\n{name[cut:]}"


def _shorten(text: str, width: int, from_left: bool) -> str:
    """Text cut to `width` with an ellipsis: a folder keeps its end, which tells runs apart."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1 :] if from_left else text[: width - 1] + "…"
