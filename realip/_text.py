"""Text with an HTML twin, and tables: what every result shows in a terminal and in Jupyter.

Pure functions of the data (no matplotlib, no ipywidgets), so the teaching and viz layers can
both use them and stored notebook outputs repeat exactly.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

__all__ = ["NO_MATH", "Rendered", "Table", "esc", "esc_math"]


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
        return (f'<table class="{self.css_class} {NO_MATH}" style="border-collapse:collapse;'
                f'font-size:90%">{caption}<thead><tr>{th}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>")


def esc_math(text: object) -> str:
    """*text* safe inside Markdown/HTML output: ``$`` would start LaTeX in JupyterLab
    (``$remote_addr`` rendered as maths), so it becomes the ``&#36;`` entity — and the
    containers carry :data:`NO_MATH`, the classes MathJax skips (an entity alone is decoded
    back to ``$`` before MathJax reads the page)."""
    return esc(text).replace("$", "&#36;")


#: CSS classes that keep MathJax (JupyterLab, nbviewer) off nginx variables such as
#: ``$remote_addr``: MathJax 3's ``mathjax_ignore`` and MathJax 2's ``tex2jax_ignore``.
NO_MATH = "mathjax_ignore tex2jax_ignore"
