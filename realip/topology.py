"""The topology simulator: client → load balancers → broker, every byte on every link (sans-IO).

A :class:`Topology` is data — a :class:`Client`, a chain of hops configured with each real
system's own directives (:class:`NginxStream`, :class:`NginxHttp`, :class:`HAProxy`,
:class:`Relay`) and a :class:`Broker` listener.  :func:`simulate` plays one connection through it
and returns a :class:`Trace`: for each link the exact bytes the sender wrote first (the PROXY
header and MQTT CONNECT for TCP, the HTTP upgrade request for WebSocket), what each hop believes
(its variables), every decision with its reason, and the peername the broker records.  Failures
are results: a rejected header closes the connection with the receiver's own log message.

Each hop reuses the models the rest of realip is tested with: :mod:`realip.receivers` for what a
program accepts, :mod:`realip.resolve` for nginx realip and EMQX's header rules, and
:mod:`realip.proxy_protocol` for the headers senders write.

The nginx and HAProxy hops are checked byte for byte against Debian's nginx 1.22.1 and HAProxy
2.6.12 (``tests/real/test_topology_real.py`` runs every scenario and generated chains on loopback
with the configurations :mod:`realip.render` writes): what each hop writes to the next one —
header order and case, ``Connection`` handling, PROXY headers — and where and with which log
line a hop closes the connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from . import erlang
from . import nginx as ngx
from ._addr import format_ip
from .errors import ConfigurationError
from .proxy_protocol import TLV, Endpoint, TLVType, build, decode
from .receivers import Acceptance, accepts
from .resolve import (
    ProxyProtocolInfo,
    emqx_ws_peer,
    haproxy_forwardfor,
    nginx_interpolate,
    nginx_realip,
)
from .trust import Trust

__all__ = [
    "Broker",
    "Client",
    "HAProxy",
    "HopView",
    "Link",
    "NginxHttp",
    "NginxStream",
    "Relay",
    "Topology",
    "Trace",
    "mqtt_connect",
    "simulate",
    "ws_upgrade_request",
]

IP = IPv4Address | IPv6Address
Headers = list[tuple[str, str]]

#: The WebSocket key every simulated client sends (RFC 6455's sample nonce): outputs stay
#: deterministic.
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


# ==============================================================================================
# Model


@dataclass(frozen=True, kw_only=True)
class Client:
    """The MQTT client.  ``addr`` is the address the first hop sees (its public address);
    ``transport`` is ``tcp`` (MQTT over TCP) or ``ws`` (MQTT over WebSocket on ``path``).
    ``send_proxy`` is a PROXY header the client forges itself (text or bytes); ``headers`` are
    extra (possibly forged) HTTP header lines for the WebSocket upgrade request."""

    name: str = "client"
    addr: str
    port: int
    transport: Literal["tcp", "ws"] = "tcp"
    path: str = "/mqtt"
    client_id: str = "mqttx-client"
    send_proxy: str | bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class _Host:
    name: str
    #: the host's own (LAN) address: what it binds, and the source the next hop sees
    addr: str
    #: a public (WAN) address clients dial, NATed 1:1 to ``addr`` (labels only)
    public: str | None = None
    #: the port the host listens on
    port: int
    #: the source port of the connection it opens to the next hop
    source_port: int = 40000


@dataclass(frozen=True, kw_only=True)
class NginxStream(_Host):
    """nginx ``stream { server { listen … [proxy_protocol]; proxy_pass …; proxy_protocol on|v2;
    set_real_ip_from …; } }``.  Without ``listen_proxy_protocol`` and ``proxy_protocol`` it is a
    plain relay: a header from the previous hop passes through as data."""

    port: int = 1883
    listen_proxy_protocol: bool = False
    set_real_ip_from: tuple[str, ...] = ()
    proxy_protocol: Literal["off", "on", "v2"] = "off"
    version: str = "1.22.1"


@dataclass(frozen=True, kw_only=True)
class NginxHttp(_Host):
    """nginx ``http { server { listen … [proxy_protocol]; set_real_ip_from …; real_ip_header …;
    real_ip_recursive …; location … { proxy_pass …; proxy_http_version …; proxy_set_header …; }
    } }``.

    Upstream it writes the ``proxy_set_header`` lines in configuration order, then the defaults
    not overridden (``Host: $proxy_host`` — the next hop's ``addr:port`` —, ``Connection:
    close``), then the client's lines nobody set; a line whose value is empty is left out.
    Client lines with a name outside ``A-Z a-z 0-9 -`` (underscores) are ignored altogether."""

    port: int = 8083
    listen_proxy_protocol: bool = False
    set_real_ip_from: tuple[str, ...] = ()
    real_ip_header: str = "X-Real-IP"
    real_ip_recursive: bool = False
    location: str = "/mqtt"
    proxy_http_version: str = "1.0"
    proxy_set_header: tuple[tuple[str, str], ...] = ()
    version: str = "1.22.1"


@dataclass(frozen=True, kw_only=True)
class HAProxy(_Host):
    """HAProxy ``frontend``/``backend``: ``mode tcp|http``, ``bind … accept-proxy``,
    ``tcp-request connection expect-proxy layer4 if { src … }``, ``server … send-proxy |
    send-proxy-v2 proxy-v2-options …``, ``option forwardfor [except …] [if-none]``,
    ``http-request set-header|del-header``.

    In ``mode http`` (2.6, default keep-alive mode) every header name leaves in lower case; the
    ``close``/``keep-alive`` tokens of ``Connection`` are removed (an emptied line is dropped);
    an HTTP/1.0 request without an ``upgrade`` token gets ``connection: keep-alive`` last; the
    ``http-request`` rules run in order, then ``option forwardfor`` appends its line."""

    port: int = 1883
    mode: Literal["tcp", "http"] = "tcp"
    accept_proxy: bool = False
    expect_proxy_from: tuple[str, ...] = ()
    send_proxy: Literal["off", "v1", "v2"] = "off"
    proxy_v2_options: tuple[str, ...] = ()
    forwardfor: bool = False
    forwardfor_except: str | None = None
    forwardfor_if_none: bool = False
    forwardfor_header: str = "X-Forwarded-For"
    #: ``("set-header", name, value)`` / ``("del-header", name)`` in configuration order;
    #: values may use ``%[src]``, ``%[src_port]``, ``%[dst]``, ``%[dst_port]``
    http_request: tuple[tuple[str, ...], ...] = ()
    version: str = "2.6.12"


@dataclass(frozen=True, kw_only=True)
class Relay(_Host):
    """A plain TCP relay (socat, an L4 load balancer without PROXY support)."""


Hop = NginxStream | NginxHttp | HAProxy | Relay


@dataclass(frozen=True, kw_only=True)
class Broker:
    """The broker listener.  ``kind`` is ``emqx`` or ``mosquitto``; ``listener`` ``tcp`` or
    ``ws``.  EMQX: ``proxy_protocol``, ``proxy_protocol_timeout``, ``access_rules`` (checked on
    the raw TCP peer), ``proxy_address_header``/``proxy_port_header`` (ws; ``version`` "6.3"
    empties their defaults) and ``proxy_address_allow`` (6.4).  Mosquitto: ``version`` "2.1"
    with ``enable_proxy_protocol`` 1 or 2, or "2.0" (no PROXY support at all)."""

    name: str = "emqx"
    kind: Literal["emqx", "mosquitto"] = "emqx"
    addr: str
    port: int = 1883
    listener: Literal["tcp", "ws"] = "tcp"
    proxy_protocol: bool = False
    proxy_protocol_timeout: float = 3.0
    access_rules: tuple[str, ...] = ()
    proxy_address_header: str | None = None
    proxy_port_header: str | None = None
    proxy_address_allow: tuple[str, ...] | None = None
    enable_proxy_protocol: int | None = None
    version: str = "5.7.0"


@dataclass(frozen=True, kw_only=True)
class Topology:
    """A scenario: a client, the hops in order, the broker, and (optionally) the peername the
    scenario is known to produce (the article's result)."""

    name: str
    client: Client
    hops: tuple[Hop, ...]
    broker: Broker
    title: str = ""
    description: str = ""
    expect: str | None = None

    def with_client(self, **changes: Any) -> Topology:
        """A copy whose client differs (``forge_xff`` style changes for exercises)."""
        return replace(self, client=replace(self.client, **changes))

    def hop(self, name: str) -> Hop:
        """The hop called *name*."""
        for h in self.hops:
            if h.name == name:
                return h
        raise KeyError(name)

    def with_hop(self, name: str, **changes: Any) -> Topology:
        """A copy with hop *name* reconfigured."""
        hops = tuple(replace(h, **changes) if h.name == name else h for h in self.hops)
        return replace(self, hops=hops)

    def with_broker(self, **changes: Any) -> Topology:
        """A copy with the broker reconfigured."""
        return replace(self, broker=replace(self.broker, **changes))

    def labels(self) -> dict[str, str]:
        """Host label → address (the map the live lab replaces with loopback addresses)."""
        out = {self.client.name: self.client.addr}
        for h in self.hops:
            out[h.name] = h.addr
            if h.public:
                out[f"{h.name}.public"] = h.public
        out[self.broker.name] = self.broker.addr
        return out


# ==============================================================================================
# Results


@dataclass(frozen=True)
class Link:
    """One TCP connection: who opened it (``src``, as the receiver sees it), where it arrived
    (``dst``, the receiver's local address), and the bytes the sender wrote first, split into
    ``parts`` (``("proxy", …)``, ``("mqtt", …)``, ``("http", …)``)."""

    index: int
    sender: str
    receiver: str
    src: Endpoint
    dst: Endpoint
    parts: tuple[tuple[str, bytes], ...]
    dialed: str = ""

    @property
    def data(self) -> bytes:
        """Everything the sender wrote first, concatenated."""
        return b"".join(p for _, p in self.parts)

    def part(self, kind: str) -> bytes | None:
        """The bytes of the first part of *kind* (``proxy``, ``mqtt``, ``http``), or None."""
        return next((p for k, p in self.parts if k == kind), None)

    @property
    def proxy_header(self) -> bytes | None:
        """The PROXY header at the start of the link, if any."""
        return self.part("proxy")

    def http_headers(self) -> Headers:
        """The header lines of the HTTP request on this link (empty for TCP links)."""
        raw = self.part("http")
        parsed = None if raw is None else _parse_http(raw)
        return [] if parsed is None else parsed[1]


@dataclass(frozen=True)
class HopView:
    """What one hop (or the broker) saw and decided: ``variables`` (``$remote_addr``,
    ``$realip_remote_addr``, ``$proxy_protocol_addr``, ``src`` …), ``decisions`` in order, and
    for a closed connection ``accepted`` False with the program's ``log`` line."""

    name: str
    kind: str
    peer: Endpoint
    local: Endpoint
    variables: Mapping[str, str]
    decisions: tuple[str, ...]
    accepted: bool = True
    log: str | None = None


@dataclass(frozen=True)
class Trace:
    """The outcome of :func:`simulate`."""

    topology: Topology
    links: tuple[Link, ...]
    views: tuple[HopView, ...]
    peername: str | None
    connected: bool
    failure: str | None = None

    @property
    def client_addr(self) -> str | None:
        """The address part of the peername."""
        if self.peername is None:
            return None
        return self.peername.rsplit(":", 1)[0]

    def view(self, name: str) -> HopView:
        """The view of hop (or broker) *name*."""
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``python -m realip simulate --json`` prints)."""
        return {
            "scenario": self.topology.name,
            "peername": self.peername,
            "connected": self.connected,
            "failure": self.failure,
            "expected": self.topology.expect,
            "links": [
                {
                    "from": link.sender, "to": link.receiver, "src": str(link.src),
                    "dst": str(link.dst),
                    "parts": [{"kind": k, "text": _printable(p), "hex": p.hex()}
                              for k, p in link.parts],
                }
                for link in self.links
            ],
            "hops": [
                {"name": v.name, "kind": v.kind, "peer": str(v.peer), "local": str(v.local),
                 "accepted": v.accepted, "log": v.log, "variables": dict(v.variables),
                 "decisions": list(v.decisions)}
                for v in self.views
            ],
        }

    def table(self) -> str:
        """A per-hop text table: link by link what was sent, then the broker's peername."""
        lines = [f"scenario {self.topology.name}"]
        for link, view in zip(self.links, self.views, strict=False):
            lines.append(f"  {link.sender} {link.src} -> {link.receiver} {link.dst}")
            for kind, raw in link.parts:
                lines.append(f"      [{kind}] {_summary(kind, raw)}")
            for d in view.decisions:
                lines.append(f"    {view.name}: {d}")
            if not view.accepted:
                lines.append(f"    {view.name} CLOSES the connection: {view.log}")
        if self.connected:
            lines.append(f"peername={self.peername}")
        else:
            lines.append(f"not connected: {self.failure}")
        return "\n".join(lines)

    def to_pcap(self, path: str) -> None:
        """Write every link as a TCP conversation to a pcap file (see :mod:`realip.pcap`)."""
        from .pcap import write_trace

        write_trace(self, path)


