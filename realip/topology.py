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

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .errors import ConfigurationError
from .programs import (
    HOP_KINDS,
    Broker,
    HAProxy,
    Hop,
    HopView,
    Inbound,
    NginxHttp,
    NginxStream,
    Relay,
    step,
)
from .proxy_protocol import Endpoint
from .wire import (
    WS_KEY,
    Headers,
    Link,
    endpoint,
    host_header,
    mqtt_connect,
    printable,
    split_parts,
    summary,
    ws_upgrade_request,
)

__all__ = [
    "Broker",
    "Client",
    "HAProxy",
    "Hop",
    "HopView",
    "Inbound",
    "Link",
    "NginxHttp",
    "NginxStream",
    "Relay",
    "Topology",
    "Trace",
    "from_dict",
    "load",
    "mqtt_connect",
    "simulate",
    "ws_upgrade_request",
]

#: Re-exported for code written against earlier releases (the names live in their rooms and
#: in realip.wire now).
_COMPAT = (WS_KEY, Headers, Endpoint, NginxHttp, NginxStream, HAProxy, Relay)


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
                    "parts": [{"kind": k, "text": printable(p), "hex": p.hex()}
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
                lines.append(f"      [{kind}] {summary(kind, raw)}")
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


# ==============================================================================================
# The simulation


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
        app = ws_upgrade_request(host_header(dial_host, first.port), client.path,
                                 client.headers)
        app_kind = "http"
    else:
        app = mqtt_connect(client.client_id)
        app_kind = "mqtt"
    forged = b""
    if client.send_proxy is not None:
        forged = (client.send_proxy.encode("latin-1") if isinstance(client.send_proxy, str)
                  else client.send_proxy)
    data = forged + app
    peer = endpoint(client.addr, client.port)
    sender = client.name
    links: list[Link] = []
    views: list[HopView] = []
    nodes: list[Hop | Broker] = [*topology.hops, topology.broker]
    for i, node in enumerate(nodes):
        local = endpoint(node.addr, node.port)
        parts = split_parts(data, app_kind)
        links.append(Link(i, sender, node.name, peer, local, parts,
                          dialed=f"{getattr(node, 'public', None) or node.addr}:{node.port}"))
        upstream = (endpoint(nodes[i + 1].addr, nodes[i + 1].port) if i + 1 < len(nodes)
                    else None)
        out = step(node, Inbound(data, peer, local, sender, upstream, client.client_id))
        if isinstance(node, Broker):
            views.append(out.view)
            if not out.view.accepted:
                return Trace(topology, tuple(links), tuple(views), None, False,
                             f"{node.name}: {out.view.log}")
            return Trace(topology, tuple(links), tuple(views), out.view.peername, True)
        views.append(out.view)
        if not out.ok:
            return Trace(topology, tuple(links), tuple(views), None, False,
                         f"{node.name}: {out.view.log}")
        data = b"".join(p for _, p in out.parts)
        peer = endpoint(node.addr, node.source_port)
        sender = node.name
    raise ConfigurationError("a topology needs a broker")  # pragma: no cover


# ==============================================================================================
# Loading scenarios


def from_dict(doc: Mapping[str, Any], name: str = "") -> Topology:
    """Build a :class:`Topology` from the structure of ``data/topologies/*.yaml``; unknown keys
    raise :class:`~realip.ConfigurationError` naming them (never a silent wrong answer)."""
    kinds: dict[str, type] = {k: entry.settings for k, entry in HOP_KINDS.items()}
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
