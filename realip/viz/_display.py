"""Display containers shared by the views: text with an HTML twin, tables, and drawings.

Nothing here imports matplotlib or ipywidgets.  Every object has a clean ``text/plain``
representation (what nbval compares and what a terminal prints) and, where it helps, an
``text/html`` one; both are pure functions of the data, so stored notebook outputs repeat exactly.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def esc(text: object) -> str:
    """HTML-escape *text* (quotes included)."""
    return html.escape(str(text), quote=True)


class Rendered:
    """A result with a plain-text face and (optionally) an HTML one.

    ``print(obj)`` and ``repr(obj)`` give the text; Jupyter shows the HTML and keeps the text as
    the ``text/plain`` fallback.
    """

    def __init__(self, text: str, html_text: str | None = None) -> None:
        self.text = text
        self.html = html_text

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str | None:
        return self.html


def _wrap(cell: str, width: int) -> list[str]:
    out: list[str] = []
    for part in cell.split("\n"):
        out += textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=False) or [""]
    return out


class Table(Rendered):
    """A table of strings rendered as aligned text (long cells wrapped) and as an HTML table.

    *marks* optionally gives one CSS colour per row (a left border in HTML); *title* is a caption.
    """

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                 title: str = "", max_width: int = 40, marks: Sequence[str | None] = (),
                 css_class: str = "realip-table") -> None:
        self.columns = tuple(columns)
        self.rows = tuple(tuple(str(c) for c in r) for r in rows)
        self.title = title
        self.max_width = max_width
        self.marks = tuple(marks)
        self.css_class = css_class
        super().__init__(self._text(), self._html())

    def _text(self) -> str:
        n = len(self.columns)
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row[:n]):
                longest = max((len(x) for x in cell.split("\n")), default=0)
                widths[i] = max(widths[i], min(longest, self.max_width))
        widths = [min(w, self.max_width) for w in widths]

        def line(cells: Sequence[str]) -> list[str]:
            wrapped = [_wrap(c, widths[i]) for i, c in enumerate(cells)]
            height = max(len(w) for w in wrapped)
            out = []
            for k in range(height):
                parts = [(w[k] if k < len(w) else "").ljust(widths[i])
                         for i, w in enumerate(wrapped)]
                out.append("  ".join(parts).rstrip())
            return out

        lines = [self.title] if self.title else []
        lines += line(self.columns)
        lines.append("  ".join("-" * w for w in widths))
        for row in self.rows:
            lines += line(row + ("",) * (n - len(row)))
        return "\n".join(lines)

    def _html(self) -> str:
        th = "".join(f'<th style="text-align:left;padding:2px 8px">{esc(c)}</th>'
                     for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            mark = self.marks[i] if i < len(self.marks) else None
            style = f' style="border-left:4px solid {mark}"' if mark else ""
            tds = "".join(
                '<td style="text-align:left;vertical-align:top;padding:2px 8px;'
                f'white-space:pre-wrap">{esc(c)}</td>' for c in row)
            body.append(f"<tr{style}>{tds}</tr>")
        caption = (f'<caption style="text-align:left;font-weight:bold">{esc(self.title)}'
                   "</caption>" if self.title else "")
        return (f'<table class="{self.css_class}" style="border-collapse:collapse;'
                f'font-size:90%">{caption}<thead><tr>{th}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>")


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
