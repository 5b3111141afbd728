"""A real MQTT broker for the lab: listeners with EMQX's rules, and realip's safe ones.

:class:`LabBroker` serves MQTT 3.1, 3.1.1 and 5.0 over TCP and over WebSocket (path ``/mqtt``,
subprotocol ``mqtt``), each also over TLS (EMQX's ``ssl`` and ``wss`` listeners, certificates
from :class:`realip.lab.pki.LabPKI`; see :class:`LabBroker`) — CONNECT, SUBSCRIBE (wildcards,
retained messages, QoS 0–2), PUBLISH, UNSUBSCRIBE, PING, wills — on any number of loopback
listeners.  Each listener is configured with the simulator's own
:class:`~realip.topology.Broker` model, and the decision that matters here — *which peername
does this connection get?* — is taken by **the simulator's own code**
(:func:`listener_decision`, which runs :mod:`realip.topology`'s broker logic: the
:mod:`realip.receivers` EMQX/Mosquitto models for the PROXY header, EMQX ``access_rules``,
:func:`realip.resolve.emqx_ws_peer` for ``proxy_address_header``/``proxy_port_header`` and 6.4's
``proxy_address_allow``).  So the live broker and :func:`~realip.topology.simulate` cannot
disagree.  :class:`SafeListener` is realip's own recommendation instead: PROXY headers only
from trusted peers (:class:`realip.aio.PeerPolicy`, strict codec) and X-Forwarded-For walked
right to left by :func:`realip.resolve.client_ip`.

What an EMQX listener does, reproduced:

* ``access_rules`` are checked on the raw TCP peer at accept, before anything is read;
* ``proxy_protocol``: the header (v1 or v2, detected) is read with the receiver model of the
  listener — esockd's for TCP (a fragmented header is waited for, up to
  ``proxy_protocol_timeout``), ranch's single read for WebSocket (cowboy's hard-coded 1 s);
  a refused header closes the connection with the program's own log message
  (:attr:`LabBroker.refused`);
* without ``proxy_protocol``, a header is read as MQTT (or HTTP) and fails
  (``resemble_protocol``);
* WebSocket peernames come from the PROXY header, else from ``proxy_address_header`` /
  ``proxy_port_header`` (leftmost; 6.4 allow-list walk) — whoever sent them.

**Who am I?**  Every client can ask the broker which peername it recorded: PUBLISH anything to
``$realip/whoami``; the broker answers on ``$realip/whoami/<client id>`` (subscribe to it first)
— or, with MQTT 5, on the request's Response Topic with its Correlation Data — with the
peername as UTF-8 text (``"127.0.1.86:39817"``).  Only the broker publishes under
``$realip/``, and a client may subscribe there only to its own answer, so no client can forge
or read another's.  From Python: :meth:`LabBroker.peername`, :meth:`LabBroker.clients` (like
``emqx ctl clients list``), :attr:`LabBroker.history` and :attr:`LabBroker.refused`.

**Hostile clients.**  :class:`Limits` bounds what one client may cost, with Mosquitto's and
EMQX's names and MQTT 5's CONNACK announcements: packet size, topic aliases, the inflight
window (Receive Maximum), each session's outgoing queue (messages and bytes, the transport's
buffer included, with a drop-or-disconnect policy), subscriptions, topic levels, connections
per listener and retained messages; a publish walks a topic trie (:mod:`realip.lab.topics`),
not every subscription; keep-alive counts complete packets.  :meth:`LabBroker.stats` shows a
session's accounting, :attr:`LabBroker.enforced` every limit applied.

Why a broker of its own rather than extending amqtt: amqtt (0.12) speaks MQTT 3.1.1 only, pins
an old ``websockets``, and reads the peer address deep inside its adapters; the lab needs 3.1.1
*and* 5.0 and must decide the peername with the simulator's code before the session starts.
A minimal broker on a sans-IO codec (:mod:`realip.lab.mqtt`) and the sans-IO layer of
``websockets`` (``ServerProtocol``) keeps that decision in one visible place.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .. import aio, erlang
from .._addr import format_ip
from ..errors import ConfigurationError, RealIPError
from ..programs import Broker, HopView, Inbound, step
from ..programs.base import access_allowed as rules_allow
from ..proxy_protocol import Endpoint, SSLInfo, decode
from ..receivers import Acceptance, accepts
from ..resolve import ClientIP
from ..tls import HandshakeResult, TlsSession
from . import mqtt as m
from .loopback import check_loopback
from .pki import LabPKI
from .tls_stream import TlsRefused, TlsStream, server_handshake
from .topics import TopicTree

__all__ = [
    "RESERVED",
    "WHOAMI",
    "ClientInfo",
    "Enforcement",
    "LabBroker",
    "Limits",
    "Refusal",
    "SafeListener",
    "SessionStats",
    "listener_decision",
    "tls_listener_decision",
]

log = logging.getLogger("realip.lab.broker")

#: The topic a client publishes to to learn its peername (answered on ``WHOAMI + "/<id>"``).
WHOAMI = "$realip/whoami"
#: The first topic level only the broker publishes under (see :class:`LabBroker`)
RESERVED = "$realip"

#: cowboy reads the PROXY header of a ws/wss listener with a hard-coded 1000 ms timeout
_RANCH_TIMEOUT = 1.0
_MAX_HEAD = 64 * 1024


# ==============================================================================================
# The rooms' decisions (the simulator's one public step)


def listener_decision(listener: Broker, peer: Endpoint, local: Endpoint, data: bytes,
                      client_id: str) -> tuple[HopView, str | None]:
    """What the broker's room decides for a connection from *peer* to *local* whose first bytes
    are *data* (PROXY header if any, then the MQTT CONNECT or the HTTP upgrade request): its
    view (decisions, and ``accepted``/``log`` for a refusal) and the peername (None when
    refused).  This is :func:`realip.programs.step`, the simulator's own step."""
    out = step(listener, Inbound(data, peer, local, "client", None, client_id))
    return out.view, out.view.peername


def tls_listener_decision(listener: Broker, peer: Endpoint, local: Endpoint, clear: bytes,
                          session: TlsSession, client_id: str) -> tuple[HopView, str | None]:
    """The room's decision for a connection to an ``ssl``/``wss`` listener: *clear* is what
    came before the handshake (a PROXY header, or nothing), *session* the TLS connection as
    the lab broker terminated it (SNI, version, client certificate, the first plaintext).

    It is :func:`realip.programs.step` with ``tls=session``: the room decides from the
    facts of the real handshake (which CA signed the client certificate, the SNI, the
    version) exactly as the simulator does."""
    out = step(listener, Inbound(clear, peer, local, "client", None, client_id, tls=session))
    return out.view, out.view.peername


def access_allowed(rules: Sequence[str], peer: Endpoint) -> bool:
    """``access_rules`` (EMQX's syntax: ``allow|deny CIDR|all``, first match wins) on the raw
    TCP peer."""
    if not rules or isinstance(peer.host, str):
        return True
    return rules_allow(rules, peer.host)


# ==============================================================================================
# Configuration and records


@dataclass(frozen=True, kw_only=True)
class SafeListener:
    """realip's safe listener: a PROXY header is **required** from the *trusted* peers and
    refused from everybody else (when ``proxy_protocol`` is on; direct clients still connect);
    on WebSocket, ``X-Forwarded-For``/``Forwarded`` are walked right to left from the
    (PROXY-resolved) peer by :func:`realip.resolve.client_ip` with *trusted* and *hops*, and an
    upgrade whose client cannot be named safely is refused (403)."""

    name: str = "realip"
    addr: str
    port: int = 1883
    listener: Literal["tcp", "ws"] = "tcp"
    trusted: tuple[str, ...] = ()
    hops: int | None = None
    proxy_protocol: bool = False
    proxy_protocol_timeout: float = 3.0
    access_rules: tuple[str, ...] = ()
    #: the trusted proxies append X-Forwarded-Port (else a port comes only from the PROXY
    #: header or an ``ip:port`` entry, never from what the client sent)
    x_forwarded_port: bool = False


