"""The Predict → commit → reveal widget of :class:`realip.teaching.Prediction`.

An input (a text field, or one button per option), a **Reveal** button that stays disabled
until something is predicted, then — once revealed — the prediction is frozen and compared with
the library's answer, with the trace that explains it.  The text field updates as you type
(``continuous_update``): no Enter needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._text import NO_MATH
from .._text import esc_math as _md

if TYPE_CHECKING:
    from ..teaching import Prediction

__all__ = ["prediction_widget"]


def prediction_widget(p: Prediction) -> Any:
    """The ipywidgets box for *p* (CSS classes ``realip-predict``, ``realip-predict-input``,
    ``realip-reveal-button``, ``realip-predict-result``)."""
    import ipywidgets as w  # type: ignore[import-untyped]

    question = w.HTML(value=f'<span class="{NO_MATH}"><b>Predict</b> — {_md(p.question)}</span>')
    if p.choices:
        field = w.RadioButtons(options=list(p.choices), value=None,
                               layout=w.Layout(width="auto"))
    else:
        field = w.Text(value="", placeholder="your prediction", continuous_update=True,
                       layout=w.Layout(width="320px"))
    field.add_class("realip-predict-input")
    button = w.Button(description="Reveal", disabled=True,
                      tooltip="make a prediction first, then reveal")
    button.add_class("realip-reveal-button")
    note = w.HTML(value='<span style="color:#777">predict first: the button unlocks</span>')
    result = w.HTML(value="")
    result.add_class("realip-predict-result")

    def changed(_change: Any) -> None:
        ready = bool(str(field.value or "").strip())
        button.disabled = not ready
        note.value = "" if ready else note.value

    def reveal(_button: Any) -> None:
        ok, verdict = p.judge(field.value)
        field.disabled = True
        button.disabled = True
        colour = "#2e7d32" if ok else "#c62828"
        result.value = (f'<div class="{NO_MATH}" style="color:{colour};font-weight:bold">'
                        f"{_md(verdict)}</div>" + p.answer_html())

    field.observe(changed, "value")
    button.on_click(reveal)
    box = w.VBox([question, field, w.HBox([button, note]), result])
    box.add_class("realip-predict")
    return box
