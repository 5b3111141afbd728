"""Display containers shared by the views: text with an HTML twin, tables, and drawings.

Nothing here imports matplotlib or ipywidgets.  Every object has a clean ``text/plain``
representation (what nbval compares and what a terminal prints) and, where it helps, an
``text/html`` one; both are pure functions of the data, so stored notebook outputs repeat exactly.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from .._text import Rendered, Table, esc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PALETTE", "VERDICT_COLOURS", "Drawing", "Rendered", "Table", "esc"]

#: Field colours (pastel, readable under black text), cycled in field order.
PALETTE: tuple[str, ...] = (
    "#cfe8ff", "#ffe0b3", "#d6f5d6", "#f3d1f4", "#fff3b0", "#d9d2ff", "#c8f0ec", "#ffd6d6",
    "#e6e6c8", "#d0e0f0",
)

#: Colours of the annotation verdicts and the trust marks.
VERDICT_COLOURS: dict[str, str] = {
    "ok": "#2e7d32", "ignored": "#8d6e63", "error": "#c62828", "incomplete": "#ef6c00",
    "payload": "#757575", "trusted": "#2e7d32", "untrusted": "#c62828", "unchecked": "#6a1b9a",
    "unseen": "#9e9e9e",
}

#: Background colours of walk entries by state.
STATE_FILL: dict[str, str] = {
    "trusted": "#d6f5d6", "untrusted": "#ffd6d6", "unchecked": "#efe0ff", "unparsable": "#eeeeee",
    "unseen": "#ffffff", "peer": "#e8f1ff",
}


class Drawing:
    """A matplotlib figure together with a text description of what it shows.

    Jupyter displays the PNG (``_repr_png_``); ``text/plain`` is the description, so a stored
    notebook stays comparable (nbval skips images) and readable without the picture.
    ``figure`` is the :class:`matplotlib.figure.Figure` for further changes or ``savefig``.
    """

    def __init__(self, figure: Figure, text: str) -> None:
        self.figure = figure
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def png(self, dpi: int = 100) -> bytes:
        """The figure as PNG bytes (no timestamp or software metadata: reproducible)."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def savefig(self, *args: Any, **kwargs: Any) -> None:
        """``Figure.savefig`` (any path or format matplotlib supports)."""
        self.figure.savefig(*args, **kwargs)


def put_text(ax: Any, x: float, y: float, text: str, **kwargs: Any) -> Any:
    """``ax.text`` with mathtext off: ``$remote_addr`` is an nginx variable, not maths."""
    return ax.text(x, y, text, parse_math=False, **kwargs)


def new_figure(width: float, height: float) -> Figure:
    """A stand-alone figure (no pyplot, no global state, nothing shown by itself)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=None)
