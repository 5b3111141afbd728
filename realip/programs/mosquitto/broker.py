"""The Mosquitto broker listener: ``enable_proxy_protocol 1|2`` (2.1; 2.0 has no PROXY support)
and the peername it logs (``New client connected from <addr>:<port>``)."""

from __future__ import annotations

from ..._addr import format_ip
from ...errors import ConfigurationError
from ...proxy_protocol import Endpoint
from ...wire import parse_http
from ..base import Broker, HopView, Inbound, Outbound, TrustDecision
from .receive import RECEIVER

__all__ = ["peername", "step", "trust"]


def peername(src: Endpoint) -> str:
    """``addr:port`` of a Mosquitto client (addresses printed as ``inet_ntop`` does)."""
    text = src.host if isinstance(src.host, str) else format_ip(src.host)
    return f"{text}:{src.port}"


def step(node: Broker, conn: Inbound) -> Outbound:
    """One connection arriving at a Mosquitto listener (tcp or websockets)."""
    decisions: list[str] = []
    variables: dict[str, str] = {}
    data = conn.data
    kind = f"{node.kind}-{node.listener}"

    def closed(log: str) -> Outbound:
        return Outbound.refusal(node.name, kind, conn, variables, decisions, log)

    if node.access_rules:
        raise ConfigurationError(f"{node.name}: access_rules is an EMQX listener setting; "
                                 "Mosquitto has none")
    src: Endpoint = conn.peer
    if node.version.startswith("2.0") or not node.enable_proxy_protocol:
        if data[:5] == b"PROXY" or data[:2] == b"\r\n":
            decisions.append("no PROXY protocol on this listener: the header is read as "
                             "MQTT and fails")
            return closed("Client <unknown> disconnected due to malformed packet.")
    else:
        acc = RECEIVER.accepts(data, str(node.enable_proxy_protocol))
        if not acc.accepted:
            decisions.append(f"enable_proxy_protocol {node.enable_proxy_protocol}: "
                             f"{acc.reason}")
            return closed(acc.log_line or acc.reason)
        data = data[acc.consumed or 0 :]
        if acc.source is not None:
            src = acc.source
        decisions.append(f"enable_proxy_protocol {node.enable_proxy_protocol}: peer {src}")
    if node.listener == "tcp":
        if data[:1] != b"\x10":
            decisions.append(f"first bytes {data[:8]!r} are not an MQTT CONNECT")
            return closed("frame_error: malformed packet")
        name = peername(src)
        decisions.append(f"MQTT CONNECT from {conn.client_id}: peername={name}")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), peername=name))
    if parse_http(data) is None:
        decisions.append("not an HTTP upgrade request: 400")
        return closed("400 Bad Request")
    name = peername(src)
    decisions.append("Mosquitto ignores X-Forwarded-For (its websockets code has no "
                     f"trusted-proxy list): peername={name}")
    return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            peername=name))


def trust(node: Broker, sender_addr: str) -> TrustDecision:
    """Whether the listener takes the client address from what *sender_addr* sends."""
    if node.listener == "tcp":
        if node.enable_proxy_protocol:
            return TrustDecision(True, f"enable_proxy_protocol {node.enable_proxy_protocol}")
        return TrustDecision(None, "no PROXY protocol")
    return TrustDecision(None, "no proxy_address_header")