def _printable(raw: bytes) -> str:
    return raw.decode("latin-1").encode("unicode_escape").decode("ascii")


def _summary(kind: str, raw: bytes) -> str:
    if kind == "proxy":
        if raw.startswith(b"PROXY"):
            return _printable(raw)
        return f"PROXY v2, {len(raw)} bytes: {raw.hex()}"
    if kind == "http":
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return " | ".join(head.split("\r\n"))
    if kind == "mqtt":
        return f"MQTT CONNECT, {len(raw)} bytes"
    return f"{len(raw)} bytes"


# ==============================================================================================
# What clients write


def mqtt_connect(client_id: str, keepalive: int = 60) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a clean session (what a client sends first)."""
    cid = client_id.encode("utf-8")
    body = (b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
            + len(cid).to_bytes(2, "big") + cid)
    return bytes([0x10]) + _remaining_length(len(body)) + body


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ws_upgrade_request(host: str, path: str = "/mqtt",
                       extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """The HTTP/1.1 upgrade request an MQTT-over-WebSocket client sends (subprotocol ``mqtt``)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {WS_KEY}",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: mqtt"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_http(raw: bytes) -> tuple[str, Headers, bytes] | None:
    """Request line, header lines (order kept, surrounding spaces removed), body; None if the
    bytes are not a complete HTTP/1 request head."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    request = lines[0]
    parts = request.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: Headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers.append((name, value.strip(" ")))
    return request, headers, body


# ==============================================================================================
# The simulation


@dataclass
class _Conn:
    """A connection arriving at a hop."""

    peer: Endpoint
    local: Endpoint
    data: bytes
    sender: str
    #: the next hop's (or the broker's) address and port, as the hop's configuration names it
    upstream: Endpoint | None = None


@dataclass
class _Out:
    view: HopView
    parts: tuple[tuple[str, bytes], ...] = ()
    ok: bool = True


def _ep(addr: str, port: int | None) -> Endpoint:
    return Endpoint(ip_address(addr), port)


def _split_parts(data: bytes, app_kind: str) -> tuple[tuple[str, bytes], ...]:
    """Label the bytes a hop relays: one or more PROXY headers, then the application data."""
    parts: list[tuple[str, bytes]] = []
    rest = data
    while rest[:5] == b"PROXY" or rest[:12] == b"\r\n\r\n\x00\r\nQUIT\n":
        try:
            h = decode(rest, verify_crc32c=False)
        except Exception:
            h = None
        if h is None:
            if rest[:5] == b"PROXY" and b"\r\n" in rest[:108]:
                end = rest.index(b"\r\n") + 2
                parts.append(("proxy", rest[:end]))
                rest = rest[end:]
                continue
            break
        parts.append(("proxy", rest[: h.size]))
        rest = rest[h.size :]
    if rest:
        parts.append((app_kind, rest))
    return tuple(parts)


def simulate(topology: Topology, *, forge_xff: str | None = None,
             forge_proxy: str | bytes | None = None) -> Trace:
    """Play one connection of *topology* through every hop and return the :class:`Trace`.

    *forge_xff* replaces the client's ``X-Forwarded-For`` line(s) with one forged line;
    *forge_proxy* makes the client send that PROXY header itself.
    """
    client = topology.client
    if forge_xff is not None:
        kept = tuple(h for h in client.headers if h[0].lower() != "x-forwarded-for")
        client = replace(client, headers=(*kept, ("X-Forwarded-For", forge_xff)))
    if forge_proxy is not None:
        client = replace(client, send_proxy=forge_proxy)
    first = topology.hops[0] if topology.hops else topology.broker
    dial_host = getattr(first, "public", None) or first.addr
    if client.transport == "ws":
        app = ws_upgrade_request(f"{dial_host}:{first.port}", client.path, client.headers)
        app_kind = "http"
    else:
        app = mqtt_connect(client.client_id)
        app_kind = "mqtt"
    forged = b""
    if client.send_proxy is not None:
        forged = (client.send_proxy.encode("latin-1") if isinstance(client.send_proxy, str)
                  else client.send_proxy)
    data = forged + app
    peer = _ep(client.addr, client.port)
    sender = client.name
    links: list[Link] = []
    views: list[HopView] = []
    nodes: list[Hop | Broker] = [*topology.hops, topology.broker]
    for i, node in enumerate(nodes):
        local = _ep(node.addr, node.port)
        parts = _split_parts(data, app_kind)
        links.append(Link(i, sender, node.name, peer, local, parts,
                          dialed=f"{getattr(node, 'public', None) or node.addr}:{node.port}"))
        upstream = _ep(nodes[i + 1].addr, nodes[i + 1].port) if i + 1 < len(nodes) else None
        conn = _Conn(peer, local, data, sender, upstream)
        if isinstance(node, Broker):
            view, peername = _broker(node, conn, client)
            views.append(view)
            if not view.accepted:
                return Trace(topology, tuple(links), tuple(views), None, False,
                             f"{node.name}: {view.log}")
            return Trace(topology, tuple(links), tuple(views), peername, True)
        out = _HOPS[type(node)](node, conn)
        views.append(out.view)
        if not out.ok:
            return Trace(topology, tuple(links), tuple(views), None, False,
                         f"{node.name}: {out.view.log}")
        data = b"".join(p for _, p in out.parts)
        peer = _ep(node.addr, node.source_port)
        sender = node.name
    raise ConfigurationError("a topology needs a broker")  # pragma: no cover


# -- nginx --------------------------------------------------------------------------------------


def _ngx_pp(node: NginxStream | NginxHttp, conn: _Conn, decisions: list[str],
            variables: dict[str, str]) -> tuple[bool, str | None, int, ProxyProtocolInfo | None]:
    """``listen … proxy_protocol``: read the header like nginx; returns (ok, log, consumed,
    info)."""
    if not node.listen_proxy_protocol:
        return True, None, 0, None
    if isinstance(node, NginxHttp):
        acc = _ngx_http_pp(conn.data, node.version)
    else:
        acc = accepts("nginx", conn.data, version=node.version)
    if not acc.accepted:
        decisions.append(f"listen … proxy_protocol: rejected — {acc.reason}")
        return False, acc.log_line or acc.reason, 0, None
    consumed = acc.consumed or 0
    vars_ = dict(acc.variables) if acc.variables else {}
    addr = vars_.get("proxy_protocol_addr", "")
    if addr:
        info = ProxyProtocolInfo(addr, int(vars_.get("proxy_protocol_port") or 0),
                                 vars_.get("proxy_protocol_server_addr", ""),
                                 int(vars_.get("proxy_protocol_server_port") or 0))
        variables.update({k: v for k, v in vars_.items() if k.startswith("proxy_protocol")})
        decisions.append(f"listen … proxy_protocol: header read ({consumed} bytes), "
                         f"$proxy_protocol_addr = {addr}")
        return True, None, consumed, info
    decisions.append(f"listen … proxy_protocol: header read ({consumed} bytes) without an "
                     "address (LOCAL/UNKNOWN): the real peer stays")
    return True, None, consumed, None


def _ngx_http_pp(data: bytes, version: str) -> Acceptance:
    from .programs.nginx.receive import read_http_listener

    return read_http_listener(data, version)


def _ngx_bad_request(data: bytes) -> str:
    """The info-level message ``ngx_http_parse_request_line`` leads to for a request line that
    is not HTTP: leading CR/LF are skipped; a first byte that cannot start a method (``A-Z``,
    ``_``, ``-``; a v2 PROXY header's ``\\0``, an MQTT packet) is an invalid method; a method
    followed by something other than a URI (``PROXY TCP4 …``) an invalid request."""
    rest = data.lstrip(b"\r\n")
    if not rest or not (65 <= rest[0] <= 90 or rest[0] in b"_-"):
        return "client sent invalid method"
    return "client sent invalid request"


def _ngx_stream(node: NginxStream, conn: _Conn) -> _Out:
    if node.proxy_protocol == "v2" and ngx.parse_version(node.version) < (1, 31, 4):
        raise ConfigurationError(f"{node.name}: nginx {node.version} refuses "
                                 "'proxy_protocol v2' (it must be on or off; v2 came in 1.31.4)")
    decisions: list[str] = []
    variables: dict[str, str] = {}
    ok, log, consumed, info = _ngx_pp(node, conn, decisions, variables)
    if not ok:
        return _Out(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                            tuple(decisions), False, log), ok=False)
    remote: IP = conn.peer.host  # type: ignore[assignment]
    remote_port = conn.peer.port or 0
    if info is not None and node.set_real_ip_from:
        rule = _ngx_rule(node.set_real_ip_from, remote)
        parsed = ngx.parse_addr(info.addr.encode("latin-1"))
        if rule is None:
            decisions.append(f"stream realip: the peer {format_ip(remote)} is not in "
                             "set_real_ip_from: $remote_addr stays the peer")
        elif parsed is None:
            decisions.append(f"stream realip: {info.addr!r} is not an address nginx can parse: "
                             "$remote_addr stays the peer")
        else:
            remote, remote_port = parsed, info.port
            decisions.append(f"stream realip: the peer is trusted ({rule}): $remote_addr = "
                             f"{ngx.format_addr(parsed)}")
    elif info is not None:
        decisions.append("no set_real_ip_from: the header is read but $remote_addr stays the "
                         "peer")
    variables.update(remote_addr=ngx.format_addr(remote), remote_port=_port_text(remote_port),
                     realip_remote_addr=ngx.format_addr(conn.peer.host),  # type: ignore[arg-type]
                     realip_remote_port=_port_text(conn.peer.port or 0),
                     server_addr=ngx.format_addr(conn.local.host),  # type: ignore[arg-type]
                     server_port=str(conn.local.port))
    payload = conn.data[consumed:]
    parts: list[tuple[str, bytes]] = []
    if node.proxy_protocol != "off":
        header = _ngx_send(node, remote, remote_port, conn.local)
        parts.append(("proxy", header))
        decisions.append(f"proxy_protocol {node.proxy_protocol}: sends a header with source "
                         f"{ngx.format_addr(remote)}:{remote_port} and its own address "
                         f"{ngx.format_addr(conn.local.host)}:{conn.local.port}")  # type: ignore
    elif not node.listen_proxy_protocol and payload[:5] == b"PROXY":
        decisions.append("plain relay: the incoming PROXY header is passed through as data")
    else:
        decisions.append("plain relay: bytes are passed through unchanged")
    app_kind = "http" if payload[:4] == b"GET " else "mqtt"
    parts += _split_parts(payload, app_kind)
    return _Out(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                        tuple(decisions)), tuple(parts))


def _ngx_send(node: NginxStream, src: IP, sport: int, local: Endpoint) -> bytes:
    """What ``ngx_proxy_protocol_write`` writes: family from the source alone (v1), the local
    address as destination; v2 (1.31.4+) promotes to INET6 and appends a CRC32C."""
    dst: IP = local.host  # type: ignore[assignment]
    if node.proxy_protocol == "v2":
        return build((src, sport), (dst, local.port), version=2, style="nginx", crc32c="last")
    proto = "TCP4" if isinstance(src, IPv4Address) else "TCP6"
    return (f"PROXY {proto} {ngx.format_addr(src)} {ngx.format_addr(dst)} {sport} "
            f"{local.port}\r\n").encode("ascii")


def _ngx_rule(entries: Sequence[str], ip: IP) -> str | None:
    from .resolve import _nginx_match, _nginx_trust

    cidrs, _ = _nginx_trust(tuple(entries))
    return _nginx_match(cidrs, ip)


def _port_text(port: int) -> str:
    return str(port) if 0 < port < 65536 else ""


class _Chain(Mapping[str, str]):
    """Variables from *first*, else from *second* (nginx's own mapping with ``$http_*``)."""

    def __init__(self, first: Mapping[str, str], second: Mapping[str, str]) -> None:
        self._first = first
        self._second = second

    def __getitem__(self, key: str) -> str:
        if key in self._first:
            return self._first[key]
        return self._second[key]

    def __iter__(self) -> Any:
        return iter({*self._first, *self._second})

    def __len__(self) -> int:
        return len({*self._first, *self._second})


_NGX_NAME = re.compile(r"[A-Za-z0-9-]+")


def _ngx_proxy_host(upstream: Endpoint | None) -> str:
    """``$proxy_host``: the host and port of ``proxy_pass http://…`` (the port only when it is
    not 80)."""
    if upstream is None:
        return "upstream"
    host = ngx.format_addr(upstream.host)  # type: ignore[arg-type]
    if isinstance(upstream.host, IPv6Address):
        host = f"[{host}]"
    return host if upstream.port == 80 else f"{host}:{upstream.port}"


# Headers nginx's proxy module sets by default (ngx_http_proxy_headers): an empty value means the
# client's header is not passed on.
_NGX_DEFAULT_HEADERS = (("Host", "$proxy_host"), ("Connection", "close"),
                        ("Content-Length", "$proxy_internal_body_length"),
                        ("Transfer-Encoding", "$proxy_internal_chunked"), ("TE", ""),
                        ("Keep-Alive", ""), ("Expect", ""), ("Upgrade", ""))


def _ngx_http(node: NginxHttp, conn: _Conn) -> _Out:
    decisions: list[str] = []
    variables: dict[str, str] = {}
    ok, log, consumed, info = _ngx_pp(node, conn, decisions, variables)
    kind = "nginx-http"
    if not ok:
        return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, log), ok=False)
    parsed = _parse_http(conn.data[consumed:])
    if parsed is None or not parsed[0].startswith("GET "):
        text = conn.data[consumed:][:40]
        what = _ngx_bad_request(conn.data[consumed:])
        decisions.append(f"the request is not HTTP ({text!r}…): {what}; answers 400 Bad "
                         "Request and closes")
        return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, f"{what} while reading client request line"), ok=False)
    request, headers, _ = parsed
    # ignore_invalid_headers on, underscores_in_headers off (the defaults): a name with any
    # byte other than A-Z a-z 0-9 "-" is skipped ("client sent invalid header line", info) —
    # invisible to realip and $http_*, and not passed on
    dropped = [k for k, _ in headers if not _NGX_NAME.fullmatch(k)]
    if dropped:
        headers = [(k, v) for k, v in headers if _NGX_NAME.fullmatch(k)]
        decisions.append(f"ignores the header line(s) {', '.join(dropped)} (invalid name: "
                         "underscores_in_headers off)")
    peer_ip: IP = conn.peer.host  # type: ignore[assignment]
    r = nginx_realip(format_ip(peer_ip), headers, set_real_ip_from=node.set_real_ip_from,
                     real_ip_header=node.real_ip_header, recursive=node.real_ip_recursive,
                     peer_port=conn.peer.port, proxy_protocol=info, version=node.version)
    if node.set_real_ip_from:
        decisions.append(f"realip ({node.real_ip_header}, recursive "
                         f"{'on' if node.real_ip_recursive else 'off'}): {r.reason}")
    variables.update(dict(r.variables))
    host_header = next((v for k, v in headers if k.lower() == "host"), "")
    local_ip: IP = conn.local.host  # type: ignore[assignment]
    extra = {
        "host": host_header.split(":")[0].lower() if host_header else ngx.format_addr(local_ip),
        "server_addr": ngx.format_addr(local_ip), "server_port": str(conn.local.port),
        "request_uri": request.split(" ")[1], "proxy_host": _ngx_proxy_host(conn.upstream),
    }

    allvars = _Chain(extra, r.variables)
    variables.update(extra)
    # proxy_set_header entries first (configuration order), then nginx's defaults that were
    # not overridden, then the client's headers nobody set.
    configured = [(k, v) for k, v in node.proxy_set_header]
    names = {k.lower() for k, _ in configured}
    for k, v in _NGX_DEFAULT_HEADERS:
        if k.lower() not in names:
            configured.append((k, v))
            names.add(k.lower())
    out_lines = []
    for k, template in configured:
        value = nginx_interpolate(template, allvars)
        if value:
            out_lines.append(f"{k}: {value}")
            if template != value:
                decisions.append(f"proxy_set_header {k} {template!r} → {value!r}")
    for k, v in headers:
        if k.lower() not in names:
            out_lines.append(f"{k}: {v}")
    path = request.split(" ")[1]
    head = f"GET {path} HTTP/{node.proxy_http_version}\r\n" + "".join(
        line + "\r\n" for line in out_lines) + "\r\n"
    return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions)),
                (("http", head.encode("latin-1")),))


