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

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigurationError, ScenarioError, ScenarioProblem
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
from .tls import Certificate, TlsSession
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
    "Expectation",
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
    "check_expect",
    "data_dir",
    "from_dict",
    "load",
    "load_scenario",
    "loads",
    "mqtt_connect",
    "scenarios",
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
    #: MQTT over TLS (``transport: tcp``) or secure WebSocket (``ws``): the client opens TLS
    #: to the first hop, offering ``sni``, ``alpn`` and ``tls_version``, and presents a
    #: certificate with ``cert_cn`` (signed by CA ``cert_ca``) when asked for one
    tls: bool = False
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    tls_version: Literal["TLSv1.3", "TLSv1.2"] = "TLSv1.3"
    cert_cn: str | None = None
    cert_ca: str = "clients-ca"
    #: the client sends its CA's certificate with its own (a failure is then in the chain)
    cert_chain: bool = False
    #: a truncated handshake: only this many bytes of the ClientHello, then ``tls_then``
    tls_truncate: int | None = None
    tls_then: Literal["silence", "close"] = "silence"

    def session(self, app: bytes, kind: str) -> TlsSession | None:
        """The TLS connection this client opens carrying *app* (None without ``tls``)."""
        if not self.tls:
            return None
        cert = Certificate(self.cert_cn, self.cert_ca, self.cert_chain) \
            if self.cert_cn is not None else None
        return TlsSession(app, kind, self.sni, self.alpn, self.tls_version, cert,
                          seed=f"{self.name}:{self.port}", sent=self.tls_truncate,
                          then=self.tls_then)




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
    #: whether the scenario states ``expect`` (``expect: null`` expects a closed connection)
    expect_given: bool = field(default=False, repr=False)
    #: the username the broker must give the client from its certificate (None: not checked)
    expect_username: str | None = None
    #: what the programs would warn about (nginx's "low address bits of … are meaningless")
    warnings: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def with_client(self, **changes: Any) -> Topology:
        """A copy whose client differs (``forge_xff`` style changes for exercises); the
        changes are checked like a scenario file's (:class:`~realip.ScenarioError`)."""
        from .schema import validate_client

        values = validate_client({**_settings(self.client), **changes})
        assert values is not None
        return replace(self, client=Client(**values))

    def hop(self, name: str) -> Hop:
        """The hop called *name*."""
        for h in self.hops:
            if h.name == name:
                return h
        raise KeyError(name)

    def with_hop(self, name: str, **changes: Any) -> Topology:
        """A copy with hop *name* reconfigured; the changes are checked like a scenario file's
        (a :class:`~realip.ScenarioError` names ``hops[i].setting`` and what is allowed)."""
        from .programs import hop_kind
        from .schema import validate_hop

        for i, h in enumerate(self.hops):
            if h.name == name:
                entry = hop_kind(h)
                values = validate_hop(entry.kind, {**_settings(h), **changes}, ("hops", i))
                assert values is not None
                hops = (*self.hops[:i], type(h)(**values), *self.hops[i + 1:])
                return replace(self, hops=hops)
        raise ScenarioError([ScenarioProblem("hops", f"no hop named {name!r}",
                                             ", ".join(h.name for h in self.hops))])

    def with_broker(self, **changes: Any) -> Topology:
        """A copy with the broker reconfigured, checked like a scenario file's."""
        from .schema import validate_broker

        values = validate_broker({**_settings(self.broker), **changes})
        assert values is not None
        return replace(self, broker=Broker(**values))

    def to_dict(self) -> dict[str, Any]:
        """The scenario as the document :func:`from_dict` reads (every setting spelled out;
        ``from_dict(t.to_dict()) == t``)."""
        from .programs import hop_kind

        doc: dict[str, Any] = {"name": self.name, "title": self.title,
                               "description": self.description}
        if self.expect is not None or self.expect_given:
            doc["expect"] = self.expect
        if self.expect_username is not None:
            doc["expect_username"] = self.expect_username
        doc["client"] = _settings(self.client)
        doc["hops"] = [{"kind": hop_kind(h).kind, **_settings(h)} for h in self.hops]
        doc["broker"] = _settings(self.broker)
        return doc

    def checked(self) -> Topology:
        """This topology with every part checked as a scenario file is (what a topology built
        in Python or by an importer gets): the same topology, its ``warnings`` filled in, or a
        :class:`~realip.ScenarioError` naming the setting and what is allowed."""
        return from_dict(self.to_dict(), self.name)

    def labels(self) -> dict[str, str]:
        """Host label → address (the map the live lab replaces with loopback addresses)."""
        out = {self.client.name: self.client.addr}
        for h in self.hops:
            out[h.name] = h.addr
            if h.public:
                out[f"{h.name}.public"] = h.public
        out[self.broker.name] = self.broker.addr
        return out


