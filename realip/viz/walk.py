"""The right-to-left walk over X-Forwarded-For, drawn from a :class:`~realip.resolve.Resolution`.

Nothing here decides anything: every mark comes from the resolver's ``trace`` (one
:class:`~realip.resolve.Step` per examined entry, in the order examined) and ``entries``.  A
*cursor* says how many steps have been revealed, so the same model serves the static figure
(:func:`walk_figure`, all steps), the text and HTML snapshots, and the interactive
:class:`~realip.viz.Stepper`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._display import STATE_FILL, VERDICT_COLOURS, Drawing, Rendered, esc, new_figure, put_text

if TYPE_CHECKING:
    from ..resolve import Resolution, Step

__all__ = ["Cell", "WalkState", "walk_figure", "walk_state", "walk_view"]

#: What a step's verdict word means on the entry it examined (short form for the drawing).
_LABELS = {
    "skip": "trusted: keep walking",
    "client": "not trusted: the client",
    "rightmost": "used, no trust check",
    "leftmost": "leftmost: used",
    "unparsable": "cannot be parsed",
    "parsed": "parsed",
    "ignored": "ignored",
    "bound": "beyond the limit",
    "proxy_protocol": "from the PROXY header",
}


@dataclass(frozen=True)
class Cell:
    """One box of the row: an X-Forwarded-For entry or the TCP peer."""

    text: str
    is_peer: bool
    forged: bool
    #: index of the step that examined it (None: not examined, or not yet revealed)
    step: int | None
    #: ``trusted``, ``untrusted``, ``unchecked``, ``unparsable``, ``unseen`` or ``peer``
    state: str
    label: str
    rule: str | None
    active: bool
    chosen: bool


@dataclass(frozen=True)
class WalkState:
    """The row of cells after *cursor* steps, the active step's sentence and, once the walk is
    fully revealed, the result."""

    cells: tuple[Cell, ...]
    cursor: int
    total: int
    verdict: str
    result: str
    header: str
    done: bool


def _state_of(step: Step) -> tuple[str, str]:
    """(state, label) of an examined cell."""
    if step.verdict == "unparsable":
        return "unparsable", "✘ cannot be parsed"
    if step.trusted is True:
        rule = f" ({step.rule})" if step.rule else ""
        if step.verdict == "peer":
            return "trusted", f"✔ trusted proxy{rule}"
        if step.verdict == "leftmost":
            return "trusted", f"✔ trusted{rule}; leftmost: used"
        return "trusted", f"✔ trusted{rule}"
    if step.trusted is False:
        if step.verdict == "peer":
            return "untrusted", "✘ not a trusted proxy"
        return "untrusted", "✘ not trusted"
    if step.verdict == "peer":
        return "peer", "TCP peer (no trust check)"
    return "unchecked", "• " + _LABELS.get(step.verdict, step.verdict)


def _chosen_step(res: Resolution) -> int | None:
    """Index of the step whose address became the result (None: the peer, or nothing)."""
    trace = res.trace
    for k in range(len(trace) - 1, -1, -1):
        s = trace[k]
        if s.verdict in ("client", "rightmost", "leftmost", "proxy_protocol") \
                and s.address is not None and res.used_header:
            return k
    return None


def walk_state(res: Resolution, cursor: int | None = None, *, forged: int = 0,
               peer_label: str = "TCP peer") -> WalkState:
    """The walk after *cursor* steps (0-based index of the active step; ``None``: the last).

    *forged* is how many entries, from the left, the client wrote itself (marked as forged).
    """
    trace = res.trace
    total = len(trace)
    last = total - 1
    k = last if cursor is None else max(0, min(cursor, last))
    entries = res.entries
    by_position: dict[int, int] = {}
    peer_step: int | None = None
    for i, s in enumerate(trace[: k + 1]):
        if s.position is not None:
            by_position[s.position] = i
        elif s.verdict == "peer":
            peer_step = i
    done = k >= last
    chosen = _chosen_step(res) if done else None
    chosen_peer = done and res.ok and not res.used_header
    cells: list[Cell] = []
    for pos, entry in enumerate(entries):
        found = by_position.get(pos)
        if found is None:
            cells.append(Cell(entry.text, False, pos < forged, None, "unseen",
                              "not examined" if done else "", None, False, False))
            continue
        state, label = _state_of(trace[found])
        cells.append(Cell(entry.text, False, pos < forged, found, state, label,
                          trace[found].rule, found == k, chosen == found))
    peer_text = next((s.text for s in trace if s.position is None and s.verdict == "peer"),
                     res.realip_remote_addr or None)
    if peer_text:
        if peer_step is None:
            cells.append(Cell(peer_text, True, False, None, "unseen", peer_label, None, False,
                              chosen_peer))
        else:
            state, label = _state_of(trace[peer_step])
            cells.append(Cell(peer_text, True, False, peer_step, state, label,
                              trace[peer_step].rule, peer_step == k, chosen_peer))
    verdict = ""
    if total:
        verdict = f"Step {k + 1} of {total}: {trace[k].why or trace[k].verdict}"
    result = ""
    if done:
        who = res.addr if res.addr is not None else "nobody (fails closed)"
        result = f"Walk stopped: {res.reason}. The client is {who}."
    header = res.header or "header"
    return WalkState(tuple(cells), k, total, verdict, result, header, done)


# ----------------------------------------------------------------------------------------------
# text and HTML


def walk_text(st: WalkState) -> str:
    """A plain-text rendering of the state: one line per cell, the active one marked ▶."""
    lines = [f"{st.header} entries, left to right, then the TCP peer:"]
    width = max([len(c.text) for c in st.cells] + [8])
    for c in st.cells:
        arrow = "▶" if c.active else " "
        tag = "peer " if c.is_peer else ("forged" if c.forged else "      ")
        step = f"step {c.step + 1}" if c.step is not None else "      "
        chosen = "  ◀ chosen" if c.chosen else ""
        lines.append(f" {arrow} {tag:<6} {c.text:<{width}}  {step:<7} {c.label}{chosen}".rstrip())
    if st.verdict:
        lines.append(st.verdict)
    if st.result:
        lines.append(st.result)
    return "\n".join(lines)


def walk_html(st: WalkState) -> str:
    """The HTML of the state.  Stable classes: ``realip-entry`` on every box,
    ``realip-entry-active`` on the active one, ``realip-entry-chosen`` on the result,
    ``realip-verdict`` and ``realip-result`` on the sentences."""
    boxes = []
    for c in st.cells:
        classes = ["realip-entry", f"realip-{c.state}"]
        if c.is_peer:
            classes.append("realip-peer")
        if c.forged:
            classes.append("realip-forged")
        if c.active:
            classes.append("realip-entry-active")
        if c.chosen:
            classes.append("realip-entry-chosen")
        border = "3px solid #1565c0" if c.active else "1px solid #9e9e9e"
        if c.chosen:
            border = "3px solid #f9a825"
        tag = "TCP peer" if c.is_peer else ("forged by the client" if c.forged else "&nbsp;")
        step = f"step {c.step + 1}" if c.step is not None else "&nbsp;"
        colour = {"trusted": VERDICT_COLOURS["trusted"], "untrusted": VERDICT_COLOURS["untrusted"],
                  }.get(c.state, "#424242")
        sep = ('<span style="display:inline-block;width:14px;border-left:2px dashed #616161;'
               'height:70px;margin:0 4px 0 10px;vertical-align:middle"></span>'
               if c.is_peer else "")
        boxes.append(
            f'{sep}<div class="{" ".join(classes)}" style="display:inline-block;'
            f"vertical-align:top;min-width:120px;margin:4px;padding:6px;border:{border};"
            f'border-radius:6px;background:{STATE_FILL.get(c.state, "#ffffff")}">'
            f'<div style="font-size:75%;color:#616161">{tag}</div>'
            f'<div style="font-family:monospace;font-weight:bold">{esc(c.text)}</div>'
            f'<div class="realip-mark" style="font-size:80%;color:{colour}">'
            f"{esc(c.label) or '&nbsp;'}</div>"
            f'<div style="font-size:70%;color:#757575">{step}</div></div>')
    row = ('<div class="realip-row" style="white-space:nowrap;overflow-x:auto">'
           f'{"".join(boxes)}</div>')
    direction = ('<div style="font-size:80%;color:#616161">◀── the walk goes right to left, '
                 "from the TCP peer towards the client</div>")
    verdict = f'<div class="realip-verdict" style="margin-top:6px">{esc(st.verdict)}</div>'
    result = (f'<div class="realip-result" style="margin-top:4px;font-weight:bold">'
              f"{esc(st.result)}</div>") if st.result else '<div class="realip-result"></div>'
    return f'<div class="realip-walk">{row}{direction}{verdict}{result}</div>'


def walk_view(res: Resolution, cursor: int | None = None, *, forged: int = 0) -> Rendered:
    """The walk as text + HTML (the stepper's face without the buttons)."""
    st = walk_state(res, cursor, forged=forged)
    return Rendered(walk_text(st), walk_html(st))


# ----------------------------------------------------------------------------------------------
# matplotlib


def walk_figure(res: Resolution, *, forged: int = 0, title: str | None = None) -> Drawing:
    """The whole walk as a figure: the entries in a row and the TCP peer on the right, each box
    coloured by its verdict (green trusted, red untrusted, violet used without a check, white not
    examined) with the rule that decided, the order of the steps above, the chosen address framed
    in gold, and the stop reason underneath."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    st = walk_state(res, None, forged=forged)
    n = max(1, len(st.cells))
    fig = new_figure(min(2.3 * n + 0.6, 14), 2.6)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(-0.1, n + 0.2)
    ax.set_ylim(0.5, 3.1)
    ax.axis("off")
    head = title or (f"{res.mode}: {st.header}, walked right to left" if res.mode else st.header)
    put_text(ax, 0.05, 2.92, head, fontsize=10, weight="bold", va="top")
    for i, c in enumerate(st.cells):
        x = i + (0.2 if c.is_peer else 0.0)
        edge = "#f9a825" if c.chosen else "#757575"
        ax.add_patch(FancyBboxPatch((x + 0.06, 1.05), 0.88, 0.95,
                                    boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=STATE_FILL.get(c.state, "#ffffff"), edgecolor=edge,
                                    linewidth=3 if c.chosen else 1))
        tag = "TCP peer" if c.is_peer else ("forged" if c.forged else "")
        put_text(ax, x + 0.5, 1.88, tag, ha="center", fontsize=7.5, color="#616161")
        put_text(ax, x + 0.5, 1.58, c.text, ha="center", fontsize=9, family="monospace",
                weight="bold")
        colour = {"trusted": VERDICT_COLOURS["trusted"],
                  "untrusted": VERDICT_COLOURS["untrusted"]}.get(c.state, "#424242")
        label = c.label or "not examined"
        put_text(ax, x + 0.5, 1.3, _wrap(label, 24), ha="center", va="center", fontsize=7.5,
                color=colour)
        if c.step is not None:
            put_text(ax, x + 0.5, 2.25, f"{c.step + 1}", ha="center", va="center", fontsize=9,
                    color="white", weight="bold",
                    bbox={"boxstyle": "circle,pad=0.25", "facecolor": "#1565c0",
                          "edgecolor": "none"})
        if c.is_peer:
            ax.plot([x - 0.08, x - 0.08], [1.0, 2.05], linestyle="--", color="#616161")
    ax.add_patch(FancyArrowPatch((n + 0.05, 2.55), (0.1, 2.55), arrowstyle="-|>",
                                 mutation_scale=14, color="#1565c0"))
    put_text(ax, n / 2, 2.62, "walk direction", ha="center", fontsize=7.5, color="#1565c0")
    put_text(ax, 0.05, 0.9, _wrap(st.result, 150), fontsize=9, va="top")
    return Drawing(fig, walk_text(st))


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""