# -- HAProxy ------------------------------------------------------------------------------------


def _hap(node: HAProxy, conn: _Conn) -> _Out:
    decisions: list[str] = []
    variables: dict[str, str] = {}
    src: Endpoint = conn.peer
    dst: Endpoint = conn.local
    data = conn.data
    expect = node.accept_proxy
    if node.expect_proxy_from:
        matched = Trust(node.expect_proxy_from)(conn.peer.host)
        expect = expect or matched
        decisions.append(f"tcp-request connection expect-proxy layer4 if {{ src "
                         f"{' '.join(node.expect_proxy_from)} }}: "
                         f"{'expects' if matched else 'does not expect'} a header from "
                         f"{format_ip(conn.peer.host)}")  # type: ignore[arg-type]
    kind = f"haproxy-{node.mode}"
    if expect:
        acc = accepts("haproxy", data, version=node.version)
        if not acc.accepted:
            decisions.append(f"accept-proxy: rejected — {acc.reason}")
            return _Out(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), False, acc.log_line or acc.reason), ok=False)
        data = data[acc.consumed or 0 :]
        if acc.source is not None and acc.destination is not None:
            src, dst = acc.source, acc.destination
            decisions.append(f"accept-proxy: src/dst become {src} → {dst}")
        else:
            decisions.append("accept-proxy: header without addresses (LOCAL/UNKNOWN): real "
                             "addresses stay")
    variables.update(src=_hap_addr(src), src_port=str(src.port), dst=_hap_addr(dst),
                     dst_port=str(dst.port))
    parts: list[tuple[str, bytes]] = []
    if node.send_proxy != "off":
        header = _hap_send(node, src, dst)
        parts.append(("proxy", header))
        decisions.append(f"server … send-proxy{'-v2' if node.send_proxy == 'v2' else ''}: "
                         f"relays {src} → {dst}")
    if node.mode == "tcp":
        if data[:5] == b"PROXY" and not expect:
            decisions.append("mode tcp: the incoming PROXY header is relayed as data")
        parts += _split_parts(data, "http" if data[:4] == b"GET " else "mqtt")
        return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions)),
                    tuple(parts))
    parsed = _parse_http(data)
    if parsed is None:
        decisions.append("mode http: not an HTTP request: answers 400 Bad request and closes")
        # option httplog's line for it (" … " stands for timers and counters)
        return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, '<NOSRV> … 400 … PR-- … "<BADREQ>"'), ok=False)
    request, headers, _ = parsed
    headers, upgrade = _hap_clean_connection(headers, decisions)
    for rule in node.http_request:
        if rule[0] == "set-header":
            value = _hap_fmt(rule[2], src, dst)
            key = rule[1].lower()
            headers = [(k, v) for k, v in headers if k.lower() != key] + [(rule[1], value)]
            decisions.append(f"http-request set-header {rule[1]} {rule[2]} → {value!r}")
        elif rule[0] == "del-header":
            key = rule[1].lower()
            headers = [(k, v) for k, v in headers if k.lower() != key]
            decisions.append(f"http-request del-header {rule[1]}")
        else:
            raise ConfigurationError(f"unsupported http-request rule {rule!r}")
    if node.forwardfor:
        before = len(headers)
        headers = haproxy_forwardfor(headers, format_ip(src.host),  # type: ignore[arg-type]
                                     except_=node.forwardfor_except,
                                     if_none=node.forwardfor_if_none,
                                     header=node.forwardfor_header)
        if len(headers) > before:
            decisions.append(f"option forwardfor: adds a new line {node.forwardfor_header}: "
                             f"{headers[-1][1]} (client lines are kept)")
        else:
            decisions.append("option forwardfor: nothing added (except/if-none)")
    if request.endswith(" HTTP/1.0") and not upgrade:
        headers.append(("connection", "keep-alive"))
        decisions.append("HTTP/1.0 request, server side kept alive: adds connection: keep-alive "
                         "last")
    # HTX stores header names in lower case and the HTTP/1 mux writes them so (2.x without
    # h1-case-adjust): every name leaves in lower case, values as they are.
    head = request + "\r\n" + "".join(f"{k.lower()}: {v}\r\n" for k, v in headers) + "\r\n"
    parts.append(("http", head.encode("latin-1")))
    return _Out(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions)),
                tuple(parts))