Listener = Broker | SafeListener


QueuePolicy = Literal["drop", "disconnect"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one client may cost the lab broker, named after the Mosquitto 2.0 (``mosquitto.conf``)
    and EMQX 5 (``mqtt.*``, ``listeners.*``) settings they copy.  Every limit MQTT 5 has a
    CONNACK property for is announced to MQTT 5 clients, and all are enforced for every
    protocol version.

    ``max_packet_size`` (bytes, the whole packet): Mosquitto ``max_packet_size`` (default no
        limit), EMQX ``mqtt.max_packet_size`` (1 MB, taken here).  Announced as *Maximum Packet
        Size*; a bigger packet ends the connection (MQTT 5: DISCONNECT 0x95 Packet too large).
        The WebSocket listener caps a frame's message at the same size.
    ``max_topic_alias``: Mosquitto ``max_topic_alias`` (10, taken here), EMQX
        ``mqtt.max_topic_alias`` (65535).  Announced as *Topic Alias Maximum* (omitted when 0,
        which MQTT 5 reads as "no aliases"); an alias of 0 or above it is DISCONNECT 0x94 Topic
        Alias invalid, an unknown alias with an empty topic DISCONNECT 0x82 Protocol Error.
        Bounds the alias table to ``max_topic_alias`` topics per connection.
    ``max_inflight``: Mosquitto ``max_inflight_messages`` (20), EMQX ``mqtt.max_inflight``
        (32, taken here).  Both directions: announced as *Receive Maximum* — a client with more
        unfinished QoS 2 PUBLISH (no PUBREL yet; QoS 1 is acknowledged at once) gets
        DISCONNECT 0x93 Receive Maximum exceeded — and the broker sends at most this many (or
        the client's own Receive Maximum, if lower) unacknowledged QoS 1/2 messages; the rest
        wait in the queue, in order (a QoS 0 message behind them waits too: one FIFO, where
        EMQX lets QoS 0 overtake).
    ``max_queued_messages`` / ``max_queued_bytes``: Mosquitto ``max_queued_messages`` (1000,
        taken here) and ``max_queued_bytes`` (default no limit; 8 MiB here), EMQX
        ``mqtt.max_mqueue_len`` (1000).  One session's outgoing messages waiting for the
        client: the queue's messages and bytes, *plus the bytes its transport still holds*
        (the broker writes to a client only while the transport is below its high-water mark,
        ``pause_writing``/``drain``), so a subscriber that never reads costs at most
        ``max_queued_bytes`` (and the few control packets — PUBACK, PINGRESP — read back-pressure
        allows: the broker stops reading from a client whose transport is full).
    ``queue_policy``: what a full queue does with a new message.  ``"drop"`` (EMQX's
        ``mqueue``): QoS 0 messages go first, oldest first (the new one too, when it is QoS 0),
        then the oldest QoS 1/2 message, until the new one fits; MQTT lets a server drop QoS 0
        at will, and a full QoS 1/2 queue is the session's loss, as in both brokers.
        ``"disconnect"``: the session is closed at once (MQTT 5: DISCONNECT 0x97 Quota
        exceeded; the transport is aborted, so its buffer is freed) — EMQX's
        ``force_shutdown`` idea for a client that cannot keep up.
    ``max_subscriptions`` (per session): EMQX ``mqtt.max_subscriptions`` (default infinity;
        Mosquitto has no such limit); 1000 here.  A filter past it gets SUBACK 0x97 Quota
        exceeded (3.1.1: 0x80).
    ``max_topic_levels``: EMQX ``mqtt.max_topic_levels`` (128, taken here).  A filter with more
        levels gets SUBACK 0x8F, a topic name with more DISCONNECT 0x90 Topic Name invalid.
    ``max_connections`` (per listener): Mosquitto's listener ``max_connections`` (default
        unlimited), EMQX ``listeners.<type>.<name>.max_connections``; 1000 here.  One more is
        closed at accept, before a byte is read, and recorded in :attr:`LabBroker.refused`.
    ``max_retained_messages`` / ``max_retained_bytes``: EMQX ``retainer.max_retained_messages``
        (0 = unlimited); 1000 messages and 16 MiB here.  A retained message that does not fit
        is still delivered to the subscribers present, but not kept.
    """

    max_packet_size: int = 1 << 20
    max_topic_alias: int = 10
    max_inflight: int = 32
    max_queued_messages: int = 1000
    max_queued_bytes: int = 8 << 20
    queue_policy: QueuePolicy = "drop"
    max_subscriptions: int = 1000
    max_topic_levels: int = 128
    max_connections: int = 1000
    max_retained_messages: int = 1000
    max_retained_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        ranges = {
            "max_packet_size": (2, m.MAX_PACKET),
            "max_topic_alias": (0, 65535),
            "max_inflight": (1, 65535),
            "max_queued_messages": (1, None),
            "max_queued_bytes": (1, None),
            "max_subscriptions": (1, None),
            "max_topic_levels": (1, 65535),
            "max_connections": (1, None),
            "max_retained_messages": (0, None),
            "max_retained_bytes": (0, None),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"Limits.{name} must be an integer, not {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                raise ConfigurationError(f"Limits.{name}={value} is out of range: allowed "
                                         f"{allowed}")
        if self.queue_policy not in ("drop", "disconnect"):
            raise ConfigurationError(f"Limits.queue_policy must be 'drop' or 'disconnect', not "
                                     f"{self.queue_policy!r}")
        if self.max_queued_bytes < self.max_packet_size:
            # a message of the largest size the broker accepts must fit an empty queue
            raise ConfigurationError(f"Limits.max_queued_bytes={self.max_queued_bytes} is "
                                     f"below max_packet_size={self.max_packet_size}: allowed "
                                     f">= max_packet_size")

    def connack_properties(self) -> list[tuple[int, Any]]:
        """The CONNACK properties that announce these limits to an MQTT 5 client."""
        props: list[tuple[int, Any]] = []
        if self.max_inflight != 65535:  # 65535 is what an absent Receive Maximum means
            props.append((m.RECEIVE_MAXIMUM, self.max_inflight))
        if self.max_topic_alias:  # absent means 0: no aliases
            props.append((m.TOPIC_ALIAS_MAXIMUM, self.max_topic_alias))
        if self.max_packet_size < m.MAX_PACKET:
            props.append((m.MAXIMUM_PACKET_SIZE, self.max_packet_size))
        props.append((m.SUBSCRIPTION_IDS_AVAILABLE, 0))
        props.append((m.SHARED_AVAILABLE, 0))
        return props


@dataclass(frozen=True)
class SessionStats:
    """One session's cost as the broker accounts it (:meth:`LabBroker.stats`)."""

    client_id: str
    queued_messages: int  #: messages waiting in the session's queue
    queued_bytes: int  #: their bytes
    transport_bytes: int  #: bytes written to the transport and not yet sent
    buffered: int  #: ``queued_bytes + transport_bytes``: what the client costs now
    peak_buffered: int  #: the most ``buffered`` has been
    inflight: int  #: QoS 1/2 messages sent and not yet acknowledged
    awaiting_rel: int  #: QoS 2 messages received, waiting for the client's PUBREL
    dropped: int  #: messages dropped by the queue policy (or too big for the client)
    subscriptions: int
    aliases: int  #: topic aliases the client set


@dataclass(frozen=True)
class Enforcement:
    """A limit or rule the broker enforced on a session (:attr:`LabBroker.enforced`)."""

    client_id: str
    action: Literal["disconnect", "deny-publish", "deny-subscribe"]
    reason: int  #: the MQTT 5 reason code (sent to MQTT 5 clients)
    detail: str


@dataclass(frozen=True)
class ClientInfo:
    """One MQTT session as the broker recorded it (``emqx ctl clients show``)."""

    client_id: str
    peername: str  #: the client address the broker believes, ``addr:port``
    sockname: str  #: the broker address the client reached (the PROXY destination on TCP)
    peer: Endpoint  #: the raw TCP peer (the last proxy, or the client itself)
    listener: str  #: ``tcp:127.0.2.71:1883``
    proto_ver: int  #: 3, 4 (3.1.1) or 5
    view: HopView  #: what the listener saw and decided
    connected: bool = True
    #: ssl/wss: the real handshake (protocol, cipher, SNI, the client certificate's CN and the
    #: lab CA that signed it, ``verify`` 0 when it was verified, None when none was sent)
    tls: HandshakeResult | None = None
    #: the PROXY v2 header's SSL TLV (client flags, verify, CN …) when one carried it — what
    #: EMQX's ``peer_cert_as_username = cn`` reads on a tcp listener, verified by nobody
    pp2_ssl: SSLInfo | None = None
    #: the MQTT username the session has: the room's (``peer_cert_as_username``), else the
    #: CONNECT packet's
    username: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A connection the broker closed before a session began."""

    listener: str
    peer: Endpoint
    log: str
    view: HopView | None = None
    #: machine-readable cause when the lab broker decided it itself: a TLS alert name
    #: (``unknown_ca``, ``certificate_required``, ``unexpected_message`` …),
    #: ``ssl_upgrade_timeout`` or ``closed`` (inside the handshake)
    reason: str | None = None


def _host_text(ep: Endpoint) -> str:
    return ep.host if isinstance(ep.host, str) else format_ip(ep.host)


def _peername(ep: Endpoint) -> str:
    host = ep.host
    text = erlang.ntoa(host) if isinstance(host, IPv4Address | IPv6Address) else host
    return f"{text}:{ep.port}"


# ==============================================================================================
# Wires: MQTT bytes over TCP or WebSocket


class _Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        #: above this many buffered bytes the transport pauses us (asyncio's high-water mark)
        self.high_water = self.transport.get_write_buffer_limits()[1]

    async def recv(self) -> bytes:
        return await self.reader.read(65536)

    def send(self, data: bytes | bytearray) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()

    def full(self) -> bool:
        return self.transport.get_write_buffer_size() > self.high_water

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        # a peer that does not read would keep a closing transport (and its buffer) forever
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.writer.close()

    def abort(self) -> None:
        self.transport.abort()


class _WsWire(_Wire):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 proto: ServerProtocol) -> None:
        super().__init__(reader, writer)
        self.proto = proto
        self.pending: deque[bytes] = deque()
        self.ended = False

    def flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.send_raw(data)
            elif self.writer.can_write_eof() and not self.writer.is_closing():
                try:
                    self.writer.write_eof()
                except OSError:  # the peer is already gone
                    self.ended = True
        if self.proto.close_expected():
            self.ended = True

    def send_raw(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def feed(self, data: bytes) -> None:
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        for event in self.proto.events_received():
            opcode = getattr(event, "opcode", None)
            if opcode in (Opcode.BINARY, Opcode.CONT):
                self.pending.append(bytes(event.data))  # type: ignore[union-attr]
            elif opcode == Opcode.TEXT:
                self.proto.fail(1003, "MQTT over WebSocket uses binary frames")
            elif opcode == Opcode.CLOSE:
                self.ended = True
        self.flush()

    async def recv(self) -> bytes:
        while not self.pending:
            if self.ended:
                return b""
            chunk = await self.reader.read(65536)
            self.feed(chunk)
            if not chunk:
                self.ended = True
        return self.pending.popleft()

    def send(self, data: bytes | bytearray) -> None:
        if self.proto.state.name == "OPEN":
            self.proto.send_binary(data)
            self.flush()

    def close(self) -> None:
        if self.proto.state.name == "OPEN" and not self.transport.get_write_buffer_size():
            self.proto.send_close(1000)
            self.flush()
        super().close()


# ==============================================================================================
# Sessions


class _Out:
    """One message waiting in a session's queue: its encoded PUBLISH (a placeholder packet id
    for QoS 1/2, set when it is sent)."""

    __slots__ = ("data", "qos")

    def __init__(self, data: bytes | bytearray, qos: int) -> None:
        self.data = data
        self.qos = qos


class _Session:
    def __init__(self, broker: LabBroker, info: ClientInfo, level: int, wire: _Wire,
                 will: m.Will | None, window: int, client_max_packet: int | None) -> None:
        self.broker = broker
        self.limits = broker.limits
        self.info = info
        self.level = level
        self.wire = wire
        self.will = will
        self.subs: dict[str, int] = {}
        self.aliases: dict[int, str] = {}
        self.closed = False
        self.window = window  #: QoS 1/2 messages the client lets us have unacknowledged
        self.client_max_packet = client_max_packet
        self.queue: deque[_Out] = deque()
        self.queued_bytes = 0
        self.queued_qos0 = 0
        self.inflight: dict[int, int] = {}  # packet id -> QoS of a message sent to the client
        self.awaiting_rel: set[int] = set()  # QoS 2 packet ids received, before their PUBREL
        self.next_pid = 0
        self.dropped = 0
        self.peak = 0
        self.last_packet = 0.0  #: loop time of the last complete packet received
        self._drainer: asyncio.Task[None] | None = None

    @property
    def client_id(self) -> str:
        return self.info.client_id

    def stats(self) -> SessionStats:
        transport = self.wire.buffered()
        return SessionStats(self.client_id, len(self.queue), self.queued_bytes, transport,
                            self.queued_bytes + transport, self.peak, len(self.inflight),
                            len(self.awaiting_rel), self.dropped, len(self.subs),
                            len(self.aliases))

    def send(self, data: bytes) -> None:
        """A control packet (acks, SUBACK, PINGRESP): straight to the transport; read
        back-pressure (:meth:`writable`) bounds them."""
        if not self.closed:
            self.wire.send(data)

    # -- the outgoing queue --------------------------------------------------------------------
    def deliver(self, pub: m.Publish, qos: int, retain: bool) -> None:
        if self.closed:
            return
        props = tuple((k, v) for k, v in pub.properties
                      if k not in (m.TOPIC_ALIAS, m.SUBSCRIPTION_ID))
        out = m.Publish(pub.topic, pub.payload, qos, retain, False, 0 if qos else None, props)
        data = m.encode_publish(self.level, out)
        if self.client_max_packet is not None and len(data) > self.client_max_packet:
            self.dropped += 1  # [MQTT-3.1.2-25]: discarded, as if delivered
            return
        self._enqueue(_Out(bytearray(data) if qos else data, qos))
        self._pump()

    def _over(self, size: int) -> bool:
        lim = self.limits
        return (len(self.queue) >= lim.max_queued_messages
                or self.queued_bytes + self.wire.buffered() + size > lim.max_queued_bytes)

    def _enqueue(self, out: _Out) -> None:
        size = len(out.data)
        if self.queue or self.wire.full() or (out.qos and len(self.inflight) >= self.window):
            # it has to wait: make room by the policy first
            while self._over(size):
                if self.limits.queue_policy == "disconnect":
                    self.broker._enforce(self, "disconnect", m.QUOTA_EXCEEDED,
                                         f"message queue full ({len(self.queue)} messages, "
                                         f"{self.queued_bytes + self.wire.buffered()} bytes)")
                    self.kill(m.QUOTA_EXCEEDED)
                    return
                if not self._evict(out):
                    self.dropped += 1  # the new message itself
                    return
        elif self.wire.buffered() + size > self.limits.max_queued_bytes:
            self.dropped += 1  # the transport alone holds the bound
            return
        self.queue.append(out)
        self.queued_bytes += size
        self.queued_qos0 += not out.qos
        self._note()

    def _evict(self, new: _Out) -> bool:
        """Drop one queued message to make room for *new*; False when *new* is to go."""
        queue = self.queue
        victim: _Out | None = None
        if self.queued_qos0:
            for i, out in enumerate(queue):
                if not out.qos:
                    victim = out
                    del queue[i]
                    break
        elif not new.qos or not queue:
            return False
        else:
            victim = queue.popleft()
        assert victim is not None
        self.queued_bytes -= len(victim.data)
        self.queued_qos0 -= not victim.qos
        self.dropped += 1
        return True

    def _note(self) -> None:
        now = self.queued_bytes + self.wire.buffered()
        if now > self.peak:
            self.peak = now

    def _pump(self) -> None:
        """Write queued messages while the transport takes them (and the client's inflight
        window allows); else wait for the transport to drain."""
        queue = self.queue
        wire = self.wire
        while queue and not self.closed:
            if wire.full():
                self._start_drain()
                return
            out = queue[0]
            if out.qos:
                if len(self.inflight) >= self.window:
                    return  # a PUBACK/PUBCOMP will pump again
                pid = self._new_pid()
                assert isinstance(out.data, bytearray)
                m.set_packet_id(out.data, pid)
                self.inflight[pid] = out.qos
            queue.popleft()
            self.queued_bytes -= len(out.data)
            self.queued_qos0 -= not out.qos
            wire.send(out.data)
            self._note()

    def _new_pid(self) -> int:
        while True:
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.inflight:
                return self.next_pid

    def _start_drain(self) -> asyncio.Task[None]:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return self._drainer

    async def _drain(self) -> None:
        try:
            await self.wire.drain()
        except (ConnectionError, OSError):
            return
        self._pump()

    async def writable(self) -> None:
        """Wait until the transport is below its high-water mark (read back-pressure; the
        keep-alive watchdog ends a wait that lasts too long)."""
        if self.wire.full() and not self.closed:
            await asyncio.shield(self._start_drain())

    def acked(self, pid: int) -> None:
        if self.inflight.pop(pid, None) is not None:
            self._pump()

    # -- ending --------------------------------------------------------------------------------
    def close(self, reason: int = 0) -> None:
        if self.closed:
            return
        if reason and not self.wire.buffered():
            packet = m.encode_disconnect(self.level, reason)
            if packet is not None:
                self.wire.send(packet)
        self._end()
        self.wire.close()

    def kill(self, reason: int) -> None:
        """End the session now, freeing what its transport holds (a client that does not
        read would never get a DISCONNECT anyway)."""
        if self.closed:
            return
        self._end()
        self.wire.abort()

    def _end(self) -> None:
        self.closed = True
        self.queue.clear()
        self.queued_bytes = self.queued_qos0 = 0
        # a drainer still waiting wakes when the transport is lost, and finds us closed


class _Watchdog:
    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


class _Listening:
    """One bound listener."""

    def __init__(self, config: Listener, server: asyncio.Server, label: str) -> None:
        self.config = config
        self.server = server
        self.label = label


# ==============================================================================================
# The broker


class LabBroker:
    """An MQTT broker on loopback listeners (see the module docstring).

    ``async with LabBroker(Broker(addr="127.0.2.71", port=0, proxy_protocol=True)) as b:``
    starts it (port 0 picks a free port: :attr:`endpoints`); :meth:`close` stops it and closes
    every connection.  *ws_path* is the WebSocket path; *idle_timeout* how long a connection
    may take to send its CONNECT (EMQX's ``idle_timeout``); *limits* what one client may cost
    (:class:`Limits`: packet size, aliases, inflight window, queues, subscriptions,
    connections per listener, retained messages); *history* how many records
    :attr:`history`, :attr:`refused` and :attr:`enforced` keep.

    **Hostile clients.**  Each session's outgoing messages wait in a bounded queue and are
    written only while the client's transport takes them, so a subscriber that never reads
    costs at most ``limits.max_queued_bytes`` (:meth:`stats` shows the accounting); a
    PUBLISH costs the subscriptions that match it (a topic trie, :mod:`realip.lab.topics`);
    every limit is announced in an MQTT 5 CONNACK where MQTT 5 has a property for it.

    **Reserved topics.**  Only the broker publishes under ``$realip/``: a client's PUBLISH
    there (other than the request to ``$realip/whoami``), a will or a Response Topic there, is
    not delivered — an MQTT 5 QoS 1/2 PUBLISH gets PUBACK/PUBREC 0x87 Not authorized, QoS 0
    and MQTT 3.1.1 are acknowledged as usual and dropped, which is what MQTT 3.1.1 §3.3.5
    allows [MQTT-3.3.5-2] and what Mosquitto and EMQX do with an ACL denial.  A client may
    subscribe under ``$realip/`` only to its own answer, ``$realip/whoami/<its client id>``
    (no wildcard); any other filter there gets SUBACK 0x87 (3.1.1: 0x80).

    **TLS listeners.**  An EMQX :class:`~realip.topology.Broker` with ``listener="ssl"`` (MQTT
    over TLS) or ``"wss"`` (WebSocket over TLS) needs *pki* (:class:`realip.lab.pki.LabPKI`):
    its server certificate covers the listener's address and the PKI's ``server_names``, and
    its ``ssl_options`` are the listener's own fields — ``verify`` (``verify_peer`` asks for a
    client certificate), ``fail_if_no_peer_cert`` and ``cacertfile`` (a CA label), so the live
    listener and the simulator read the same settings.  With ``proxy_protocol`` the PROXY
    header is read in clear first (the listener's receiver model: esockd on ssl, ranch on
    wss), then TLS starts on the same connection with the bytes after the header.  Each
    session records, beside its peername, :attr:`ClientInfo.tls` (the real handshake),
    :attr:`ClientInfo.pp2_ssl` (a PROXY v2 SSL TLV, on any listener) and
    :attr:`ClientInfo.username`.  A failed handshake — a bad or missing client certificate,
    bytes that are not TLS (plain MQTT, a PROXY header the listener does not expect), a
    handshake cut short or left unfinished for *handshake_timeout* seconds (EMQX's
    ``ssl_options.handshake_timeout``, 15 s) — is a :class:`Refusal` whose ``reason`` is the
    TLS alert or ``ssl_upgrade_timeout`` / ``closed``.
    """

    def __init__(self, *listeners: Listener, ws_path: str = "/mqtt", idle_timeout: float = 15.0,
                 limits: Limits | None = None, history: int = 1000, pki: LabPKI | None = None,
                 handshake_timeout: float = 15.0) -> None:
        if not listeners:
            raise ConfigurationError("a broker needs at least one listener")
        if limits is not None and not isinstance(limits, Limits):
            raise ConfigurationError(f"limits must be a realip.lab.broker.Limits, not "
                                     f"{type(limits).__name__}")
        for lst in listeners:
            check_loopback(lst.addr)
            if lst.listener not in ("tcp", "ws", "ssl", "wss"):
                raise ConfigurationError(f"listener must be tcp, ws, ssl or wss, not "
                                         f"{lst.listener!r}")
            if lst.listener in ("ssl", "wss"):
                if not isinstance(lst, Broker) or lst.kind != "emqx":
                    raise ConfigurationError(f"{lst.listener} listeners play EMQX's: kind "
                                             "'emqx' only")
                if pki is None:
                    raise ConfigurationError(f"an {lst.listener} listener needs pki= (a "
                                             "realip.lab.pki.LabPKI for its certificate)")
        if handshake_timeout <= 0:
            raise ConfigurationError(f"handshake_timeout must be > 0, not {handshake_timeout!r}")
        self.pki = pki
        self.handshake_timeout = handshake_timeout
        self.listeners = tuple(listeners)
        self.ws_path = ws_path
        self.idle_timeout = idle_timeout
        self.limits = limits if limits is not None else Limits()
        self.endpoints: list[Endpoint] = []
        self.history: deque[ClientInfo] = deque(maxlen=history)
        self.refused: deque[Refusal] = deque(maxlen=history)
        #: limits and rules enforced on sessions (disconnections, refused publishes/filters)
        self.enforced: deque[Enforcement] = deque(maxlen=history)
        self._bound: list[_Listening] = []
        self._sessions: dict[str, _Session] = {}
        self._subs: TopicTree[_Session, int] = TopicTree()
        self._retained: dict[str, m.Publish] = {}
        self._retained_bytes = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)

    # -- queries -------------------------------------------------------------------------------
    def clients(self) -> dict[str, ClientInfo]:
        """The connected clients by client id."""
        return {cid: s.info for cid, s in list(self._sessions.items())}

    def client(self, client_id: str) -> ClientInfo | None:
        """The connected client *client_id*, or the last one of that id that disconnected."""
        s = self._sessions.get(client_id)
        if s is not None:
            return s.info
        for info in reversed(self.history):
            if info.client_id == client_id:
                return info
        return None

    def peername(self, client_id: str) -> str | None:
        """The peername recorded for *client_id* (connected, or the last one seen)."""
        info = self.client(client_id)
        return None if info is None else info.peername

    def stats(self, client_id: str) -> SessionStats | None:
        """What the connected session *client_id* costs now (None when not connected)."""
        s = self._sessions.get(client_id)
        return None if s is None else s.stats()

    @property
    def subscriptions(self) -> TopicTree[Any, int]:
        """The subscription index (read it; the broker owns it): :attr:`TopicTree.visited`
        is the cost of the last PUBLISH's match."""
        return self._subs

    def endpoint(self, index: int = 0) -> tuple[str, int]:
        """``(host, port)`` of listener *index* (its real port when it was configured as 0)."""
        ep = self.endpoints[index]
        return _host_text(ep), ep.port or 0

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> LabBroker:
        """Bind every listener."""
        try:
            for lst in self.listeners:
                await self._bind(lst)
        except BaseException:
            await self.close()
            raise
        return self

    def _context(self, lst: Broker) -> ssl.SSLContext:
        """The server context of an ssl/wss listener: its ssl_options from the listener."""
        assert self.pki is not None
        return self.pki.server_context(lst.addr, verify=lst.verify,
                                       fail_if_no_peer_cert=lst.fail_if_no_peer_cert,
                                       cacertfile=lst.cacertfile)

    async def _bind(self, lst: Listener) -> None:
        rules = lst.access_rules
        ctx = self._context(lst) if isinstance(lst, Broker) and \
            lst.listener in ("ssl", "wss") else None
        header_policy: aio.Policy | aio.PeerPolicy = aio.Policy.SKIP
        if isinstance(lst, SafeListener) and lst.proxy_protocol:
            header_policy = aio.PeerPolicy(lst.trusted, trusted_policy=aio.Policy.REQUIRE,
                                           untrusted_policy=aio.Policy.REJECT)

        def policy(peer: Endpoint) -> aio.Policy:
            if not access_allowed(rules, peer):
                return aio.Policy.DROP
            if isinstance(header_policy, aio.PeerPolicy):
                return header_policy(peer)
            return header_policy

        holder: list[str] = []

        def refused(peer: Endpoint, exc: RealIPError) -> None:
            text = str(exc)
            if isinstance(exc, aio.ProxyPolicyError) and exc.policy is aio.Policy.DROP:
                text = "connection refused by access_rules"
            self.refused.append(Refusal(holder[0] if holder else "", peer, text))

        max_connections = self.limits.max_connections
        open_now = [0]

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if open_now[0] >= max_connections:  # Mosquitto/EMQX: closed at accept
                result: aio.ProxyResult = writer.get_extra_info("proxy_result")
                assert result.peer is not None
                self.refused.append(Refusal(holder[0], result.peer, f"max_connections "
                                            f"({max_connections}) reached on this listener"))
                writer.transport.abort()
                return
            open_now[0] += 1
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await self._serve(lst, holder[0], reader, writer, ctx)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
                pass
            except asyncio.CancelledError:
                pass  # only close() cancels a connection: end it quietly
            except Exception:
                log.exception("connection failed")
            finally:
                open_now[0] -= 1
                if writer.transport.get_write_buffer_size():
                    writer.transport.abort()  # nobody reads it: free it now
                else:
                    writer.close()
                if task is not None:
                    self._tasks.discard(task)

        timeout = lst.proxy_protocol_timeout if isinstance(lst, SafeListener) else 3.0
        server = await aio.start_server(serve, lst.addr, lst.port, policy=policy,
                                        timeout=timeout, on_error=refused, reuse_address=True,
                                        backlog=1024, max_pending=max_connections)
        sockname = server.sockets[0].getsockname()
        ep = aio.endpoint(sockname)
        holder.append(f"{lst.listener}:{_host_text(ep)}:{ep.port}")
        self.endpoints.append(ep)
        self._bound.append(_Listening(lst, server, holder[0]))

    async def close(self) -> None:
        """Stop listening and close every connection."""
        for b in self._bound:
            b.server.close()
        for s in list(self._sessions.values()):
            s.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for b in self._bound:
            await b.server.wait_closed()
        self._bound.clear()

    async def __aenter__(self) -> LabBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ------------------------------------------------------------------------
    async def _serve(self, lst: Listener, label: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, ctx: ssl.SSLContext | None = None) -> None:
        result: aio.ProxyResult = writer.get_extra_info("proxy_result")
        peer = result.peer
        local = result.local
        assert peer is not None and local is not None
        loop = asyncio.get_running_loop()
        buf = bytearray()

        async def more(deadline: float) -> bool:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(reader.read(65536), left)
            buf.extend(chunk)
            return bool(chunk)

        def refuse(text: str, view: HopView | None = None) -> None:
            self.refused.append(Refusal(label, peer, text, view))

        # 1. the PROXY header (EMQX: the listener's receiver model; safe: done by realip.aio)
        hdr = 0
        acc: Acceptance | None = None
        if isinstance(lst, Broker):
            receiver = _receiver(lst)
            if receiver is not None:
                name, version, timeout = receiver
                deadline = loop.time() + timeout
                while True:
                    acc = accepts(name, buf, version=version)
                    if not acc.waiting:
                        break
                    try:
                        if not await more(deadline):
                            refuse(f"connection closed inside the PROXY header ({acc.reason})")
                            return
                    except (TimeoutError, asyncio.TimeoutError):
                        view, _ = listener_decision(_before_tls(lst), peer, local, bytes(buf),
                                                    "")
                        refuse(view.log or f"timeout: {acc.reason}", view)
                        return
                if not acc.accepted:
                    # the decision (and its log line) is the simulator's, on the same bytes
                    view, _ = listener_decision(_before_tls(lst), peer, local, bytes(buf), "")
                    refuse(view.log or acc.reason, view)
                    return
                hdr = acc.consumed or 0
        pp2_ssl = _pp2_ssl(bytes(buf[:hdr])) if hdr else None

        def plain(data: bytes, client_id: str) -> tuple[HopView, str | None]:
            assert isinstance(lst, Broker)
            return listener_decision(lst, peer, local, data, client_id)

        decide: _Decide = plain
        stream: TlsStream | None = None
        if ctx is not None:
            # 2. TLS on the same connection, starting with the bytes after the header
            assert isinstance(lst, Broker) and self.pki is not None
            try:
                stream = await server_handshake(ctx, reader, writer, bytes(buf[hdr:]),
                                                self.handshake_timeout, self.pki.label_of)
            except TlsRefused as exc:
                log.info("%s: %s refused: %s", label, peer, exc)
                self.refused.append(Refusal(label, peer, str(exc), None, exc.reason))
                return
            decide = self._tls_decide(lst, peer, local, bytes(buf[:hdr]), stream)
            stream.start()
            # from here on the connection is the plaintext: ``more`` reads it into a new buffer
            reader, writer = stream.reader, stream.writer
            buf = bytearray()
            hdr = 0
        extra = _Extra(stream.result if stream is not None else None, pp2_ssl)
        deadline = loop.time() + self.idle_timeout
        serve = self._serve_tcp if lst.listener in ("tcp", "ssl") else self._serve_ws
        try:
            await serve(lst, label, result, acc, buf, hdr, more, deadline, reader, writer, refuse,
                        decide, extra)
        except (TimeoutError, asyncio.TimeoutError):
            refuse(f"idle_timeout: no MQTT CONNECT within {self.idle_timeout:g} s")
        finally:
            if stream is not None:
                await stream.stop()

    @staticmethod
    def _tls_decide(lst: Broker, peer: Endpoint, local: Endpoint, clear: bytes,
                    stream: TlsStream) -> Callable[[bytes, str], tuple[HopView, str | None]]:
        """The room's decision on a TLS connection: *clear* (the PROXY header) before the
        handshake, then the session as it really happened, with *data* its first plaintext."""
        facts = stream.result
        alpn = stream.hello.alpn if stream.hello is not None else ()
        kind = "mqtt" if lst.listener == "ssl" else "http"

        def decide(data: bytes, client_id: str) -> tuple[HopView, str | None]:
            session = TlsSession(data, kind, facts.server_name, alpn, facts.protocol,
                                 facts.cert)
            return tls_listener_decision(lst, peer, local, clear, session, client_id)

        return decide

    async def _serve_tcp(self, lst: Listener, label: str, result: aio.ProxyResult,
                         acc: Acceptance | None, buf: bytearray, hdr: int,
                         more: Callable[[float], Awaitable[bool]], deadline: float,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         refuse: Callable[..., None], decide: _Decide, extra: _Extra) -> None:
        peer, local = result.peer, result.local
        assert peer is not None and local is not None
        packets = m.PacketReader(self.limits.max_packet_size)
        fed = hdr
        queued: list[tuple[int, bytes]] = []
        while True:
            if len(buf) > hdr and buf[hdr] != 0x10:
                break  # not a CONNECT: decided below
            try:
                queued += packets.feed(buf[fed:])
            except m.MalformedPacket as exc:
                refuse(f"malformed CONNECT: {exc}")
                return
            fed = len(buf)
            if queued:
                break
            if not await more(deadline):
                return
        connect: m.Connect | None = None
        if queued:
            try:
                packet = m.parse(*queued[0])
            except m.MalformedPacket as exc:
                if exc.code == 0x84:
                    writer.write(m.encode_connack(4, 0x01))
                refuse(f"malformed CONNECT: {exc}")
                return
            if isinstance(packet, m.Connect):
                connect = packet
        client_id = connect.client_id if connect is not None else ""
        # 2. the peername
        if isinstance(lst, Broker):
            view, peername = decide(bytes(buf), client_id)
            if peername is None:
                refuse(view.log or "refused", view)
                return
            sockname = local
            if acc is not None and acc.source is not None and acc.destination is not None:
                sockname = acc.destination
        else:
            source = result.source or peer
            peername = _peername(source)
            sockname = result.destination or local
            view = _safe_view(lst, result, [f"MQTT CONNECT from {client_id}: peername="
                                            f"{peername}"])
        if connect is None:
            refuse("the first packet is not a CONNECT", view)
            return
        wire = _Wire(reader, writer)
        await self._session(wire, connect, queued[1:], packets, peername, _peername(sockname),
                            peer, label, view, extra)

    async def _serve_ws(self, lst: Listener, label: str, result: aio.ProxyResult,
                        acc: Acceptance | None, buf: bytearray, hdr: int,
                        more: Callable[[float], Awaitable[bool]], deadline: float,
                        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        refuse: Callable[..., None], decide: _Decide, extra: _Extra) -> None:
        peer, local = result.peer, result.local
        assert peer is not None and local is not None
        while True:
            end = buf.find(b"\r\n\r\n", hdr)
            if end >= 0:
                end += 4
                break
            if len(buf) - hdr > _MAX_HEAD:
                refuse("HTTP request head too large")
                return
            if not await more(deadline):
                return
        head = bytes(buf[hdr:end])
        decided: tuple[HopView, str | None] | None = None
        if isinstance(lst, Broker):
            view, peername = decide(bytes(buf[:end]), "")
            if peername is None:
                refuse(view.log or "refused", view)
                return
        proto = ServerProtocol(subprotocols=[Subprotocol("mqtt"), Subprotocol("mqttv3.1")],
                               max_size=self.limits.max_packet_size)
        wire = _WsWire(reader, writer, proto)
        proto.receive_data(head)
        request = next((e for e in proto.events_received() if isinstance(e, Request)), None)
        if request is None:
            wire.flush()
            refuse("not a WebSocket upgrade request")
            return
        if isinstance(lst, SafeListener):
            source = result.source or peer
            resolver = _safe_resolver(lst)
            res = resolver(_host_text(source), list(request.headers.raw_items()),
                           peer_port=source.port)
            view = _safe_view(lst, result, [f"client_ip from {_host_text(source)}: "
                                            f"{res.reason}"])
            if not res.ok:
                refuse(f"403: {res.reason}", view)
                proto.send_response(proto.reject(403, f"realip: {res.reason}\n"))
                wire.flush()
                return
            addr = res.addr or ""
            decided = (view, f"{addr}:{res.port if res.port is not None else ''}")
        if request.path.split("?")[0] != self.ws_path:
            response = proto.reject(404, f"no WebSocket endpoint at {request.path}\n")
        else:
            response = proto.accept(request)
        if response.status_code != 101:
            refuse(f"WebSocket handshake refused: {response.status_code} "
                   f"{response.reason_phrase}")
        proto.send_response(response)
        wire.flush()
        if response.status_code != 101:
            return
        if end < len(buf):
            wire.feed(bytes(buf[end:]))
        packets = m.PacketReader(self.limits.max_packet_size)
        queued: list[tuple[int, bytes]] = []
        while not queued:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(wire.recv(), left)
            if not chunk:
                return
            try:
                queued = packets.feed(chunk)
            except m.MalformedPacket as exc:
                refuse(f"malformed packet: {exc}")
                wire.close()
                return
        try:
            connect = m.parse(*queued[0])
        except m.MalformedPacket as exc:
            refuse(f"malformed CONNECT: {exc}")
            wire.close()
            return
        if not isinstance(connect, m.Connect):
            refuse("the first packet is not a CONNECT")
            wire.close()
            return
        if decided is None:
            assert isinstance(lst, Broker)
            decided = decide(bytes(buf[:end]), connect.client_id)
        view, peername = decided
        assert peername is not None
        await self._session(wire, connect, queued[1:], packets, peername, _peername(local),
                            peer, label, view, extra)

    # -- MQTT ----------------------------------------------------------------------------------
    async def _session(self, wire: _Wire, connect: m.Connect, queued: list[tuple[int, bytes]],
                       packets: m.PacketReader, peername: str, sockname: str, peer: Endpoint,
                       label: str, view: HopView, extra: _Extra | None = None) -> None:
        level = connect.level
        client_id = connect.client_id
        lim = self.limits
        props: list[tuple[int, Any]] = lim.connack_properties() if level == 5 else []
        receive_max = m.prop(connect.properties, m.RECEIVE_MAXIMUM)
        client_max_packet = m.prop(connect.properties, m.MAXIMUM_PACKET_SIZE)
        if receive_max == 0 or client_max_packet == 0:  # MQTT 5 §3.1.2.11.3/4
            wire.send(m.encode_connack(level, m.PROTOCOL_ERROR))
            wire.close()
            return
        if not client_id:
            if level != 5 and not connect.clean:
                wire.send(m.encode_connack(level, 0x02))  # identifier rejected
                wire.close()
                return
            client_id = f"realip-{next(self._ids)}"
            if level == 5:
                props.append((m.ASSIGNED_CLIENT_ID, client_id))
        username = view.username if view.username is not None else connect.username
        info = ClientInfo(client_id, peername, sockname, peer, label, level, view,
                          tls=extra.tls if extra is not None else None,
                          pp2_ssl=extra.pp2_ssl if extra is not None else None,
                          username=username)
        old = self._sessions.get(client_id)
        if old is not None:
            old.close(m.SESSION_TAKEN_OVER)
        window = min(receive_max or 65535, lim.max_inflight)
        session = _Session(self, info, level, wire, connect.will, window, client_max_packet)
        self._sessions[client_id] = session
        self.history.append(info)
        wire.send(m.encode_connack(level, 0, False, props))
        clean_exit = False
        loop = asyncio.get_running_loop()
        watchdog = self._keepalive(session, connect.keepalive * 1.5) if connect.keepalive \
            else None
        try:
            for first, body in queued:
                if self._handle(session, m.parse(first, body, level)):
                    clean_exit = True
                    return
            packets.check()  # an error found after the CONNECT, in the same read
            while not session.closed:
                # read back-pressure: a client that does not read its acks is not read either
                await session.writable()
                chunk = await wire.recv()
                if not chunk:
                    return
                got = packets.feed(chunk)
                if got:
                    session.last_packet = loop.time()
                for first, body in got:
                    if self._handle(session, m.parse(first, body, level)):
                        clean_exit = True
                        return
                packets.check()  # an error found after those packets, in the same read
                if got:
                    # a client whose next bytes are already buffered would be served again
                    # without a pause: let the other connections' ready work go first
                    await asyncio.sleep(0)
        except m.MalformedPacket as exc:
            if not session.closed:
                self._enforce(session, "disconnect", exc.code, str(exc))
            session.close(exc.code)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if self._sessions.get(client_id) is session:
                del self._sessions[client_id]
                self.history.append(_disconnected(info))
            for filt in session.subs:
                self._subs.remove(filt, session)
            session.subs.clear()
            if not clean_exit and session.will is not None:
                w = session.will
                will = m.Publish(w.topic, w.payload, w.qos, w.retain, properties=w.properties)
                if self._may_publish(session, w.topic, "will"):
                    self._route(will, None)
            session.close()

    def _keepalive(self, s: _Session, limit: float) -> _Watchdog:
        """Close *s* once no complete packet came for *limit* seconds (1.5 × Keep Alive,
        [MQTT-3.1.2-22]): a timer, not a timeout per read, so a byte costs no timer and a
        packet trickled byte by byte does not keep a session alive."""
        loop = asyncio.get_running_loop()
        dog = _Watchdog()

        def check() -> None:
            if s.closed:
                return
            idle = loop.time() - s.last_packet
            if idle >= limit:
                self._enforce(s, "disconnect", m.KEEP_ALIVE_TIMEOUT, "keep alive timeout")
                s.close(m.KEEP_ALIVE_TIMEOUT)
                return
            dog.handle = loop.call_later(limit - idle, check)

        s.last_packet = loop.time()
        dog.handle = loop.call_later(limit, check)
        return dog

    def _enforce(self, s: _Session, action: Literal["disconnect", "deny-publish",
                                                     "deny-subscribe"],
                 reason: int, detail: str) -> None:
        self.enforced.append(Enforcement(s.client_id, action, reason, detail))
        log.info("%s %s: 0x%02X %s", action, s.client_id, reason, detail)

    def _handle(self, s: _Session, packet: m.Packet) -> bool:
        """Process one packet; True when the client disconnected cleanly."""
        level = s.level
        if isinstance(packet, m.Publish):
            self._on_publish(s, packet)
        elif isinstance(packet, m.Subscribe):
            self._on_subscribe(s, packet)
        elif isinstance(packet, m.Unsubscribe):
            for f in packet.topics:
                if s.subs.pop(f, None) is not None:
                    self._subs.remove(f, s)
            s.send(m.encode_unsuback(level, packet.packet_id, len(packet.topics)))
        elif isinstance(packet, m.Ack):
            ptype = packet.type
            if ptype == m.PacketType.PUBACK:
                s.acked(packet.packet_id)
            elif ptype == m.PacketType.PUBREC:
                if packet.reason >= 0x80:  # the client refused it: the flow ends here
                    s.acked(packet.packet_id)
                else:
                    s.send(m.encode_ack(level, m.PacketType.PUBREL, packet.packet_id))
            elif ptype == m.PacketType.PUBCOMP:
                s.acked(packet.packet_id)
            else:  # PUBREL of a QoS 2 message the client sent
                known = packet.packet_id in s.awaiting_rel
                s.awaiting_rel.discard(packet.packet_id)
                s.send(m.encode_ack(level, m.PacketType.PUBCOMP, packet.packet_id,
                                    0 if known else 0x92))  # 0x92 packet identifier not found
        elif isinstance(packet, m.Disconnect):
            if packet.reason == 0x04:  # disconnect with will message
                return False
            s.will = None
            return True
        elif isinstance(packet, m.Simple):
            if packet.type == m.PacketType.PINGREQ:
                s.send(m.PINGRESP)
            else:
                raise m.MalformedPacket(f"unexpected {packet.type.name}", m.PROTOCOL_ERROR)
        else:  # a second CONNECT
            raise m.MalformedPacket("a second CONNECT", m.PROTOCOL_ERROR)
        return False

    def _may_publish(self, s: _Session, topic: str, what: str) -> bool:
        """Whether a client's message may go to *topic*: nothing under ``$realip/`` (the
        broker's own answers), recorded when refused."""
        if topic.split("/", 1)[0] != RESERVED:
            return True
        self._enforce(s, "deny-publish", m.NOT_AUTHORIZED,
                      f"{what} to {topic[:80]!r}: only the broker publishes under {RESERVED}/")
        return False

    def _on_publish(self, s: _Session, pub: m.Publish) -> None:
        lim = self.limits
        topic = pub.topic
        alias = m.prop(pub.properties, m.TOPIC_ALIAS)
        if alias is not None:
            if alias == 0 or alias > lim.max_topic_alias:
                raise m.MalformedPacket(
                    f"topic alias {alias} but the Topic Alias Maximum announced is "
                    f"{lim.max_topic_alias}", m.TOPIC_ALIAS_INVALID)
            if topic:
                s.aliases[alias] = topic  # at most max_topic_alias entries
            else:
                known = s.aliases.get(alias)
                if known is None:
                    raise m.MalformedPacket(f"topic alias {alias} was never set",
                                            m.PROTOCOL_ERROR)
                topic = known
        if not m.valid_topic(topic):
            raise m.MalformedPacket(f"invalid topic name {topic[:64]!r}", m.PROTOCOL_ERROR)
        if topic.count("/") >= lim.max_topic_levels:
            raise m.MalformedPacket(f"topic name of {topic.count('/') + 1} levels (max_topic_"
                                    f"levels {lim.max_topic_levels})", m.TOPIC_NAME_INVALID)
        pid = pub.packet_id
        if pub.qos == 2 and pid is not None and pid in s.awaiting_rel:
            # a resent QoS 2 PUBLISH (DUP): acknowledged again, delivered once
            s.send(m.encode_ack(s.level, m.PacketType.PUBREC, pid))
            return
        if pub.qos == 2 and len(s.awaiting_rel) >= lim.max_inflight:
            raise m.MalformedPacket(f"more than {lim.max_inflight} QoS 2 PUBLISH without PUBREL "
                                    "(Receive Maximum)", m.RECEIVE_MAXIMUM_EXCEEDED)
        pub = m.Publish(topic, pub.payload, pub.qos, pub.retain, pub.dup, pid, pub.properties)
        whoami = topic == WHOAMI
        if whoami:
            reply_to = _reply_topic(s, pub)
            allowed = _reserved_ok(s, reply_to) or \
                self._may_publish(s, reply_to, "whoami Response Topic")
        else:
            allowed = self._may_publish(s, topic, "PUBLISH")
        # MQTT 5 says no with the ack; MQTT 3.1.1 can only acknowledge [MQTT-3.3.5-2]
        reason = 0 if allowed or s.level != 5 else m.NOT_AUTHORIZED
        if pub.qos == 1 and pid is not None:
            s.send(m.encode_ack(s.level, m.PacketType.PUBACK, pid, reason))
        elif pub.qos == 2 and pid is not None:
            s.send(m.encode_ack(s.level, m.PacketType.PUBREC, pid, reason))
            if not reason:
                s.awaiting_rel.add(pid)
        if not allowed:
            return
        if whoami:
            self._whoami(s, pub)
            return
        self._route(pub, s)

    def _whoami(self, s: _Session, request: m.Publish) -> None:
        topic = _reply_topic(s, request)
        if not _reserved_ok(s, topic):
            return  # another client's answer: refused (and recorded) by _on_publish
        props: tuple[tuple[int, Any], ...] = ()
        correlation = m.prop(request.properties, m.CORRELATION_DATA)
        if correlation is not None and s.level == 5:
            props = ((m.CORRELATION_DATA, correlation),)
        self._route(m.Publish(topic, s.info.peername.encode("utf-8"), properties=props), None)

    def _filter_code(self, s: _Session, filt: str, qos: int) -> int:
        """0 when *s* may subscribe to *filt*, else the SUBACK failure code (MQTT 5)."""
        lim = self.limits
        if len(s.subs) >= lim.max_subscriptions and filt not in s.subs:
            return m.QUOTA_EXCEEDED  # first: the cheapest answer to a subscription flood
        if qos == 3 or not m.valid_filter(filt) or filt.count("/") >= lim.max_topic_levels:
            return m.TOPIC_FILTER_INVALID
        if filt.startswith("$share/"):
            return m.SHARED_NOT_SUPPORTED
        if filt.split("/", 1)[0] == RESERVED:
            own = f"{WHOAMI}/{s.client_id}"
            if filt != own or "+" in filt or "#" in filt:
                self._enforce(s, "deny-subscribe", m.NOT_AUTHORIZED,
                              f"{filt[:80]!r}: under {RESERVED}/ only {own[:80]!r}")
                return m.NOT_AUTHORIZED
        return 0

    def _on_subscribe(self, s: _Session, sub: m.Subscribe) -> None:
        if m.prop(sub.properties, m.SUBSCRIPTION_ID) is not None:
            raise m.MalformedPacket("a Subscription Identifier, which the CONNACK said is not "
                                    "available", m.SUBSCRIPTION_IDS_NOT_SUPPORTED)
        codes = []
        fresh: list[tuple[str, int, bool]] = []
        refused = 0
        subs = s.subs
        full = 0x80 if s.level != 5 else m.QUOTA_EXCEEDED
        for filt, opts in sub.topics:
            if filt not in subs and len(subs) >= self.limits.max_subscriptions:
                codes.append(full)  # a flood past the quota: one dict look-up per filter
                refused += 1
                continue
            qos = opts & 3
            code = self._filter_code(s, filt, qos)
            if code:
                codes.append(0x80 if s.level != 5 else code)
                refused += code == m.QUOTA_EXCEEDED
                continue
            new = filt not in s.subs
            s.subs[filt] = opts if s.level == 5 else qos
            self._subs.add(filt, s, s.subs[filt])
            codes.append(qos)
            fresh.append((filt, s.subs[filt], new))
        if refused:
            self._enforce(s, "deny-subscribe", m.QUOTA_EXCEEDED,
                          f"{refused} filters over max_subscriptions "
                          f"({self.limits.max_subscriptions})")
        s.send(m.encode_suback(s.level, sub.packet_id, codes))
        for filt, opts, new in fresh:
            handling = (opts >> 4) & 3
            if handling == 2 or (handling == 1 and not new):
                continue
            for topic, pub in list(self._retained.items()):
                if m.topic_matches(filt, topic):
                    s.deliver(pub, min(pub.qos, opts & 3), True)

    def _retain(self, pub: m.Publish) -> None:
        lim = self.limits
        old = self._retained.get(pub.topic)
        freed = 0 if old is None else len(old.payload) + len(old.topic)
        if not pub.payload:
            if old is not None:
                del self._retained[pub.topic]
                self._retained_bytes -= freed
            return
        size = len(pub.payload) + len(pub.topic)
        count = len(self._retained) + (old is None)
        if count > lim.max_retained_messages or \
                self._retained_bytes - freed + size > lim.max_retained_bytes:
            log.info("retained message on %r not kept: the retained store is full",
                     pub.topic[:80])
            return
        self._retained[pub.topic] = pub
        self._retained_bytes += size - freed

    def _route(self, pub: m.Publish, sender: _Session | None) -> None:
        if pub.retain:
            self._retain(pub)
        best: dict[_Session, list[int]] = {}
        for s, opts in self._subs.match(pub.topic):
            if opts & 4 and s is sender:  # no local
                continue
            got = best.get(s)
            if got is None:
                best[s] = [opts & 3, opts & 8]
            else:  # overlapping filters: one delivery, the highest QoS [MQTT-3.3.4-2]
                got[0] = max(got[0], opts & 3)
                got[1] |= opts & 8
        for s, (qos, keep) in best.items():
            s.deliver(pub, min(pub.qos, qos), pub.retain and bool(keep))


