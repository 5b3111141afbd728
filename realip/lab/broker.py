"""A real MQTT broker for the lab: listeners with EMQX's rules, and realip's safe ones.

:class:`LabBroker` serves MQTT 3.1, 3.1.1 and 5.0 over TCP and over WebSocket (path ``/mqtt``,
subprotocol ``mqtt``) — CONNECT, SUBSCRIBE (wildcards, retained messages, QoS 0–2), PUBLISH,
UNSUBSCRIBE, PING, wills — on any number of loopback listeners.  Each listener is configured
with the simulator's own :class:`~realip.topology.Broker` model, and the decision that matters
here — *which peername does this connection get?* — is taken by **the simulator's own code**
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
peername as UTF-8 text (``"127.0.1.86:39817"``).  From Python: :meth:`LabBroker.peername`,
:meth:`LabBroker.clients` (like ``emqx ctl clients list``), :attr:`LabBroker.history` and
:attr:`LabBroker.refused`.

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
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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
from ..proxy_protocol import Endpoint
from ..receivers import Acceptance, accepts
from ..resolve import ClientIP
from . import mqtt as m
from .loopback import check_loopback

__all__ = [
    "WHOAMI",
    "ClientInfo",
    "LabBroker",
    "Refusal",
    "SafeListener",
    "listener_decision",
]

log = logging.getLogger("realip.lab.broker")

#: The topic a client publishes to to learn its peername (answered on ``WHOAMI + "/<id>"``).
WHOAMI = "$realip/whoami"

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


Listener = Broker | SafeListener


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


@dataclass(frozen=True)
class Refusal:
    """A connection the broker closed before a session began."""

    listener: str
    peer: Endpoint
    log: str
    view: HopView | None = None


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

    async def recv(self) -> bytes:
        return await self.reader.read(65536)

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


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

    def send(self, data: bytes) -> None:
        if self.proto.state.name == "OPEN":
            self.proto.send_binary(data)
            self.flush()

    def close(self) -> None:
        if self.proto.state.name == "OPEN":
            self.proto.send_close(1000)
            self.flush()
        self.writer.close()


# ==============================================================================================
# Sessions


@dataclass
class _Session:
    broker: LabBroker
    info: ClientInfo
    level: int
    wire: _Wire
    will: m.Will | None
    subs: dict[str, int] = field(default_factory=dict)
    aliases: dict[int, str] = field(default_factory=dict)
    next_pid: int = 0
    closed: bool = False

    @property
    def client_id(self) -> str:
        return self.info.client_id

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.wire.send(data)

    def deliver(self, pub: m.Publish, qos: int, retain: bool) -> None:
        pid = None
        if qos:
            self.next_pid = self.next_pid % 65535 + 1
            pid = self.next_pid
        props = tuple((k, v) for k, v in pub.properties
                      if k not in (m.TOPIC_ALIAS, m.SUBSCRIPTION_ID))
        out = m.Publish(pub.topic, pub.payload, qos, retain, False, pid, props)
        self.send(m.encode_publish(self.level, out))

    def close(self, reason: int = 0) -> None:
        if self.closed:
            return
        if reason:
            packet = m.encode_disconnect(self.level, reason)
            if packet is not None:
                self.wire.send(packet)
        self.closed = True
        self.wire.close()


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
    may take to send its CONNECT (EMQX's ``idle_timeout``); *max_packet* the largest packet.
    """

    def __init__(self, *listeners: Listener, ws_path: str = "/mqtt", idle_timeout: float = 15.0,
                 max_packet: int = 1 << 20, history: int = 1000) -> None:
        if not listeners:
            raise ConfigurationError("a broker needs at least one listener")
        for lst in listeners:
            check_loopback(lst.addr)
            if lst.listener not in ("tcp", "ws"):
                raise ConfigurationError(f"listener must be tcp or ws, not {lst.listener!r}")
        self.listeners = tuple(listeners)
        self.ws_path = ws_path
        self.idle_timeout = idle_timeout
        self.max_packet = max_packet
        self.endpoints: list[Endpoint] = []
        self.history: deque[ClientInfo] = deque(maxlen=history)
        self.refused: deque[Refusal] = deque(maxlen=history)
        self._bound: list[_Listening] = []
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, m.Publish] = {}
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

    async def _bind(self, lst: Listener) -> None:
        rules = lst.access_rules
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

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await self._serve(lst, holder[0], reader, writer)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, asyncio.TimeoutError):
                pass
            except asyncio.CancelledError:
                pass  # only close() cancels a connection: end it quietly
            except Exception:
                log.exception("connection failed")
            finally:
                writer.close()
                if task is not None:
                    self._tasks.discard(task)

        timeout = lst.proxy_protocol_timeout if isinstance(lst, SafeListener) else 3.0
        server = await aio.start_server(serve, lst.addr, lst.port, policy=policy,
                                        timeout=timeout, on_error=refused, reuse_address=True,
                                        backlog=1024)
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
                     writer: asyncio.StreamWriter) -> None:
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
                        view, _ = listener_decision(lst, peer, local, bytes(buf), "")
                        refuse(view.log or f"timeout: {acc.reason}", view)
                        return
                if not acc.accepted:
                    # the decision (and its log line) is the simulator's, on the same bytes
                    view, _ = listener_decision(lst, peer, local, bytes(buf), "")
                    refuse(view.log or acc.reason, view)
                    return
                hdr = acc.consumed or 0
        deadline = loop.time() + self.idle_timeout
        serve = self._serve_tcp if lst.listener == "tcp" else self._serve_ws
        try:
            await serve(lst, label, result, acc, buf, hdr, more, deadline, reader, writer, refuse)
        except (TimeoutError, asyncio.TimeoutError):
            refuse(f"idle_timeout: no MQTT CONNECT within {self.idle_timeout:g} s")

    async def _serve_tcp(self, lst: Listener, label: str, result: aio.ProxyResult,
                         acc: Acceptance | None, buf: bytearray, hdr: int,
                         more: Callable[[float], Awaitable[bool]], deadline: float,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         refuse: Callable[..., None]) -> None:
        peer, local = result.peer, result.local
        assert peer is not None and local is not None
        packets = m.PacketReader(self.max_packet)
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
            view, peername = listener_decision(lst, peer, local, bytes(buf), client_id)
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
                            peer, label, view)

    async def _serve_ws(self, lst: Listener, label: str, result: aio.ProxyResult,
                        acc: Acceptance | None, buf: bytearray, hdr: int,
                        more: Callable[[float], Awaitable[bool]], deadline: float,
                        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        refuse: Callable[..., None]) -> None:
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
            view, peername = listener_decision(lst, peer, local, bytes(buf[:end]), "")
            if peername is None:
                refuse(view.log or "refused", view)
                return
        proto = ServerProtocol(subprotocols=[Subprotocol("mqtt"), Subprotocol("mqttv3.1")],
                               max_size=self.max_packet)
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
        packets = m.PacketReader(self.max_packet)
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
            decided = listener_decision(lst, peer, local, bytes(buf[:end]), connect.client_id)
        view, peername = decided
        assert peername is not None
        await self._session(wire, connect, queued[1:], packets, peername, _peername(local),
                            peer, label, view)

    # -- MQTT ----------------------------------------------------------------------------------
    async def _session(self, wire: _Wire, connect: m.Connect, queued: list[tuple[int, bytes]],
                       packets: m.PacketReader, peername: str, sockname: str, peer: Endpoint,
                       label: str, view: HopView) -> None:
        level = connect.level
        client_id = connect.client_id
        props: list[tuple[int, Any]] = []
        if not client_id:
            if level != 5 and not connect.clean:
                wire.send(m.encode_connack(level, 0x02))  # identifier rejected
                wire.close()
                return
            client_id = f"realip-{next(self._ids)}"
            if level == 5:
                props.append((m.ASSIGNED_CLIENT_ID, client_id))
        info = ClientInfo(client_id, peername, sockname, peer, label, level, view)
        old = self._sessions.get(client_id)
        if old is not None:
            old.close(0x8E)  # session taken over
        session = _Session(self, info, level, wire, connect.will)
        self._sessions[client_id] = session
        self.history.append(info)
        wire.send(m.encode_connack(level, 0, False, props))
        clean_exit = False
        try:
            for first, body in queued:
                if self._handle(session, m.parse(first, body, level)):
                    clean_exit = True
                    return
            packets.feed(b"")  # an error found after the CONNECT, in the same read
            keepalive = connect.keepalive * 1.5 if connect.keepalive else None
            while not session.closed:
                chunk = await asyncio.wait_for(wire.recv(), keepalive)
                if not chunk:
                    return
                for first, body in packets.feed(chunk):
                    if self._handle(session, m.parse(first, body, level)):
                        clean_exit = True
                        return
        except m.MalformedPacket as exc:
            session.close(exc.code)
        except (TimeoutError, asyncio.TimeoutError):
            session.close(0x8D)  # keep alive timeout
        finally:
            if self._sessions.get(client_id) is session:
                del self._sessions[client_id]
                self.history.append(_disconnected(info))
            if not clean_exit and session.will is not None:
                w = session.will
                self._route(m.Publish(w.topic, w.payload, w.qos, w.retain, properties=w.properties),
                            None)
            session.closed = True
            wire.close()

    def _handle(self, s: _Session, packet: m.Packet) -> bool:
        """Process one packet; True when the client disconnected cleanly."""
        level = s.level
        if isinstance(packet, m.Publish):
            self._on_publish(s, packet)
        elif isinstance(packet, m.Subscribe):
            self._on_subscribe(s, packet)
        elif isinstance(packet, m.Unsubscribe):
            for f in packet.topics:
                s.subs.pop(f, None)
            s.send(m.encode_unsuback(level, packet.packet_id, len(packet.topics)))
        elif isinstance(packet, m.Ack):
            if packet.type == m.PacketType.PUBREC:
                s.send(m.encode_ack(level, m.PacketType.PUBREL, packet.packet_id))
            elif packet.type == m.PacketType.PUBREL:
                s.send(m.encode_ack(level, m.PacketType.PUBCOMP, packet.packet_id))
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

    def _on_publish(self, s: _Session, pub: m.Publish) -> None:
        topic = pub.topic
        alias = m.prop(pub.properties, m.TOPIC_ALIAS)
        if alias is not None:
            if topic:
                s.aliases[alias] = topic
            else:
                topic = s.aliases.get(alias, "")
        if not m.valid_topic(topic):
            raise m.MalformedPacket(f"invalid topic name {topic!r}", m.PROTOCOL_ERROR)
        pub = m.Publish(topic, pub.payload, pub.qos, pub.retain, pub.dup, pub.packet_id,
                        pub.properties)
        if pub.qos == 1 and pub.packet_id is not None:
            s.send(m.encode_ack(s.level, m.PacketType.PUBACK, pub.packet_id))
        elif pub.qos == 2 and pub.packet_id is not None:
            s.send(m.encode_ack(s.level, m.PacketType.PUBREC, pub.packet_id))
        if topic == WHOAMI:
            self._whoami(s, pub)
            return
        self._route(pub, s)

    def _whoami(self, s: _Session, request: m.Publish) -> None:
        reply_to = m.prop(request.properties, m.RESPONSE_TOPIC) if s.level == 5 else None
        props: tuple[tuple[int, Any], ...] = ()
        correlation = m.prop(request.properties, m.CORRELATION_DATA)
        if correlation is not None and s.level == 5:
            props = ((m.CORRELATION_DATA, correlation),)
        topic = reply_to if reply_to and m.valid_topic(reply_to) else f"{WHOAMI}/{s.client_id}"
        self._route(m.Publish(topic, s.info.peername.encode("utf-8"), properties=props), None)

    def _on_subscribe(self, s: _Session, sub: m.Subscribe) -> None:
        codes = []
        fresh: list[tuple[str, int, bool]] = []
        for filt, opts in sub.topics:
            qos = opts & 3
            if qos == 3 or not m.valid_filter(filt):
                codes.append(0x80 if s.level != 5 else 0x8F)
                continue
            if filt.startswith("$share/"):
                codes.append(0x80 if s.level != 5 else 0x9E)
                continue
            new = filt not in s.subs
            s.subs[filt] = opts if s.level == 5 else qos
            codes.append(qos)
            fresh.append((filt, s.subs[filt], new))
        s.send(m.encode_suback(s.level, sub.packet_id, codes))
        for filt, opts, new in fresh:
            handling = (opts >> 4) & 3
            if handling == 2 or (handling == 1 and not new):
                continue
            for topic, pub in list(self._retained.items()):
                if m.topic_matches(filt, topic):
                    s.deliver(pub, min(pub.qos, opts & 3), True)

    def _route(self, pub: m.Publish, sender: _Session | None) -> None:
        if pub.retain:
            if pub.payload:
                self._retained[pub.topic] = pub
            else:
                self._retained.pop(pub.topic, None)
        for s in list(self._sessions.values()):
            best = -1
            keep_retain = False
            for filt, opts in s.subs.items():
                if not m.topic_matches(filt, pub.topic):
                    continue
                if opts & 4 and s is sender:  # no local
                    continue
                best = max(best, opts & 3)
                keep_retain = keep_retain or bool(opts & 8)
            if best >= 0:
                s.deliver(pub, min(pub.qos, best), pub.retain and keep_retain)


def _disconnected(info: ClientInfo) -> ClientInfo:
    return ClientInfo(info.client_id, info.peername, info.sockname, info.peer, info.listener,
                      info.proto_ver, info.view, False)


def _receiver(lst: Broker) -> tuple[str, str | None, float] | None:
    """The receiver model, its version and timeout for a listener's PROXY header (or None)."""
    if lst.kind == "mosquitto":
        if lst.version.startswith("2.0") or not lst.enable_proxy_protocol:
            return None
        return "mosquitto", str(lst.enable_proxy_protocol), lst.proxy_protocol_timeout
    if not lst.proxy_protocol:
        return None
    if lst.listener == "ws":
        return "emqx-ws", None, _RANCH_TIMEOUT
    return "emqx-tcp", None, lst.proxy_protocol_timeout


_RESOLVERS: dict[tuple[tuple[str, ...], int | None], ClientIP] = {}


def _safe_resolver(lst: SafeListener) -> ClientIP:
    key = (lst.trusted, lst.hops)
    r = _RESOLVERS.get(key)
    if r is None:
        r = _RESOLVERS[key] = ClientIP(lst.trusted, hops=lst.hops)
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