def _hap_connection_pass(value: str) -> tuple[str, bool]:
    """One pass of ``h1_parse_connection_header`` with ``H1_MF_CLEAN_CONN_HDR``: words between
    commas (blanks trimmed) equal to ``close`` or ``keep-alive`` are removed; the value is copied
    verbatim up to the last word kept before the first removal, later words are appended trimmed
    after a bare comma; a comma in last position never starts a word.  Returns the new value
    and whether a word was ``upgrade``."""
    out = ""
    contiguous = True  # nothing removed yet: out is the input's prefix
    upgrade = False
    ptr = -1
    while True:
        ptr += 1  # steps over the comma that ended the previous word
        if ptr >= len(value):
            return out, upgrade
        if value[ptr] in " \t":
            continue
        end = value.find(",", ptr)
        end = len(value) if end < 0 else end
        word = value[ptr:end].rstrip(" \t")
        low = word.lower()
        if low in ("close", "keep-alive"):
            contiguous = False
        else:
            upgrade = upgrade or low == "upgrade"
            out = value[:end] if contiguous else out + ("," if out else "") + word
        ptr = end


def _hap_clean_connection(headers: Headers, decisions: list[str]) -> tuple[Headers, bool]:
    """What HAProxy 2.6 does to ``Connection`` lines on the way through: the request parser and
    the server-side HTTP/1 output each make one :func:`_hap_connection_pass` (the second one
    drops what the first left at the end: ``a,,`` → ``a,`` → ``a``), and a line left empty is
    dropped.  Returns the headers and whether a token was ``upgrade``."""
    out: Headers = []
    upgrade = False
    for name, value in headers:
        if name.lower() != "connection":
            out.append((name, value))
            continue
        kept, upg = _hap_connection_pass(value)
        kept, _ = _hap_connection_pass(kept)
        upgrade = upgrade or upg
        if kept != value:
            decisions.append(f"Connection: {value!r} is cleaned to "
                             f"{kept!r}{' (line dropped)' if not kept else ''}")
        if kept:
            out.append((name, kept))
    return out, upgrade


