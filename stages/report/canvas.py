"""What every report figure is drawn on: matplotlib (object API, Agg canvas, no pyplot state)
with a fixed style, to PNG bytes.

Deterministic by construction: matplotlib's default style (a user's matplotlibrc is ignored),
its bundled DejaVu fonts, no `Software` or date metadata, fixed sizes and colours. The
figures themselves are in `plots.py`; the small axis and legend helpers they share are here.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend
    from matplotlib.typing import RcKeyType

Rgba = tuple[float, float, float, float]

DPI = 100
RC: dict[RcKeyType, object] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "axes.axisbelow": True, "svg.hashsalt": "emoprep",
}


@contextmanager
def style() -> Iterator[None]:
    """matplotlib defaults plus our few settings, whatever the user's matplotlibrc says."""
    import matplotlib as mpl
    import matplotlib.style as mstyle

    with mstyle.context("default"), mpl.rc_context(RC):
        yield


class PointStyle(TypedDict):
    """`scatter` keywords: marker size and alpha."""

    s: float
    alpha: float


def new_figure(w: float, h: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    """PNG bytes without metadata that varies (no Software key; Agg writes no date)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def integer_axis(axis: Axis) -> None:
    """Counts: ticks on whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def solid_legend(leg: Legend, size: float = 30) -> None:
    """Legend markers opaque and readable even when the points are tiny and translucent."""
    for h in leg.legend_handles:
        if h is not None and hasattr(h, "set_sizes"):
            h.set_alpha(1)
            h.set_sizes([size])


def colours(name: str, n: int) -> list[Rgba]:
    import matplotlib as mpl

    cmap = mpl.colormaps[name]
    return [cmap(i % cmap.N) for i in range(n)]


def point_style(n: int) -> PointStyle:
    """Marker size and alpha that keep 30 points visible and 13,000 points readable."""
    if n <= 300:
        return {"s": 16, "alpha": 0.7}
    if n <= 3000:
        return {"s": 6, "alpha": 0.4}
    return {"s": 2, "alpha": 0.2}
