"""What every program room shares: the receiver model record and the one hop step API (sans-IO).

A *program* (nginx, HAProxy, EMQX, Mosquitto, aedes, a plain relay) lives in its own module
under :mod:`realip.programs`.  Each room declares, as data:

* its PROXY protocol **receivers** (:class:`ReceiverModel`: the parser, the versions it models,
  the parser settings per version and the printable rules of :func:`realip.receivers.profile`);
* its **hop kinds** — the settings dataclass a topology names in YAML (``nginx-stream``,
  ``haproxy``, …) and the :data:`Step` function that plays one connection through it;
* its **broker kinds** (``emqx``, ``mosquitto``, …) the same way.

The step is the one public, sans-IO way to run a program: it takes what arrived on the inbound
link (:class:`Inbound`: the first bytes, the TCP peer, the local address) and returns what the
program sends on its outbound link plus its decision (:class:`Outbound` with a structured
:class:`HopView`).  :func:`realip.topology.simulate`, the live relays and the lab broker all call
it through :func:`realip.programs.step`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Literal

from ..decisions import Acceptance, Resolution
from ..proxy_protocol import Endpoint
from ..tls import TlsSession

__all__ = [
    "Broker",
    "HopView",
    "Host",
    "Inbound",
    "Outbound",
    "ReceiverModel",
    "Step",
    "TrustDecision",
    "VersionRule",
    "access_allowed",
    "ca_label",
    "covers",
    "version_tuple",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Inbound:
    """What arrived on a hop's (or broker's) inbound link.

    ``data`` is everything the sender wrote first (its PROXY header(s), then the MQTT CONNECT or
    the HTTP upgrade request); ``peer`` the TCP peer as the receiver sees it; ``local`` the
    receiver's own address; ``upstream`` where the hop connects next as its configuration names
    it (nginx's ``$proxy_host``), ``None`` for a broker; ``client_id`` the MQTT client id when
    the bytes do not carry it in a form the step reads (a WebSocket client's CONNECT travels in
    frames the simulator does not write); ``tls`` the TLS connection that follows ``data``
    on the same TCP connection (``data`` is then what travelled in clear before the
    handshake — a PROXY header — and the session's plaintext only the key holder reads)."""

    data: bytes
    peer: Endpoint
    local: Endpoint
    sender: str = ""
    upstream: Endpoint | None = None
    client_id: str = ""
    tls: TlsSession | None = None


@dataclass(frozen=True)
class TrustDecision:
    """Whether a receiver took the client address from what its sender wrote: ``trusted`` True
    (it did, for this sender), False (it reads an address but does not trust this sender) or
    None (it reads no address from its sender); ``rule`` names the setting that decides."""

    trusted: bool | None
    rule: str


@dataclass(frozen=True)
class HopView:
    """What one hop (or the broker) saw and decided.

    ``variables`` are the program's own (``$remote_addr``, ``$realip_remote_addr``,
    ``$proxy_protocol_addr``, HAProxy's ``src`` …); ``decisions`` the sentences in the order they
    were taken; a closed connection has ``accepted`` False and the program's ``log`` line.  The
    structured fields say the same as data: ``trust`` (whether and why it trusted its sender),
    ``acceptance`` (its PROXY receiver's decision, when it read a header), ``resolution`` (the
    forwarded-header walk with its trace, when it resolved one) and, for a broker, ``peername``
    and the identity it gives the client: ``username`` and ``clientid`` (EMQX's
    ``peer_cert_as_username`` / ``peer_cert_as_clientid``; None: from the CONNECT packet).
    ``tls`` says what the hop did with TLS: ``terminated`` (it holds the key), ``preread``
    (it read the ClientHello and passed it on), ``passed`` (relayed without looking), or None
    (no TLS reached it).
    """

    name: str
    kind: str
    peer: Endpoint
    local: Endpoint
    variables: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    decisions: tuple[str, ...] = ()
    accepted: bool = True
    log: str | None = None
    trust: TrustDecision | None = None
    acceptance: Acceptance | None = None
    resolution: Resolution | None = None
    peername: str | None = None
    username: str | None = None
    clientid: str | None = None
    tls: str | None = None


@dataclass(frozen=True)
class Outbound:
    """What a step sends on its outbound link: ``parts`` labelled ``proxy``, ``mqtt``, ``http``
    (empty for a broker, which sends nothing on), ``ok`` False when it closes the connection;
    ``tls`` the TLS connection that follows the parts on the outbound link (one the hop passes
    through unread, or one it opens itself to its upstream)."""

    view: HopView
    parts: tuple[tuple[str, bytes], ...] = ()
    ok: bool = True
    tls: TlsSession | None = None

    @classmethod
    def refusal(cls, name: str, kind: str, conn: Inbound, variables: Mapping[str, str],
                decisions: list[str], log: str) -> Outbound:
        """The receiver closes the connection, logging *log*: nothing is sent on."""
        return cls(HopView(name, kind, conn.peer, conn.local, variables, tuple(decisions),
                           False, log), ok=False)

    @property
    def data(self) -> bytes:
        """The bytes written upstream first, concatenated."""
        return b"".join(p for _, p in self.parts)

    @property
    def peername(self) -> str | None:
        """For a broker: the peername it records (None when it refused the connection)."""
        return self.view.peername


#: A hop or broker step: its settings (a dataclass of its room) and what arrived.
Step = Callable[[Any, Inbound], Outbound]

#: A receiver's parser: the first read, the normalised version and the parser settings.
Parser = Callable[[bytes, str, Mapping[str, Any]], Acceptance]

#: A receiver's parser for a connection whose bytes arrive in two reads: the first read, what a
#: later read returns, the normalised version and the parser settings.
LaterParser = Callable[[bytes, bytes, str, Mapping[str, Any]], Acceptance]


@dataclass(frozen=True)
class VersionRule:
    """From version ``first`` on, parser setting ``knob`` is ``value`` (``knob`` empty: none) and
    the printable rule ``aspect`` reads ``text`` (``aspect`` empty: none)."""

    first: tuple[int, ...]
    knob: str
    value: Any
    aspect: str
    text: str


@dataclass(frozen=True)
class ReceiverModel:
    """One PROXY protocol receiver of a program, as :mod:`realip.receivers` lists it.

    ``versions`` are the version strings with distinct behaviour; ``choices`` when set are the
    only strings accepted as a version (others are an error naming them, e.g. esockd's backend
    names) — otherwise a version is read as numbers and ``version_rules`` apply in order;
    ``select`` maps a choice to the settings it implies.  ``parse_later``, when set, models
    bytes that arrive in a later read (:meth:`accepts` ``later=``); a receiver without it
    decides on its first read alone."""

    name: str
    parse: Parser
    default_version: str
    versions: tuple[str, ...]
    knobs: Mapping[str, Any]
    rules: Mapping[str, str]
    sources: str
    version_rules: tuple[VersionRule, ...] = ()
    choices: tuple[str, ...] | None = None
    choice_error: str = ""
    select: Callable[[str], Mapping[str, Any]] | None = None
    parse_later: LaterParser | None = None

    def settings(self, version: str | None = None) -> tuple[str, Mapping[str, Any]]:
        """The normalised version and the parser settings it implies; :class:`ValueError`
        naming what is allowed for a version this model cannot read."""
        ver = self.default_version if version is None else str(version).strip()
        knobs = dict(self.knobs)
        if self.choices is not None:
            if ver not in self.choices:
                raise ValueError(f"{self.name}: " + self.choice_error.format(ver=ver))
            if self.select is not None:
                knobs.update(self.select(ver))
        else:
            vt = version_tuple(ver)
            if vt is None:
                raise ValueError(f"{self.name}: cannot read version {ver!r}")
            for rule in self.version_rules:
                if vt >= rule.first and rule.knob:
                    knobs[rule.knob] = rule.value
        return ver, MappingProxyType(knobs)

    def accepts(self, data: bytes, version: str | None = None, *,
                later: bytes | None = None) -> Acceptance:
        """What this receiver does when its first read returns *data* and, when *later* is
        given, a later read returns *later* (None: everything arrived in the first read).
        Receivers that do not model a later read (``parse_later`` unset) ignore it."""
        ver, knobs = self.settings(version)
        if later is not None and self.parse_later is not None:
            return self.parse_later(bytes(data), bytes(later), ver, knobs)
        return self.parse(bytes(data), ver, knobs)


def version_tuple(text: str) -> tuple[int, ...] | None:
    """``"1.23.2"`` / ``"v2.9"`` / EMQX Enterprise's ``"e5.10.4"`` as numbers (None when the
    text starts with none)."""
    m = re.match(r"\s*[ve]?(\d+(?:\.\d+)*)", text)
    if m is None:
        return None
    return tuple(int(x) for x in m.group(1).split("."))


# ==============================================================================================
# Settings every host shares, and the broker listener


@dataclass(frozen=True, kw_only=True)
class Host:
    """What every hop is: a name, its own address, the port it listens on."""

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
class Broker:
    """The broker listener.  ``kind`` is ``emqx`` or ``mosquitto``; ``listener`` ``tcp`` or
    ``ws``.  EMQX: ``proxy_protocol``, ``proxy_protocol_timeout``, ``access_rules`` (checked on
    the raw TCP peer), ``proxy_address_header``/``proxy_port_header`` (ws; ``version`` "6.3"
    empties their defaults) and ``proxy_address_allow`` (6.4).  Mosquitto: ``version`` "2.1"
    with ``enable_proxy_protocol`` 1 or 2, or "2.0" (no PROXY support at all).  aedes:
    ``trust_proxy`` (aedes-server-factory's ``trustProxy``)."""

    name: str = "emqx"
    kind: Literal["emqx", "mosquitto", "aedes"] = "emqx"
    addr: str
    port: int = 1883
    #: EMQX's listener types: ``ssl`` is MQTT over TLS (8883), ``wss`` secure WebSocket (8084)
    listener: Literal["tcp", "ws", "ssl", "wss"] = "tcp"
    proxy_protocol: bool = False
    proxy_protocol_timeout: float = 3.0
    access_rules: tuple[str, ...] = ()
    proxy_address_header: str | None = None
    proxy_port_header: str | None = None
    proxy_address_allow: tuple[str, ...] | None = None
    enable_proxy_protocol: int | None = None
    #: aedes-server-factory ``trustProxy``: read PROXY headers (tcp) / X-Forwarded-For and
    #: X-Real-IP (ws) from any sender
    trust_proxy: bool = False
    #: EMQX ``mqtt.peer_cert_as_username`` / ``peer_cert_as_clientid``: the client's identity
    #: from its certificate (``cn`` or ``dn``; EMQX's ``crt``/``pem``/``md5`` are not modelled)
    #: — on a tcp listener with
    #: ``proxy_protocol``, from the PROXY v2 SSL TLV
    peer_cert_as_username: Literal["disabled", "cn", "dn"] = "disabled"
    peer_cert_as_clientid: Literal["disabled", "cn", "dn"] = "disabled"
    #: ssl/wss ``ssl_options``: ``verify`` (``verify_peer`` asks for a client certificate),
    #: ``fail_if_no_peer_cert``, and the CA (a label) that ``cacertfile`` holds
    verify: Literal["verify_none", "verify_peer"] = "verify_none"
    fail_if_no_peer_cert: bool = False
    cacertfile: str = "clients-ca"
    version: str = "5.7.0"


def covers(entries: tuple[str, ...], addr: str) -> bool | None:
    """Whether trusted ranges *entries* cover *addr* (None when they cannot be compiled)."""
    from ..errors import ConfigurationError
    from ..trust import Trust

    try:
        return Trust(entries)(addr)
    except ConfigurationError:
        return None


def access_allowed(rules: Sequence[str], ip: IPv4Address | IPv6Address) -> bool:
    """EMQX ``access_rules``: ``"allow CIDR"`` / ``"deny CIDR"`` / ``"allow all"``, first match
    wins; no match allows."""
    from ..trust import Trust

    for rule in rules:
        verb, _, target = rule.strip().partition(" ")
        if target == "all" or Trust([target.strip()])(ip):
            return verb == "allow"
    return True


@dataclass(frozen=True)
class Imported:
    """Hops read from one configuration file (by its program's room), where each sends its
    traffic (``upstreams``: ``host:port`` per hop), and what was not understood."""

    hops: tuple[Any, ...]
    upstreams: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class FixContext:
    """Where a hop or broker stands when its room proposes fixes: the address of what sends to
    it in the honest chain (the client for the first hop), and the attacker's own address."""

    index: int
    sender_addr: str
    attacker_addr: str


@dataclass(frozen=True)
class Fix:
    """One configuration change a program's room proposes: ``setting`` of hop (or broker)
    ``node`` becomes ``value``; ``words`` say it in the program's own configuration language
    (``real_ip_recursive on;``, ``http-request del-header X-Forwarded-For``,
    ``websocket.proxy_address_header = ""``).  The audit applies it and re-simulates: a fix is
    kept only when the attack stops and honest clients are still named right."""

    node: str
    setting: str
    value: Any
    words: str

    def apply(self, target: Any) -> Any:
        """*target* (the hop or broker called :attr:`node`) with the change made."""
        from dataclasses import replace

        return replace(target, **{self.setting: self.value})


def ca_label(path: str) -> str:
    """The CA label a certificate file stands for in the simulator: its name without
    directories and extension (``/etc/nginx/clients-ca.pem`` → ``clients-ca``)."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    return base.split(".", 1)[0] or base
