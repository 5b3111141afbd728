"""The aedes broker listener (aedes-server-factory ``trustProxy``): the PROXY header on tcp, the
X-Forwarded-For / X-Real-IP rule on ws; a header that crashes the decoder takes the whole Node
process down."""

from __future__ import annotations

from dataclasses import replace

from ..._addr import format_ip
from ...proxy_protocol import Endpoint
from ...wire import parse_http
from ..base import Broker, HopView, Inbound, Outbound, TrustDecision
from .receive import RECEIVER
from .ws import aedes_ws_peer

__all__ = ["CRASH_LOG", "peername", "step", "trust"]

#: what a crash means for everyone
CRASH_LOG = "the broker process died: every client is disconnected"


def peername(ep: Endpoint) -> str:
    """``ipAddress:port`` as aedes keeps them in ``connDetails``."""
    host = ep.host if isinstance(ep.host, str) else format_ip(ep.host)
    return f"{host}:{'NaN' if ep.port is None else ep.port}"


def step(node: Broker, conn: Inbound) -> Outbound:
    """One connection arriving at an aedes listener (tcp or ws)."""
    decisions: list[str] = []
    kind = f"{node.kind}-{node.listener}"
    data = conn.data

    def closed(log: str) -> Outbound:
        return Outbound.refusal(node.name, kind, conn, {}, decisions, log)

    src: str = peername(conn.peer)
    acc = None
    if node.trust_proxy and node.listener == "tcp":
        acc = RECEIVER.accepts(data)
        if acc.crash:
            decisions.append(f"trustProxy: {acc.reason}")
            out = closed(f"{acc.log_line}: {CRASH_LOG}")
            return replace(out, view=replace(out.view, acceptance=acc))
        if not acc.accepted and not acc.waiting:
            decisions.append(f"trustProxy: {acc.reason}")
            return closed("MQTT parser error: connection closed")
        addr, port = acc.variable("ipAddress"), acc.variable("port")
        if addr is not None:
            src = f"{addr}:{port}"
        data = data[acc.consumed or 0:]
        decisions.append(f"trustProxy: {acc.reason}")
    elif data[:5] == b"PROXY" or data[:2] == b"\r\n":
        decisions.append("trustProxy off: the PROXY header reaches the MQTT parser")
        return closed("MQTT parser error: connection closed")
    if node.listener == "tcp":
        if data[:1] != b"\x10":
            decisions.append(f"first bytes {data[:8]!r} are not an MQTT CONNECT")
            return closed("MQTT parser error: connection closed")
        decisions.append(f"MQTT CONNECT from {conn.client_id}: connDetails {src}")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, {}, tuple(decisions),
                                acceptance=acc, peername=src))
    parsed = parse_http(data)
    if parsed is None:
        decisions.append("not an HTTP upgrade request: 400")
        return closed("400 Bad Request")
    _, headers, _ = parsed
    peer_host = conn.peer.host if isinstance(conn.peer.host, str) else format_ip(conn.peer.host)
    if not node.trust_proxy:
        decisions.append(f"trustProxy off: the TCP peer {src}")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, {}, tuple(decisions),
                                peername=src))
    res = aedes_ws_peer(peer_host, conn.peer.port or 0, list(headers))
    name = f"{res.addr}:{res.port}"
    decisions.append(f"trustProxy: {res.reason}: connDetails {name}")
    return Outbound(HopView(node.name, kind, conn.peer, conn.local, {}, tuple(decisions),
                            resolution=res, peername=name))


def trust(node: Broker, sender_addr: str) -> TrustDecision:
    """aedes has no list of trusted proxies: ``trustProxy`` believes every sender."""
    if node.trust_proxy:
        return TrustDecision(True, "trustProxy: true (any sender)")
    return TrustDecision(None, "trustProxy: false")
