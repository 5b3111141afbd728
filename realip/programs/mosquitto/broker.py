"""The Mosquitto broker listener: ``enable_proxy_protocol 1|2`` (2.1; 2.0 has no PROXY support)
and the peername it logs (``New client connected from <addr>:<port>``).

``Broker.version`` names the release (:func:`realip.programs.mosquitto.receive.release`):
``2.0``/``2.0.x``, ``2.1``/``2.1.0``-``2.1.2`` (modelled as 2.1.2, the default) or ``master``."""

from __future__ import annotations

from ..._addr import format_ip
from ...decisions import Acceptance
from ...errors import ConfigurationError
from ...proxy_protocol import Endpoint
from ...wire import parse_http
from ..base import Broker, HopView, Inbound, Outbound, TrustDecision
from .receive import RECEIVER, release

__all__ = ["peername", "step", "trust"]


def peername(src: Endpoint, acceptance: Acceptance | None = None) -> str:
    """``addr:port`` of a Mosquitto client: the address text its PROXY reader stored when
    *acceptance* carries one (a v1 address as written, a v2 one printed by ``inet_ntop``, a
    UNIX path with port 0), else *src* printed as ``inet_ntop`` does."""
    if acceptance is not None and acceptance.variable("address") is not None:
        return f"{acceptance.variable('address')}:{acceptance.variable('remote_port')}"
    text = src.host if isinstance(src.host, str) else format_ip(src.host)
    return f"{text}:{0 if src.port is None else src.port}"


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
    try:
        rel = release(node.version)
    except ValueError as exc:
        raise ConfigurationError(f"{node.name}: {exc}") from None
    acc: Acceptance | None = None
    if not rel.proxy or not node.enable_proxy_protocol:
        if data[:5] == b"PROXY" or data[:2] == b"\r\n":
            decisions.append("no PROXY protocol on this listener: the header is read as "
                             "MQTT and fails")
            # observed: the first byte is not a CONNECT -> MOSQ_ERR_PROTOCOL (2.0.11's words,
            # or 2.1.2's, which also logs the packet type: 'P' = 0x50, CR = 0x0D)
            if rel.name == "2.0":
                return closed("Client <unknown> disconnected due to protocol error.")
            peer = peername(conn.peer)
            return closed(f"Client {peer.rpartition(':')[0]} [{peer}] disconnected: "
                          "protocol error.")
    else:
        acc = RECEIVER.accepts(data, f"{rel.name}:{node.enable_proxy_protocol}")
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
        name = peername(src, acc)
        decisions.append(f"MQTT CONNECT from {conn.client_id}: peername={name}")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), peername=name))
    if parse_http(data) is None:
        decisions.append("not an HTTP upgrade request: 400")
        return closed("400 Bad Request")
    name = peername(src, acc)
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