def _hap_addr(ep: Endpoint) -> str:
    return ep.host if isinstance(ep.host, str) else format_ip(ep.host)


def _hap_fmt(template: str, src: Endpoint, dst: Endpoint) -> str:
    values = {"src": _hap_addr(src), "src_port": str(src.port), "dst": _hap_addr(dst),
              "dst_port": str(dst.port)}
    out = template
    for key, value in values.items():
        out = out.replace(f"%[{key}]", value)
    return out


def _hap_send(node: HAProxy, src: Endpoint, dst: Endpoint) -> bytes:
    """``make_proxy_line_v1/v2``: the frontend's src and dst; mixed families become v4-mapped;
    v2 TLVs in HAProxy's order (CRC32C, AUTHORITY, UNIQUE_ID, SSL) when asked for."""
    if node.send_proxy == "v1":
        return build(src, dst, version=1, style="haproxy")
    opts = set(node.proxy_v2_options)
    tlvs: list[TLV] = []
    if "unique-id" in opts:
        tlvs.append(TLV(TLVType.UNIQUE_ID, b""))
    if "ssl" in opts:
        tlvs.append(TLV(TLVType.SSL, b"\x00\x00\x00\x00\x00"))
    return build(src, dst, version=2, style="haproxy", tlvs=tlvs,
                 crc32c="first" if "crc32c" in opts else False)