def _settings(obj: Any) -> dict[str, Any]:
    """A settings dataclass as the dict a scenario would give: a broker's fields that belong
    to other broker kinds are left out while at their defaults (set, they are reported)."""
    out = {f.name: getattr(obj, f.name) for f in fields(obj)}
    if isinstance(obj, Broker):
        from .schema import broker_model

        known = set(broker_model(obj.kind).model_fields) | {"kind"}
        defaults = {f.name: f.default for f in fields(Broker)}
        out = {k: v for k, v in out.items() if k in known or v != defaults.get(k)}
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
    def username(self) -> str | None:
        """The username the broker gives the client from its certificate (EMQX's
        ``peer_cert_as_username``), None when it takes the CONNECT packet's."""
        return self.views[-1].username if self.connected and self.views else None

    @property
    def client_addr(self) -> str | None:
        """The address part of the peername."""
        if self.peername is None:
            return None
        return self.peername.rsplit(":", 1)[0]

    @property
    def expectation(self) -> Expectation | None:
        """The scenario's ``expect`` checked against this trace (✓/✗ in a notebook), or None
        when the scenario states none."""
        return check_expect(self)

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
            "expect": (lambda e: None if e is None else e.to_dict())(check_expect(self)),
            "links": [
                {
                    "from": link.sender, "to": link.receiver, "src": str(link.src),
                    "dst": str(link.dst),
                    "parts": [{"kind": k, "text": printable(p), "hex": p.hex()}
                              for k, p in link.parts],
                    **({"tls": {"holder": link.tls_holder,
                                "server_name": link.tls.server_name,
                                "records": [{"type": r.content_type.name.lower(),
                                             "length": r.length, "header": r.header.hex(),
                                             "carries": r.carries}
                                            for r in link.records]}}
                       if link.tls is not None else {}),
                }
                for link in self.links
            ],
            "hops": [
                {"name": v.name, "kind": v.kind, "peer": str(v.peer), "local": str(v.local),
                 "accepted": v.accepted, "log": v.log, "variables": dict(v.variables),
                 "decisions": list(v.decisions),
                 **({"tls": v.tls} if v.tls is not None else {}),
                 **({"username": v.username} if v.username is not None else {}),
                 **({"clientid": v.clientid} if v.clientid is not None else {})}
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
            for record in link.records:
                lines.append(f"      [tls] {record}")
            for d in view.decisions:
                lines.append(f"    {view.name}: {d}")
            if not view.accepted:
                lines.append(f"    {view.name} CLOSES the connection: {view.log}")
        if self.connected:
            lines.append(f"peername={self.peername}"
                         + (f" username={self.username}" if self.username is not None else ""))
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
    tls = client.session(app, app_kind)
    # the client's forged header goes in clear before its handshake, as a real one would
    data = forged if tls is not None else forged + app
    peer = endpoint(client.addr, client.port)
    sender = client.name
    links: list[Link] = []
    views: list[HopView] = []
    nodes: list[Hop | Broker] = [*topology.hops, topology.broker]
    for i, node in enumerate(nodes):
        local = endpoint(node.addr, node.port)
        parts = split_parts(data, app_kind)
        links.append(Link(i, sender, node.name, peer, local, parts,
                          dialed=f"{getattr(node, 'public', None) or node.addr}:{node.port}",
                          tls=tls))
        upstream = (endpoint(nodes[i + 1].addr, nodes[i + 1].port) if i + 1 < len(nodes)
                    else None)
        out = step(node, Inbound(data, peer, local, sender, upstream, client.client_id, tls))
        if out.view.tls == "terminated":
            v = out.view.variables
            _hold(links, node.name, tls, v.get("ssl_protocol") or v.get("ssl_fc_protocol"))
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
        # what follows on the next link is the plaintext of the session that carried it
        carried = out.tls or tls
        if carried is not None:
            app_kind = carried.kind
        tls = out.tls
        peer = endpoint(node.addr, node.source_port)
        sender = node.name
    raise ConfigurationError("a topology needs a broker")  # pragma: no cover


def _hold(links: list[Link], holder: str, tls: TlsSession | None,
          version: str | None) -> None:
    """Name *holder* as the reader of *tls* on every link that carried that session, and the
    version their handshake settled on (the records' framing depends on it)."""
    for k, link in enumerate(links):
        if tls is not None and link.tls is tls:
            links[k] = replace(link, tls_holder=holder, tls_version=version)


# ==============================================================================================
# Checking expect


@dataclass(frozen=True)
class Expectation:
    """A scenario's ``expect`` checked against a simulation: ``expected`` is the peername the
    scenario says the broker records (None: the connection is closed), ``got`` what it recorded
    (None: closed, with ``failure``).  Its text and HTML faces show ✓ or ✗ with both values."""

    scenario: str
    expected: str | None
    got: str | None
    failure: str | None = None
    #: ``expect_username`` and the username the broker gave (checked when expected is set)
    expected_username: str | None = None
    got_username: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the simulation gives what the scenario expects."""
        return self.expected == self.got and (self.expected_username is None
                                              or self.expected_username == self.got_username)

    def _said(self, value: str | None) -> str:
        return value if value is not None else "a closed connection"

    def __str__(self) -> str:
        got = self._said(self.got) + (f" ({self.failure})" if self.got is None and
                                      self.failure else "")
        want = self._said(self.expected)
        if self.expected_username is not None:
            want += f" as username {self.expected_username!r}"
            if self.got is not None:
                got += f" as username {self.got_username!r}" if self.got_username is not None \
                    else " with no username from a certificate"
        if self.ok:
            return f"✓ {self.scenario}: expect {want}, got {got}"
        return f"✗ {self.scenario}: expect {want}, but got {got}"

    def _repr_html_(self) -> str:
        from ._text import esc

        color = "#2e7d32" if self.ok else "#c62828"
        return f'<div class="realip-expect" style="color:{color}"><b>{esc(str(self))}</b></div>'

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``ok``, ``expected``, ``got``, ``failure``."""
        out: dict[str, Any] = {"ok": self.ok, "expected": self.expected, "got": self.got,
                               "failure": self.failure}
        if self.expected_username is not None:
            out.update(expected_username=self.expected_username,
                       got_username=self.got_username)
        return out


def check_expect(what: Topology | Trace) -> Expectation | None:
    """Simulate *what* (or take its trace) and check the scenario's ``expect``; None when the
    scenario states none."""
    trace = what if isinstance(what, Trace) else simulate(what)
    topo = trace.topology
    if topo.expect is None and not topo.expect_given:
        return None
    return Expectation(topo.name, topo.expect, trace.peername, trace.failure,
                       topo.expect_username, trace.username)


# ==============================================================================================
# Loading scenarios


def _build(v: Any, name: str = "") -> Topology:
    """The dataclasses of a validated scenario (:class:`realip.schema.Validated`)."""
    hops = tuple(HOP_KINDS[kind].settings(**values) for kind, values in v.hops)
    return Topology(name=v.name or name, client=Client(**v.client), hops=hops,
                    broker=Broker(**v.broker), title=v.title, description=v.description,
                    expect=v.expect, expect_given=v.expect_given,
                    expect_username=v.expect_username,
                    warnings=tuple(str(w) for w in v.warnings))


def from_dict(doc: Mapping[str, Any], name: str = "") -> Topology:
    """Build a :class:`Topology` from the structure of a scenario file (see
    ``docs/scenario-language.md``); any problem raises :class:`~realip.ScenarioError` naming
    the setting's path and what is allowed (never a silent wrong answer)."""
    from .schema import validate

    return _build(validate(doc), name)


def loads(text: str, name: str = "", file: str | None = None) -> Topology:
    """A :class:`Topology` from YAML text; problems carry *file*, line and column."""
    from .schema import parse_yaml, validate

    doc, marks = parse_yaml(text, file)
    return _build(validate(doc, marks=marks), name)


def load(path: str | os.PathLike[str]) -> Topology:
    """Load a topology from a YAML file (see :func:`load_scenario` for names too)."""
    text = os.fspath(path)
    try:
        with open(text, encoding="utf-8") as f:
            content = f.read()
    except OSError as exc:
        raise ScenarioError([ScenarioProblem("", f"cannot read the file: {exc.strerror}",
                                             None, text)]) from None
    return loads(content, os.path.splitext(os.path.basename(text))[0], text)


def data_dir() -> Path:
    """The folder of scenarios and configurations: the package's own ``realip/data`` (it ships
    in the wheel), or ``$REALIP_DATA`` when set (a folder with ``topologies/``, ``nginx/`` and
    ``haproxy/``, used instead)."""
    env = os.environ.get("REALIP_DATA")
    if env:
        path = Path(env)
    else:
        from importlib.resources import files

        path = Path(str(files("realip").joinpath("data")))
    if not (path / "topologies").is_dir():
        raise ConfigurationError(f"no scenarios under {path} (REALIP_DATA must name a folder "
                                 "holding topologies/)")
    return path


def scenarios() -> tuple[str, ...]:
    """The names of the bundled scenarios (or those under ``$REALIP_DATA``), sorted."""
    return tuple(sorted(p.stem for p in (data_dir() / "topologies").glob("*.yaml")))


def load_scenario(name: str | os.PathLike[str]) -> Topology:
    """A scenario by name (``ws-multi-recursive``, see :func:`scenarios`) or by path to a YAML
    file; an unknown name is a :class:`~realip.ScenarioError` listing the known ones."""
    text = os.fspath(name)
    if os.path.isfile(text) or os.sep in text or text.endswith((".yaml", ".yml")):
        return load(text)
    path = data_dir() / "topologies" / f"{text}.yaml"
    if not path.is_file():
        known = scenarios()
        close = difflib.get_close_matches(text, known, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ScenarioError([ScenarioProblem("", f"no scenario {text!r}{hint}; known: "
                                             f"{', '.join(known)}")])
    return load(path)
