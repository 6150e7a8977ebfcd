"""Line charts drawn with matplotlib: inline SVG for the HTML report, PNG files for docs/ and bench/.

Figures are made on matplotlib's Agg canvas directly, never through pyplot, so no GUI backend is
ever chosen and no figure is kept in a global registry. The SVG is reproducible (the same data
gives the same bytes): its ids come from a fixed hash salt and it carries no date.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fadtq.files import atomic_write_bytes

Series = tuple[str, str, list[tuple[float, float]]]  # (name, colour, [(step, value), ...])

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
CHART_SIZE = (4.2, 2.8)  # inches: 403 x 269 CSS pixels, three charts to a row of the report
# SVG text stays text (small, searchable, one font named) and no text is read as TeX: a run may be named "a$b$".
STYLE = {"svg.hashsalt": "fadtq", "svg.fonttype": "none", "font.sans-serif": ["DejaVu Sans"],
         "text.parse_math": False, "font.size": 8, "axes.titlesize": 9, "axes.titleweight": "bold"}
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def value_range(values: list[float], fixed: tuple[float, float] | None = None) -> tuple[float, float]:
    """The values' extent, widened to ``fixed`` when given (shares: (0, 1), so that a flat curve
    looks flat instead of filling the chart); values outside ``fixed`` widen it. One value alone
    gets +-0.5 around it."""
    low, high = min(values), max(values)
    if fixed is not None:
        low, high = min(low, fixed[0]), max(high, fixed[1])
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def new_figure(size: tuple[float, float] = CHART_SIZE) -> Figure:
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


@matplotlib.rc_context(STYLE)
def draw_curves(axes: Axes, title: str, series: list[Series], y_range: tuple[float, float] | None = None) -> None:
    """One line per series over the steps, dots on short ones; lines may cross the frame (a
    format rate of 1.0 lies on it), so they are not clipped."""
    for name, colour, points in series:
        steps, values = zip(*points)
        axes.plot(steps, values, label=name, color=colour, linewidth=1.4, marker="o" if len(points) < 30 else None,
                  markersize=2.5, clip_on=False)
    axes.set_ylim(value_range([v for _, _, points in series for _, v in points], y_range))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.ticklabel_format(useOffset=False)  # step 100002 in full, not 2 and "+1e5" in a corner
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)


@matplotlib.rc_context(STYLE)
def add_legend(figure: Figure, columns: int = 3) -> None:
    """One legend under the charts (the series of the first axes), so it hides no curve."""
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside lower center",
                  ncols=columns, frameon=False)


def curve_chart(title: str, series: list[Series], y_range: tuple[float, float] | None = None) -> Figure:
    """A chart of the report: one set of axes with its legend."""
    figure = new_figure()
    draw_curves(figure.add_subplot(), title, series, y_range)
    add_legend(figure, columns=min(3, len(series)))
    return figure


@matplotlib.rc_context(STYLE)
def svg_markup(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (no XML declaration, no DOCTYPE)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


@matplotlib.rc_context(STYLE)
def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write the figure as a PNG file, atomically: readers see the old file or the whole new one."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return path