# -- plain relay --------------------------------------------------------------------------------


def _relay(node: Relay, conn: _Conn) -> _Out:
    app_kind = "http" if b"GET " in conn.data[:256] else "mqtt"
    return _Out(HopView(node.name, "relay", conn.peer, conn.local, {},
                        ("plain relay: bytes are passed through unchanged",)),
                _split_parts(conn.data, app_kind))


_HOPS: dict[type, Any] = {NginxStream: _ngx_stream, NginxHttp: _ngx_http, HAProxy: _hap,
                          Relay: _relay}


# -- brokers ------------------------------------------------------------------------------------


def _emqx_peername(ip: IP | str, port: int | None) -> str:
    text = ip if isinstance(ip, str) else erlang.ntoa(ip)
    return f"{text}:{port}"


def _broker(node: Broker, conn: _Conn, client: Client) -> tuple[HopView, str | None]:
    decisions: list[str] = []
    variables: dict[str, str] = {}
    data = conn.data
    kind = f"{node.kind}-{node.listener}"

    def closed(log: str) -> tuple[HopView, None]:
        return HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                       False, log), None

    if node.access_rules:
        allowed = _access(node.access_rules, conn.peer.host)  # type: ignore[arg-type]
        decisions.append(f"access_rules on the raw TCP peer {format_ip(conn.peer.host)}: "  # type: ignore[arg-type]
                         f"{'allow' if allowed else 'deny'}")
        if not allowed:
            return closed("connection refused by access_rules")
    src: Endpoint = conn.peer
    pp_source: Endpoint | None = None
    pp_header = None
    if node.kind == "mosquitto":
        if node.version.startswith("2.0") or not node.enable_proxy_protocol:
            if data[:5] == b"PROXY" or data[:2] == b"\r\n":
                decisions.append("no PROXY protocol on this listener: the header is read as "
                                 "MQTT and fails")
                return closed("Client <unknown> disconnected due to malformed packet.")
        else:
            acc = accepts("mosquitto", data, version=str(node.enable_proxy_protocol))
            if not acc.accepted:
                decisions.append(f"enable_proxy_protocol {node.enable_proxy_protocol}: "
                                 f"{acc.reason}")
                return closed(acc.log_line or acc.reason)
            data = data[acc.consumed or 0 :]
            if acc.source is not None:
                pp_source = src = acc.source
            decisions.append(f"enable_proxy_protocol {node.enable_proxy_protocol}: peer {src}")
    elif node.proxy_protocol:
        receiver = "emqx-ws" if node.listener == "ws" else "emqx-tcp"
        acc = accepts(receiver, data)
        if not acc.accepted:
            decisions.append(f"proxy_protocol = true: {acc.reason}")
            if acc.waiting:
                return closed(f"proxy_proto_timeout after {node.proxy_protocol_timeout:g}s "
                              "(no complete header)")
            return closed(acc.log_line or acc.reason)
        pp_header = data[: acc.consumed or 0]
        data = data[acc.consumed or 0 :]
        if acc.source is not None:
            pp_source = src = acc.source
            decisions.append(f"proxy_protocol = true: peername from the PROXY header: {src}")
        else:
            decisions.append("proxy_protocol = true: header without addresses: the TCP peer")
    elif data[:5] == b"PROXY" or data[:12] == b"\r\n\r\n\x00\r\nQUIT\n":
        guess = "proxy_protocol_v1" if data[:5] == b"PROXY" else "proxy_protocol_v2"
        decisions.append("proxy_protocol = false: the PROXY header is parsed as MQTT/HTTP and "
                         f"fails (resemble_protocol => {guess})")
        return closed(f"frame_error: malformed packet, resemble_protocol => {guess}")
    if node.listener == "tcp":
        if data[:1] != b"\x10":
            decisions.append(f"first bytes {data[:8]!r} are not an MQTT CONNECT")
            return closed("frame_error: malformed packet")
        peername = _emqx_peername(src.host, src.port)
        decisions.append(f"MQTT CONNECT from {client.client_id}: peername={peername}")
        return HopView(node.name, kind, conn.peer, conn.local, variables,
                       tuple(decisions)), peername
    parsed = _parse_http(data)
    if parsed is None:
        decisions.append("not an HTTP upgrade request: 400")
        return closed("400 Bad Request")
    _, headers, _ = parsed
    if node.kind == "mosquitto":
        peername = _emqx_peername(src.host, src.port)
        decisions.append("Mosquitto ignores X-Forwarded-For (its websockets code has no "
                         f"trusted-proxy list): peername={peername}")
        return HopView(node.name, kind, conn.peer, conn.local, variables,
                       tuple(decisions)), peername
    defaults = ("", "") if node.version.startswith("6.3") else ("x-forwarded-for",
                                                                 "x-forwarded-port")
    addr_header = node.proxy_address_header if node.proxy_address_header is not None \
        else defaults[0]
    port_header = node.proxy_port_header if node.proxy_port_header is not None else defaults[1]
    pp_obj = decode(pp_header, verify_crc32c=False) if pp_header and pp_source else None
    peer_ip = conn.peer.host
    res = emqx_ws_peer(format_ip(peer_ip), conn.peer.port or 0,  # type: ignore[arg-type]
                       headers, proxy_address_header=addr_header.lower(),
                       proxy_port_header=port_header.lower(),
                       proxy_address_allow=node.proxy_address_allow, proxy_protocol=pp_obj)
    shown = addr_header or '""'
    decisions.append(f"websocket.proxy_address_header={shown}: {res.reason}")
    peername = f"{res.addr}:{res.port}"
    decisions.append(f"WebSocket CONNECT from {client.client_id}: peername={peername}")
    variables.update(proxy_address_header=addr_header, proxy_port_header=port_header)
    return HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions)), peername


