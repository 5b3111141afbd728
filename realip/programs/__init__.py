"""The programs realip reproduces, one room each, and the one registry that names them.

=============  ==================================================================================
room           what it holds (sans-IO)
=============  ==================================================================================
``spec``       the specification as a receiver (:func:`realip.proxy_protocol.decode`)
``nginx``      address grammar, ``listen … proxy_protocol``, stream/http realip and variables,
               the ``nginx-stream`` / ``nginx-http`` hops, nginx.conf writer and reader
``haproxy``    ``accept-proxy``, ``option forwardfor`` / ``set-header`` / ``hdr_ip``, the
               ``haproxy`` hop, haproxy.cfg writer and reader
``emqx``       Erlang's address grammar, esockd (tcp/ssl), ranch (ws/wss), the WebSocket
               listener's header rules, the ``emqx`` broker
``mosquitto``  ``enable_proxy_protocol``, the ``mosquitto`` broker
``aedes``      aedes-protocol-decoder's PROXY reader (crashes are outcomes)
``relay``      a plain TCP relay hop
=============  ==================================================================================

Generic code (:mod:`realip.receivers`, :mod:`realip.topology`, :mod:`realip.lab`, :mod:`realip.viz`,
the CLI) asks this registry and names no program itself.  Adding a program is a new room plus
its entries in the tables below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from .._addr import format_ip
from ..errors import ConfigurationError
from ..proxy_protocol import Endpoint
from . import relay, spec
from .aedes import broker as aedes_broker
from .aedes import config as aedes_config
from .aedes import fixes as aedes_fixes
from .aedes import receive as aedes_receive
from .base import (
    Broker,
    Fix,
    FixContext,
    HopView,
    Host,
    Inbound,
    Outbound,
    ReceiverModel,
    Step,
    TrustDecision,
    VersionRule,
)
from .emqx import broker as emqx_broker
from .emqx import config as emqx_config
from .emqx import esockd, ranch
from .emqx import fixes as emqx_fixes
from .haproxy import fixes as haproxy_fixes
from .haproxy import hops as haproxy_hops
from .haproxy import receive as haproxy_receive
from .haproxy.hops import HAProxy
from .mosquitto import broker as mosquitto_broker
from .mosquitto import config as mosquitto_config
from .mosquitto import fixes as mosquitto_fixes
from .mosquitto import receive as mosquitto_receive
from .nginx import fixes as nginx_fixes
from .nginx import hops as nginx_hops
from .nginx import receive as nginx_receive
from .nginx import tls as nginx_tls
from .nginx.hops import NginxHttp, NginxStream
from .relay import Relay

__all__ = [
    "BROKER_KINDS",
    "HOP_KINDS",
    "RECEIVER_MODELS",
    "Broker",
    "BrokerKind",
    "Fix",
    "FixContext",
    "HAProxy",
    "Hop",
    "HopKind",
    "HopView",
    "Host",
    "Inbound",
    "NginxHttp",
    "NginxStream",
    "Outbound",
    "ReceiverModel",
    "Relay",
    "TrustDecision",
    "VersionRule",
    "admits",
    "broker_from_config",
    "fixes",
    "hop_kind",
    "reads_proxy_header",
    "speaks_http",
    "speaks_tls",
    "step",
    "tls_protocols",
    "trust",
]

#: Every PROXY protocol receiver model, in the order comparison tables print them.
RECEIVER_MODELS: Final[Mapping[str, ReceiverModel]] = MappingProxyType({
    m.name: m for m in (spec.RECEIVER, nginx_receive.RECEIVER, haproxy_receive.RECEIVER,
                        esockd.RECEIVER, ranch.RECEIVER, mosquitto_receive.RECEIVER,
                        aedes_receive.RECEIVER)
})


def _no_fixes(node: Any, ctx: FixContext) -> Sequence[Fix]:
    return ()


@dataclass(frozen=True)
class HopKind:
    """One kind of hop a topology can name: its YAML ``kind``, its settings dataclass, the
    program it belongs to, how drawings label it, and its functions — the step, who it trusts
    (from its configuration), whether it reads a PROXY header from a peer, whether it parses
    HTTP."""

    kind: str
    settings: type
    program: str
    label: Callable[[Any], str]
    step: Step
    trust: Callable[[Any, str], TrustDecision]
    reads_proxy_header: Callable[[Any, Endpoint], bool]
    speaks_http: Callable[[Any], bool]
    #: how far into its first read the program looks for a v1 header's end (nginx http reads
    #: into its 1 KiB client header buffer; the others into a 107/108-byte window)
    header_window: int = 108
    #: settings holding lists of trusted ranges, and single networks (the live lab maps them
    #: onto loopback addresses)
    cidr_lists: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    #: settings holding ``allow``/``deny`` rule lists (``"allow CIDR"``, ``"deny all"``)
    rule_lists: tuple[str, ...] = ()
    #: configuration changes that may close a forgery (the audit tries them on the simulator)
    fixes: Callable[[Any, FixContext], Sequence[Fix]] = _no_fixes
    #: the settings a scenario may give this kind (a pydantic model of the room's
    #: ``settings.py``, loaded only when a scenario is validated; see :mod:`realip.schema`)
    schema: Callable[[], type] | None = None
    #: whether this configuration handles TLS itself (terminates it or reads the ClientHello);
    #: one that does not sees a TLS connection as the bytes it is (see :func:`step`)
    speaks_tls: Callable[[Any], bool] = lambda node: False
    #: the TLS versions this configuration enables when it terminates TLS
    tls_protocols: Callable[[Any], tuple[str, ...]] = lambda node: ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True)
class BrokerKind:
    """One kind of broker (``Broker.kind``): the program, its label, its step and trust, and
    ``admits`` — whether the listener accepts a TCP connection from a peer at all, before it
    reads a byte (EMQX ``access_rules``)."""

    kind: str
    program: str
    label: str
    step: Step
    trust: Callable[[Any, str], TrustDecision]
    admits: Callable[[Any, Endpoint], bool]
    #: reads the program's own configuration file into Broker settings (+ warnings)
    read_config: Callable[..., tuple[dict[str, Any], tuple[str, ...]]] | None = None
    #: configuration changes that may close a forgery (the audit tries them on the simulator)
    fixes: Callable[[Any, FixContext], Sequence[Fix]] = _no_fixes
    #: the settings a scenario may give this kind (see :attr:`HopKind.schema`)
    schema: Callable[[], type] | None = None
    #: see :attr:`HopKind.speaks_tls`
    speaks_tls: Callable[[Any], bool] = lambda node: False


def _never(node: Any, peer: Endpoint) -> bool:
    return False


# The rooms' settings declarations, imported lazily: building pydantic models is only needed
# when a scenario is validated, never for ``import realip``.
def _nginx_stream_settings() -> type:
    from .nginx.settings import NginxStreamSettings
    return NginxStreamSettings


def _nginx_http_settings() -> type:
    from .nginx.settings import NginxHttpSettings
    return NginxHttpSettings


def _haproxy_settings() -> type:
    from .haproxy.settings import HAProxySettings
    return HAProxySettings


def _relay_settings() -> type:
    from .settings import RelaySettings
    return RelaySettings


def _emqx_settings() -> type:
    from .emqx.settings import EmqxSettings
    return EmqxSettings


def _mosquitto_settings() -> type:
    from .mosquitto.settings import MosquittoSettings
    return MosquittoSettings


def _aedes_settings() -> type:
    from .aedes.settings import AedesSettings
    return AedesSettings


#: Hop kinds by YAML ``kind``.
HOP_KINDS: Final[Mapping[str, HopKind]] = MappingProxyType({k.kind: k for k in (
    HopKind("nginx-stream", NginxStream, "nginx", lambda n: "NGINX stream",
            nginx_hops.step_stream, nginx_hops.trust_stream, nginx_hops.reads_proxy_header,
            lambda n: False, cidr_lists=("set_real_ip_from",), rule_lists=("access",),
            fixes=nginx_fixes.fixes_stream,
            schema=_nginx_stream_settings,
            speaks_tls=lambda n: n.listen_ssl or n.ssl_preread,
            tls_protocols=nginx_tls.protocols_of),
    HopKind("nginx-http", NginxHttp, "nginx", lambda n: "NGINX http", nginx_hops.step_http,
            nginx_hops.trust_http, nginx_hops.reads_proxy_header, lambda n: True, 1024,
            cidr_lists=("set_real_ip_from",), rule_lists=("access",),
            fixes=nginx_fixes.fixes_http,
            schema=_nginx_http_settings, speaks_tls=lambda n: n.listen_ssl,
            tls_protocols=nginx_tls.protocols_of),
    HopKind("haproxy", HAProxy, "haproxy", lambda n: f"HAProxy ({n.mode})", haproxy_hops.step,
            haproxy_hops.trust, haproxy_hops.reads_proxy_header, lambda n: n.mode == "http",
            cidr_lists=("expect_proxy_from", "reject_unless_src"),
            networks=("forwardfor_except",),
            fixes=haproxy_fixes.fixes, schema=_haproxy_settings,
            speaks_tls=lambda n: n.bind_ssl),
    HopKind("relay", Relay, "relay", lambda n: "relay", relay.step, relay.trust, _never,
            lambda n: False, schema=_relay_settings),
)})

#: Broker kinds by ``Broker.kind``.
BROKER_KINDS: Final[Mapping[str, BrokerKind]] = MappingProxyType({k.kind: k for k in (
    BrokerKind("emqx", "emqx", "EMQX", emqx_broker.step, emqx_broker.trust,
               emqx_broker.admits, read_config=emqx_config.from_emqx_conf,
               fixes=emqx_fixes.fixes, schema=_emqx_settings,
               speaks_tls=lambda n: n.listener in ("ssl", "wss")),
    BrokerKind("mosquitto", "mosquitto", "Mosquitto", mosquitto_broker.step,
               mosquitto_broker.trust, lambda node, peer: True,
               read_config=mosquitto_config.from_mosquitto_conf, fixes=mosquitto_fixes.fixes,
               schema=_mosquitto_settings),
    BrokerKind("aedes", "aedes", "aedes", aedes_broker.step, aedes_broker.trust,
               lambda node, peer: True, read_config=aedes_config.from_aedes_options,
               fixes=aedes_fixes.fixes, schema=_aedes_settings),
)})

#: Any hop's settings.
Hop = NginxStream | NginxHttp | HAProxy | Relay

_BY_TYPE: Final[Mapping[type, HopKind]] = MappingProxyType(
    {k.settings: k for k in HOP_KINDS.values()})


def hop_kind(node: Any) -> HopKind | BrokerKind:
    """The registry entry for a hop's or broker's settings."""
    if isinstance(node, Broker):
        entry = BROKER_KINDS.get(node.kind)
        if entry is None:
            raise ConfigurationError(f"{node.name}: broker kind must be one of "
                                     f"{sorted(BROKER_KINDS)}, not {node.kind!r}")
        return entry
    found = _BY_TYPE.get(type(node))
    if found is None:
        raise ConfigurationError(f"not a hop or broker: {type(node).__name__}")
    return found


def _host(ep: Endpoint) -> str:
    return ep.host if isinstance(ep.host, str) else format_ip(ep.host)


def trust(node: Any, sender_addr: str) -> TrustDecision:
    """How *node* (a hop or a broker) treats what *sender_addr* sends it, from its
    configuration."""
    return hop_kind(node).trust(node, sender_addr)


def step(node: Any, inbound: Inbound) -> Outbound:
    """Run one hop or broker on what arrived on its inbound link (the one public step): the
    room's step, with the view's ``trust`` filled in from the configuration.

    A configuration that does not handle TLS itself (:attr:`HopKind.speaks_tls`) meets a TLS
    connection as bytes: its step reads the clear prefix and the ClientHello — a PROXY
    receiver takes them for a header, a broker for MQTT — and when it relays them unchanged
    (a layer-4 pass-through), the TLS connection travels on untouched to the next hop."""
    entry = hop_kind(node)
    if inbound.tls is not None and not entry.speaks_tls(node):
        return _opaque_tls(node, inbound)
    out = entry.step(node, inbound)
    if out.view.trust is None:
        decided = entry.trust(node, _host(inbound.peer))
        out = replace(out, view=replace(out.view, trust=decided))
    return out


def _opaque_tls(node: Any, inbound: Inbound) -> Outbound:
    session = inbound.tls
    assert session is not None
    hello = session.written
    out = step(node, replace(inbound, data=inbound.data + hello, tls=None))
    if not out.ok or not out.parts or not out.parts[-1][1].endswith(hello):
        return out
    kind, last = out.parts[-1]
    parts = (*out.parts[:-1], (kind, last[: -len(hello)])) if len(last) > len(hello) \
        else out.parts[:-1]
    view = replace(out.view, tls="passed", decisions=(
        *out.view.decisions, "the TLS connection (ClientHello"
        + (f", SNI {session.server_name}" if session.server_name else "")
        + ") is relayed unread: this hop holds no key"))
    return replace(out, parts=parts, tls=session, view=view)


def tls_protocols(node: Any) -> tuple[str, ...]:
    """The TLS versions hop *node* enables when it terminates TLS (nginx's ``ssl_protocols``
    or its version's default)."""
    entry = hop_kind(node)
    return entry.tls_protocols(node) if isinstance(entry, HopKind) else ("TLSv1.2", "TLSv1.3")


def speaks_tls(node: Any) -> bool:
    """Whether *node*'s configuration handles TLS itself (terminates it, or reads the
    ClientHello as ``ssl_preread`` does)."""
    return hop_kind(node).speaks_tls(node)


def admits(node: Broker, peer: Endpoint) -> bool:
    """Whether broker listener *node* accepts a TCP connection from *peer* at all."""
    entry = hop_kind(node)
    return not isinstance(entry, BrokerKind) or entry.admits(node, peer)


def reads_proxy_header(node: Any, peer: Endpoint) -> bool:
    """Whether hop *node* reads a PROXY header from *peer* (``listen … proxy_protocol``,
    ``accept-proxy``, ``expect-proxy layer4 if { src … }``)."""
    entry = hop_kind(node)
    return isinstance(entry, HopKind) and entry.reads_proxy_header(node, peer)


def speaks_http(node: Any) -> bool:
    """Whether hop *node* parses HTTP (nginx ``http``, HAProxy ``mode http``)."""
    entry = hop_kind(node)
    return isinstance(entry, HopKind) and entry.speaks_http(node)


def fixes(node: Any, ctx: FixContext) -> Sequence[Fix]:
    """The configuration changes *node*'s room proposes against a forgery (candidates: the audit
    keeps only those the simulator shows to work)."""
    return hop_kind(node).fixes(node, ctx)


def broker_from_config(kind: str, text: str, **options: Any
                       ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Broker settings read from broker *kind*'s own configuration file (EMQX's HOCON,
    ``mosquitto.conf``, aedes' ``createServer`` options) and the warnings; *options* pick the
    listener (see each room)."""
    entry = BROKER_KINDS.get(kind)
    if entry is None or entry.read_config is None:
        readable = sorted(k for k, e in BROKER_KINDS.items() if e.read_config is not None)
        raise ConfigurationError(f"no configuration reader for broker kind {kind!r} "
                                 f"(readable: {', '.join(readable)})")
    return entry.read_config(text, **options)