def _reply_topic(s: _Session, request: m.Publish) -> str:
    """Where a whoami answer goes: the request's Response Topic (MQTT 5), else
    ``$realip/whoami/<client id>``."""
    reply_to = m.prop(request.properties, m.RESPONSE_TOPIC) if s.level == 5 else None
    if reply_to and m.valid_topic(reply_to):
        return str(reply_to)
    return f"{WHOAMI}/{s.client_id}"


def _reserved_ok(s: _Session, topic: str) -> bool:
    """Whether the broker may answer *s* on *topic*: outside ``$realip/``, or *s*'s own."""
    return topic.split("/", 1)[0] != RESERVED or topic == f"{WHOAMI}/{s.client_id}"


@dataclass(frozen=True)
class _Extra:
    """What a session records beside its peername: the TLS handshake, the PROXY v2 SSL TLV."""

    tls: HandshakeResult | None
    pp2_ssl: SSLInfo | None


_Decide = Callable[[bytes, str], tuple[HopView, str | None]]


def _pp2_ssl(header: bytes) -> SSLInfo | None:
    """The SSL TLV of the PROXY v2 header *header* (the bytes the receiver accepted)."""
    if not header.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
        return None
    try:
        decoded = decode(header, verify_crc32c=False)
    except RealIPError:  # the receiver took what the strict codec refuses: no TLV to show
        return None
    return decoded.ssl if decoded is not None else None


