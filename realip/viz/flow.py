"""Drawings of a simulated flow: the topology (hosts, links, trust) and a sequence diagram.

Both read a :class:`~realip.topology.Trace` (a :class:`~realip.topology.Topology` is simulated
first) and decide nothing themselves: what a link carries comes from the link's bytes, what a
hop did from its view, and the peername from the trace.  Who trusts whom is read from each
receiver's configuration (its trusted ranges tested against the sender's address).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..programs.base import TrustDecision
from ._display import Drawing, new_figure, put_text

if TYPE_CHECKING:
    from ..topology import Link, Topology, Trace

__all__ = ["Trust", "carried", "draw_topology", "host_label", "sequence_view", "trust_of"]

#: The widest figure (inches, drawn at 100 dpi: about a notebook's output width) and the
#: smallest font (points: 8 pt is 11 px at 1:1).
MAX_WIDTH = 9.6
SMALL = 8.0

_XFF_HEADERS = ("x-forwarded-for", "x-forwarded-port", "x-real-ip", "forwarded")


def host_label(name: str) -> str:
    """``lb1`` → ``LB 1``, ``emqx`` → ``EMQX``, ``client`` → ``MQTT client``."""
    m = re.fullmatch(r"lb[-_ ]?(\d+)", name)
    if m:
        return f"LB {m.group(1)}"
    from ..programs import BROKER_KINDS

    names = {"client": "MQTT client", **{k: e.label for k, e in BROKER_KINDS.items()}}
    return names.get(name, name)


def _as_trace(topology_or_trace: Topology | Trace) -> Trace:
    from ..topology import Trace, simulate

    if isinstance(topology_or_trace, Trace):
        return topology_or_trace
    return simulate(topology_or_trace)


def _proxy_line(raw: bytes) -> str:
    if raw.startswith(b"PROXY"):
        return raw.split(b"\r\n", 1)[0].decode("latin-1")
    from ..errors import InvalidProxyHeader
    from ..proxy_protocol import decode

    try:
        h = decode(raw, verify_crc32c=False)
    except InvalidProxyHeader:
        h = None
    if h is None:
        return f"PROXY v2 ({len(raw)} bytes, not decodable)"
    tlvs = f" + {', '.join(t.name for t in h.tlvs)}" if h.tlvs else ""
    return f"PROXY v2 {h.command.name} {h.source} → {h.destination}{tlvs} ({len(raw)} B)"


def carried(link: Link, *, request_line: bool = False) -> list[str]:
    """What *link* carries that matters for the client's address, one line each: the PROXY
    header(s), the X-Forwarded-For / X-Forwarded-Port / X-Real-IP / Forwarded lines of an HTTP
    request, or the MQTT CONNECT."""
    out: list[str] = []
    for kind, raw in link.parts:
        if kind == "proxy":
            out.append(_proxy_line(raw))
        elif kind == "mqtt":
            out.append(f"MQTT CONNECT ({len(raw)} B)")
        elif kind == "http":
            head = raw.split(b"\r\n", 1)[0].decode("latin-1")
            if request_line:
                out.append(head)
            found = [f"{k}: {v}" for k, v in link.http_headers() if k.lower() in _XFF_HEADERS]
            out += found or ([] if request_line else ["WebSocket upgrade (no X-Forwarded-For)"])
        else:
            out.append(f"{kind} ({len(raw)} B)")
    if link.tls is not None:
        tls = link.tls
        inside = {"mqtt": "MQTT CONNECT", "http": "WebSocket upgrade"}.get(tls.kind, tls.kind)
        sni = f" SNI {tls.server_name}" if tls.server_name else " (no SNI)"
        who = link.tls_holder or "no one on this path"
        out.append(f"TLS{sni}: {inside} inside, readable by {host_label(who)}")
    return out


#: Whether a receiver takes the client address from what its sender wrote (``trusted`` True /
#: False / None, and the ``rule`` that decides) — each program's room decides it.
Trust = TrustDecision


def _covers(entries: tuple[str, ...], addr: str) -> bool | None:
    from ..programs.base import covers

    return covers(entries, addr)


def trust_of(node: Any, sender_addr: str) -> Trust:
    """How *node* (a hop or the broker of a topology) treats what *sender_addr* sends it (its
    room's answer, :func:`realip.programs.trust`)."""
    from ..programs import trust

    return trust(node, sender_addr)


def _ranges_of(node: Any) -> tuple[str, ...]:
    """The trusted ranges a node's configuration names (empty: none, or "anyone")."""
    for attr in ("set_real_ip_from", "expect_proxy_from", "proxy_address_allow"):
        value = getattr(node, attr, None)
        if value:
            return tuple(value)
    return ()


def _zone_start(nodes: list[Any], trusts: list[Trust], links: Sequence[Link] = ()
                ) -> int | None:
    """Index of the first host inside the trusted zone: a host is inside when its successor
    trusts what it sends, or when a later node's trusted ranges cover its address."""
    for i, node in enumerate(nodes[:-1]):
        if i < len(trusts) and trusts[i].trusted:
            return i
        # a PROXY header relayed untouched (pass-through) is the word of the host that wrote
        # it: the zone starts there, not at the relay
        if i < len(links) and links[i].proxy_header is not None and any(
                trusts[k].trusted and links[k].proxy_header == links[i].proxy_header
                for k in range(i + 1, len(trusts))):
            return i
        if any(_covers(_ranges_of(later), node.addr) for later in nodes[i + 1 :]
               if _ranges_of(later)):
            return i
    return None


def _node_lines(node: Any, is_client: bool) -> list[str]:
    from ..programs import HopKind, hop_kind

    if is_client:
        over = {("tcp", False): "MQTT over TCP", ("ws", False): "MQTT over WebSocket",
                ("tcp", True): "MQTT over TLS", ("ws", True): "MQTT over wss"}[
            (node.transport, bool(getattr(node, "tls", False)))]
        out = ["WAN " + str(node.addr), f"port {node.port}", over]
        if getattr(node, "tls", False) and node.cert_cn is not None:
            out.append(f"cert CN {node.cert_cn}")
        return out
    entry = hop_kind(node)
    if isinstance(entry, HopKind):
        what = entry.label(node)
    else:
        what = f"{entry.label} {node.listener} listener"
    lines = [what, f"LAN {node.addr}"]
    public = getattr(node, "public", None)
    if public:
        lines.append(f"WAN {public}")
    return lines


def _wrap(lines: list[str], width: int) -> str:
    out: list[str] = []
    for line in lines:
        # "(35 B)" stays on one line: a no-break space while wrapping
        kept = line.replace(" B)", "\u00a0B)")
        out += [w.replace("\u00a0", " ") for w in
                textwrap.wrap(kept, width, break_long_words=True)] or [""]
    return "\n".join(out)


def _flow_text(trace: Trace, trusts: list[Trust], shown: bool = True) -> str:
    topo = trace.topology
    nodes: list[Any] = [topo.client, *topo.hops, topo.broker]
    lines = [f"topology {topo.name}" + (f": {topo.title}" if topo.title else "")]
    for i, node in enumerate(nodes):
        label = host_label(node.name)
        lines.append(f"[{label}] " + ", ".join(_node_lines(node, i == 0)))
        if i < len(trace.links):
            link = trace.links[i]
            t = trusts[i]
            mark = {True: "trusted", False: "NOT trusted", None: "not read"}[t.trusted]
            if shown:
                lines.append(f"   --> {link.src} -> {link.dst}: " + " | ".join(carried(link)))
                lines.append(f"       {host_label(link.receiver)}: {mark} ({t.rule})")
            else:
                lines.append(f"   --> {link.dst}: ?")
                lines.append(f"       {host_label(link.receiver)}: {t.rule}")
    lines.append(_outcome(trace, shown))
    return "\n".join(lines)


def _outcome(trace: Trace, shown: bool = True) -> str:
    if not shown:
        return "broker peername = ?  (predict it, then simulate)"
    if not trace.connected:
        return f"connection closed: {trace.failure}"
    client = trace.topology.client
    real = client.addr
    same = trace.client_addr == real
    if same and trace.peername != f"{real}:{client.port}":
        port = (trace.peername or "").rsplit(":", 1)[-1]
        # a right address with a port that is not the client's: say where the port came from
        verdict = (f"the client's address, but not its port {client.port}: {port} came from a "
                   "port header")
    else:
        verdict = "the real client" if same else f"NOT the real client {real}"
    text = f"broker peername = {trace.peername} ({verdict})"
    if trace.username is not None:
        cn = client.cert_cn
        if cn is not None and trace.username in (cn, f"CN={cn}"):
            who = "the client's own certificate"
        elif cn is None:
            who = "no certificate was ever shown"
        else:
            who = f"NOT the client's certificate CN {cn}"
        text += f"; username = {trace.username} ({who})"
    return text


def draw_topology(topology_or_trace: Topology | Trace, *, title: str | None = None,
                  outcome: bool = True) -> Drawing:
    """The hosts left to right with their article addresses, each link labelled with what it
    carries (PROXY header, X-Forwarded-For …) and whether the receiver trusts it, the trusted
    zone shaded, and the broker's peername (green when it is the client's address).

    ``outcome=False`` draws the hosts and the configuration only — no link contents, trust
    marks or peername — for a figure that comes before a *Predict* question."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    trace = _as_trace(topology_or_trace)
    topo = trace.topology
    nodes: list[Any] = [topo.client, *topo.hops, topo.broker]
    senders = [lk.src.host for lk in trace.links]
    # each receiver's decision as its step recorded it (from its configuration when the
    # connection never reached it)
    trusts = [(trace.views[i].trust if i < len(trace.views) else None)
              or trust_of(nodes[i + 1], str(senders[i])) for i in range(len(trace.links))]
    n = len(nodes)
    # coordinates are inches, and the figure fits a notebook's width (MAX_WIDTH) at 100 dpi,
    # so it is shown 1:1 and its smallest text (SMALL pt) stays above 10 px
    gap = min(2.45, (MAX_WIDTH - 2.1) / max(n - 1, 1))
    line = SMALL * 1.25 / 72
    chars = max(16, int((gap - 0.2) / (0.6 * SMALL / 72)))
    box = min(1.74, gap - 0.45)
    width = gap * (n - 1) + 2.1
    if outcome:
        above = [_wrap(carried(link), chars) for link in trace.links]
    else:
        above = [_wrap(["?"], chars) for _link in trace.links]
    below = []
    for i, link in enumerate(trace.links):
        t = trusts[i]
        mark = {True: "✔ trusted", False: "✘ not trusted", None: "not read"}[t.trusted]
        if outcome:
            below.append(_wrap([f"{mark} by {host_label(link.receiver)}", t.rule], chars))
        else:
            below.append(_wrap([f"{host_label(link.receiver)}: {t.rule}"], chars))
    result = _outcome(trace, outcome)
    good = trace.connected and trace.client_addr == topo.client.addr and (
        trace.username is None or trace.username in (topo.client.cert_cn,
                                                     f"CN={topo.client.cert_cn}"))
    out_text = _wrap([result], max(30, int(width / 0.085)))
    head = _wrap([title or topo.title or topo.name], max(30, int(width / 0.095)))
    top = 0.7 + max([a.count("\n") + 1 for a in above] + [0]) * line + 0.2 \
        + (head.count("\n") + 1) * 0.2
    bottom = -0.85 - max([b.count("\n") + 1 for b in below] + [0]) * line - 0.25 \
        - (out_text.count("\n") + 1) * 0.2
    fig = new_figure(width, top - bottom)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(-1.05, gap * (n - 1) + 1.05)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    first = _zone_start(nodes, trusts, trace.links) if outcome else None
    if first is not None:
        x0 = gap * first - 0.98
        ax.add_patch(FancyBboxPatch((x0, -0.74), gap * (n - 1) + 0.98 - x0, 1.38,
                                    boxstyle="round,pad=0.02,rounding_size=0.12",
                                    facecolor="#eef7ee", edgecolor="#66bb6a", linestyle="--"))
        put_text(ax, x0 + 0.08, -0.71, "trusted zone" + (" (includes the client!)" if first == 0
                                                    else ""),
                fontsize=SMALL, color="#c62828" if first == 0 else "#2e7d32", va="bottom")
    for i, node in enumerate(nodes):
        x = gap * i
        face = "#fff8e1" if i == 0 else ("#e3f2fd" if i == n - 1 else "#f5f5f5")
        ax.add_patch(FancyBboxPatch((x - box / 2, -0.52), box, 1.04,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=face, edgecolor="#616161"))
        put_text(ax, x, 0.34, host_label(node.name), ha="center", va="center", fontsize=10,
                weight="bold")
        put_text(ax, x, -0.1, "\n".join(_node_lines(node, i == 0)), ha="center", va="center",
                fontsize=SMALL, linespacing=1.25)
    for i, _link in enumerate(trace.links):
        x0, x1 = gap * i + box / 2 + 0.03, gap * (i + 1) - box / 2 - 0.03
        view_ok = not outcome or i >= len(trace.views) or trace.views[i].accepted
        colour = "#424242" if view_ok else "#c62828"
        ax.add_patch(FancyArrowPatch((x0, 0.0), (x1, 0.0), arrowstyle="-|>", mutation_scale=14,
                                     color=colour, linewidth=1.4))
        mid = gap * (i + 0.5)
        put_text(ax, mid, 0.7, above[i], ha="center", va="bottom", fontsize=SMALL,
                 family="monospace", linespacing=1.2)
        tcol = {True: "#2e7d32", False: "#c62828", None: "#757575"}[trusts[i].trusted] \
            if outcome else "#555555"
        put_text(ax, mid, -0.85, below[i], ha="center", va="top", fontsize=SMALL,
                 color=tcol, linespacing=1.2)
        if not view_ok:
            put_text(ax, x1 + 0.05, 0.14, "✘", color="#c62828", fontsize=14, ha="left",
                    va="center")
    colour = ("#2e7d32" if good else "#c62828") if outcome else "#424242"
    put_text(ax, gap * (n - 1) + 1.0, bottom + 0.08, out_text, ha="right", va="bottom",
             fontsize=9.5, weight="bold", color=colour,
             bbox={"boxstyle": "round,pad=0.3", "facecolor": "#ffffff", "edgecolor": colour})
    put_text(ax, -1.0, top - 0.08, head, fontsize=10.5, weight="bold", va="top")
    return Drawing(fig, _flow_text(trace, trusts, outcome))


# ----------------------------------------------------------------------------------------------
# sequence diagram

_BORING = ("proxy_set_header Upgrade", "proxy_set_header Host", "proxy_set_header Connection")


def _decisions(trace: Trace, i: int) -> list[str]:
    if i >= len(trace.views):
        return []
    view = trace.views[i]
    lines = [d for d in view.decisions if not d.startswith(_BORING)]
    if not view.accepted:
        lines.append(f"CLOSES the connection: {view.log}")
    return lines


def sequence_view(trace_or_topology: Trace | Topology, *, max_lines: int = 4) -> Drawing:
    """A sequence diagram of the flow: one lifeline per host, one arrow per TCP connection
    (client → LB 1 → … → broker) labelled with the first lines of what was sent, and under it
    what the receiving hop decided."""
    from matplotlib.patches import FancyArrowPatch

    trace = _as_trace(trace_or_topology)
    topo = trace.topology
    names = [topo.client.name, *(h.name for h in topo.hops), topo.broker.name]
    n = len(names)
    # inches, at most MAX_WIDTH wide (shown 1:1 in a notebook); every text block sits on an
    # opaque box starting at its arrow, so no lifeline runs through a label
    gap = min(2.7, (MAX_WIDTH - 2.4) / max(n - 1, 1))
    width = gap * (n - 1) + 2.4
    char = 0.6 * SMALL / 72
    line = SMALL * 1.3 / 72
    blocks = []
    for i, link in enumerate(trace.links):
        room = width - 1.0 - (gap * i + 0.1) - 0.2  # from the arrow's start to the right edge
        chars = max(24, int(room / char))
        sent = _wrap(carried(link, request_line=True)[:max_lines], chars).split("\n")
        room_said = gap * (i + 1) - 0.1 + 1.0 - 0.1  # from the left edge to the arrow's end
        said = [d for d in _wrap(_decisions(trace, i), max(24, int(room_said / (char * 0.95)))
                                 ).split("\n") if d]
        blocks.append((sent, said))
    heights = [(len(s) + len(d)) * line + 0.6 for s, d in blocks]
    top, bottom = 0.35, -(sum(heights) + 0.75)
    fig = new_figure(width, top - bottom)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(-1.0, gap * (n - 1) + 1.4)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    for i, name in enumerate(names):
        x = gap * i
        put_text(ax, x, 0.15, host_label(name), ha="center", va="center", fontsize=10,
                 weight="bold", bbox={"boxstyle": "round,pad=0.3", "facecolor": "#f5f5f5",
                                      "edgecolor": "#616161"})
        ax.plot([x, x], [-0.05, bottom + 0.45], color="#bdbdbd", linewidth=1, zorder=0)
    y = -0.25
    plate = {"boxstyle": "square,pad=0.15", "facecolor": "#ffffff", "edgecolor": "none",
             "alpha": 0.95}
    for i, (sent, said) in enumerate(blocks):
        x0, x1 = gap * i, gap * (i + 1)
        put_text(ax, x0 + 0.1, y, "\n".join(sent), fontsize=SMALL, family="monospace",
                 va="top", linespacing=1.3, bbox=plate, zorder=3)
        y_arrow = y - len(sent) * line - 0.12
        ok = i >= len(trace.views) or trace.views[i].accepted
        ax.add_patch(FancyArrowPatch((x0, y_arrow), (x1, y_arrow), arrowstyle="-|>",
                                     mutation_scale=13, color="#424242" if ok else "#c62828",
                                     linewidth=1.3, zorder=2))
        if said:
            put_text(ax, x1 - 0.1, y_arrow - 0.1, "\n".join(said), fontsize=SMALL, va="top",
                     ha="right", color="#1a237e" if ok else "#c62828", linespacing=1.3,
                     bbox=plate, zorder=3)
        y -= heights[i]
    outcome = _outcome(trace)
    good = trace.connected and trace.client_addr == topo.client.addr
    put_text(ax, gap * (n - 1) + 1.3, bottom + 0.1, _wrap([outcome], int(width / 0.085)),
             ha="right", va="bottom", fontsize=9, weight="bold",
             color="#2e7d32" if good else "#c62828")
    return Drawing(fig, trace.table())
