"""What every linesweep figure shares: one look, plain numbers on log axes, notes on the plot.

Run plots (linesweep.run.plots) and comparison plots (linesweep.compare.plots) draw with
matplotlib's object API in its default style; these helpers keep the details that matter to a
reader the same everywhere: a log axis only where the values span a decade, labelled 0.02 or 300
(never 7.08x10^1); text that may hold a user's `$` shown as typed (not as mathtext); what a plot
leaves out written on the plot itself; and the run a PNG belongs to named at its top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.ticker import Formatter

NOTE_STYLE = {"fontsize": 8, "color": "#444444", "style": "italic"}
CAPTION_STYLE = {"fontsize": 8, "color": "#444444"}


def tex_safe(text: Any) -> str:
    """Text as typed: a `$` in a config value or a path must not start mathtext (or crash it)."""
    return str(text).replace("$", r"\$")


class PlainLogFormatter(Formatter):
    """Log-axis labels as plain numbers (0.001, 20, 300); in-between ticks only over short spans."""

    def __init__(self, minor: bool = False) -> None:
        self.minor = minor

    def __call__(self, value: float, pos: int | None = None) -> str:
        if value <= 0:
            return ""
        if self.minor:
            low, high = sorted(self.axis.get_view_interval()) if self.axis else (value, value)
            decades = math.log10(high / low) if low > 0 else math.inf
            mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
            if decades > 2 or (decades > 1 and mantissa not in (2.0, 5.0)):
                return ""  # within a decade every tick is labelled, else only 2 and 5
        return f"{value:g}"


def log_scale_if_wide(ax: Any, axis: str, values: Sequence[float]) -> bool:
    """Use a log scale on `axis` ("x" or "y") when the positive values span a decade or more."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0 or max(finite) / min(finite) < 10:
        return False
    set_log(ax, axis)
    return True


def set_log(ax: Any, axis: str) -> None:
    """A log scale on `axis`, labelled with plain numbers."""
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(PlainLogFormatter())
    target.set_minor_formatter(PlainLogFormatter(minor=True))


def add_note(fig: Any, lines: Sequence[str]) -> None:
    """What the figure leaves out or draws differently, written under it (kept by savefig's
    tight bounding box; nothing else is drawn below a figure's bottom edge)."""
    text = "\n".join(tex_safe(line) for line in lines if line)
    if text:
        fig.text(0.01, -0.01, text, ha="left", va="top", **NOTE_STYLE)


def add_caption(fig: Any, text: str) -> None:
    """A line above the figure (above its title) naming what it shows: a run and its config.

    It lies past the figure's top edge, kept by savefig's tight bounding box; the run's learning
    curve, laid out with fixed margins, holds its caption inside (`run.plots.LearningCurve`)."""
    fig.text(0.5, 1.01, tex_safe(text), ha="center", va="bottom", **CAPTION_STYLE)


def legend_row(fig: Any, rows: int, columns: int, entries: int, per_line: int) -> tuple[Any, Any]:
    """A grid of `rows` x `columns` axes above a full-width row that holds one legend for all of
    them: (the axes, flattened; the legend's axes). Every panel reads its key in one place."""
    lines = max(1, -(-entries // per_line))
    height = fig.get_figheight() / rows
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[height] * rows + [0.25 * lines])
    axes = [fig.add_subplot(grid[r, c]) for r in range(rows) for c in range(columns)]
    key = fig.add_subplot(grid[rows, :])
    key.axis("off")
    fig.set_figheight(fig.get_figheight() + 0.25 * lines)
    return axes, key