def _before_tls(lst: Broker) -> Broker:
    """What reads a PROXY header on an ssl/wss listener: the plain listener's receiver (the
    header comes before the handshake, in clear)."""
    if lst.listener in ("ssl", "wss"):
        return replace(lst, listener="tcp" if lst.listener == "ssl" else "ws")
    return lst


def _disconnected(info: ClientInfo) -> ClientInfo:
    return replace(info, connected=False)


def _receiver(lst: Broker) -> tuple[str, str | None, float] | None:
    """The receiver model, its version and timeout for a listener's PROXY header (or None)."""
    if lst.kind == "mosquitto":
        if lst.version.startswith("2.0") or not lst.enable_proxy_protocol:
            return None
        return "mosquitto", str(lst.enable_proxy_protocol), lst.proxy_protocol_timeout
    if lst.kind == "aedes":  # aedes-protocol-decoder with trustProxy: an optional header
        return ("aedes", None, lst.proxy_protocol_timeout) if lst.trust_proxy else None
    if not lst.proxy_protocol:
        return None
    if lst.listener in ("ws", "wss"):  # cowboy over ranch, TLS or not
        return "emqx-ws", None, _RANCH_TIMEOUT
    return "emqx-tcp", None, lst.proxy_protocol_timeout


_RESOLVERS: dict[tuple[tuple[str, ...], int | None, bool], ClientIP] = {}


def _safe_resolver(lst: SafeListener) -> ClientIP:
    key = (lst.trusted, lst.hops, lst.x_forwarded_port)
    r = _RESOLVERS.get(key)
    if r is None:
        r = _RESOLVERS[key] = ClientIP(lst.trusted, hops=lst.hops,
                                       x_forwarded_port=lst.x_forwarded_port)
    return r


def _safe_view(lst: SafeListener, result: aio.ProxyResult, extra: list[str]) -> HopView:
    decisions = []
    if result.header is not None:
        if result.used:
            decisions.append(f"PROXY header from the trusted peer {result.peer}: client "
                             f"{result.source}")
        else:
            decisions.append("PROXY header without addresses (LOCAL/UNKNOWN): the TCP peer")
    elif lst.proxy_protocol:
        decisions.append(f"no PROXY header expected from {result.peer} (not trusted)")
    decisions += extra
    assert result.peer is not None and result.local is not None
    return HopView(lst.name, f"realip-{lst.listener}", result.peer, result.local, {},
                   tuple(decisions))