def _access(rules: Sequence[str], ip: IP) -> bool:
    """EMQX ``access_rules``: ``"allow CIDR"`` / ``"deny CIDR"`` / ``"allow all"``, first match
    wins; no match allows."""
    for rule in rules:
        verb, _, target = rule.strip().partition(" ")
        if target == "all" or Trust([target.strip()])(ip):
            return verb == "allow"
    return True


# ==============================================================================================
# Loading scenarios


def from_dict(doc: Mapping[str, Any], name: str = "") -> Topology:
    """Build a :class:`Topology` from the structure of ``data/topologies/*.yaml``; unknown keys
    raise :class:`~realip.ConfigurationError` naming them (never a silent wrong answer)."""
    kinds: dict[str, type] = {"nginx-stream": NginxStream, "nginx-http": NginxHttp,
                              "haproxy": HAProxy, "relay": Relay}
    try:
        client = _make(Client, doc["client"], "client")
        hops = []
        for i, h in enumerate(doc.get("hops", [])):
            h = dict(h)
            kind = h.pop("kind", None)
            if kind not in kinds:
                raise ConfigurationError(f"hop {i}: kind must be one of {sorted(kinds)}, not "
                                         f"{kind!r}")
            hops.append(_make(kinds[kind], h, f"hop {h.get('name', i)}"))
        broker = _make(Broker, doc["broker"], "broker")
    except KeyError as exc:
        raise ConfigurationError(f"topology {name or doc.get('name')}: missing {exc}") from None
    return Topology(name=str(doc.get("name", name)), client=client, hops=tuple(hops),
                    broker=broker, title=str(doc.get("title", "")),
                    description=str(doc.get("description", "")), expect=doc.get("expect"))


def _make(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(f"{where}: unsupported setting(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else
                          (next(iter(v.items())) if isinstance(v, dict) and len(v) == 1 and
                           key in ("headers", "proxy_set_header") else v) for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def load(path: str) -> Topology:
    """Load a topology from a YAML file."""
    import os

    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return from_dict(doc, os.path.splitext(os.path.basename(path))[0])
