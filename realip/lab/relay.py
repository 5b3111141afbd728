"""The hops of a :class:`~realip.topology.Topology` as live relays on asyncio sockets.

A :class:`HopRelay` listens on its hop's address and port, reads a new connection's first bytes
until the hop's input is complete — the PROXY header if the hop expects one, then the HTTP
request head for ``http`` hops — and runs **the simulator's own hop logic** on them
(:func:`run_hop`).  Then it opens the upstream connection *from the hop's own address* (and,
when pinned, its ``source_port``), so every hop is a distinct peer for the next one, writes the
bytes the hop logic produced, and relays everything else both ways unchanged.  A connection the
hop logic refuses (a rejected header, a request that is not HTTP) is closed, as the real
program closes it; the refusal's log line is in :attr:`HopRelay.views`.

:class:`LiveTopology` starts a whole chain: the broker (:class:`~realip.lab.broker.LabBroker`)
and one relay per hop, on the topology's addresses — which must be loopback addresses (map
the article's addresses with :func:`realip.render.loopback_plan` and
:func:`realip.render.topology_on` first).

**TLS.**  A hop that terminates TLS (``listen … ssl``, ``bind … ssl``) runs a real server
handshake with its certificate from the lab's :class:`~realip.lab.pki.LabPKI` (every lab CA
trusted at the TLS level when it asks for a client certificate), reads the first plaintext,
and hands the step an :class:`~realip.tls.TlsSession` made of what the handshake gave (SNI,
the offered version, the client certificate by its CA's label): the step decides — refusing a
missing or untrusted certificate as the program does, but after the handshake rather than
inside it — and the plaintext is relayed upstream.  ``ssl_preread`` waits for the whole
ClientHello and passes it on; any other hop relays TLS as bytes.

What the relays do not reproduce: timing (nginx and HAProxy decide on their first read, so a
header split across TCP segments is refused by them while the relay waits for all of it), the
TLS alerts a real program sends, the responses (the broker's answer is relayed as it is, and a
refused request is closed without nginx's or HAProxy's 400 page), and requests after the first
one on a connection (an ``http`` hop rewrites the first request head — in the lab, the
WebSocket upgrade — and relays what follows unchanged).  Like nginx's stream module with
``proxy_half_close off``, a connection ends as soon as either side closes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from .. import aio
from ..errors import ConfigurationError
from ..programs import (
    Broker,
    HAProxy,
    Hop,
    HopView,
    Inbound,
    Outbound,
    hop_kind,
    reads_proxy_header,
    step,
    tls_protocols,
)
from ..programs import speaks_http as hop_speaks_http
from ..proxy_protocol import V2_SIGNATURE, Endpoint
from ..tls import ClientHelloInfo, HandshakeResult, TlsSession, read_client_hello
from ..topology import Topology
from ..trust import Trust
from .broker import LabBroker, Limits
from .loopback import check_loopback
from .pki import LabPKI
from .tls_stream import TlsRefused, server_handshake

__all__ = [
    "HopOutput",
    "HopRelay",
    "LiveTopology",
    "Passage",
    "expects_proxy_header",
    "run_hop",
    "speaks_http",
]

_MAX_HEAD = 64 * 1024
#: the TLS versions the relays speak (older ones are not offered by the lab's clients)
_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


# ==============================================================================================
# The simulator's hop logic (the one place this module reaches into realip.topology's private
# API; switch to a public function here when there is one)


@dataclass(frozen=True)
class HopOutput:
    """What a hop does with a connection's first bytes: ``ok`` False when it closes the
    connection; ``data`` the bytes it writes upstream first (``parts`` labelled: ``proxy``,
    ``mqtt``, ``http``); ``view`` its variables and decisions."""

    ok: bool
    data: bytes
    view: HopView
    parts: tuple[tuple[str, bytes], ...] = ()


def run_hop(hop: Hop, peer: Endpoint, local: Endpoint, data: bytes, *,
            upstream: Endpoint | None = None, sender: str = "") -> HopOutput:
    """Run *hop* (its room's step, :func:`realip.programs.step`) for a connection from *peer*
    to *local* whose first bytes are *data*; *upstream* is the address the hop connects to
    (nginx's ``$proxy_host``)."""
    out = step(hop, Inbound(data, peer, local, sender, upstream))
    return HopOutput(bool(out.ok), out.data, out.view, tuple(out.parts))


# ==============================================================================================
# What each hop reads before deciding


def expects_proxy_header(hop: Hop, peer: Endpoint, trust: Trust | None = None) -> bool:
    """Whether *hop* reads a PROXY header from *peer* (``listen … proxy_protocol``,
    ``accept-proxy``, ``expect-proxy layer4 if { src … }``).  *trust* is accepted for
    compatibility; the room compiles its ranges once."""
    return reads_proxy_header(hop, peer)


def speaks_http(hop: Hop) -> bool:
    """Whether *hop* parses HTTP (nginx ``http``, HAProxy ``mode http``)."""
    return hop_speaks_http(hop)


def tls_role(hop: Hop) -> str | None:
    """What *hop* does with a client's TLS: ``terminate`` (nginx ``listen … ssl``, HAProxy
    ``bind … ssl``), ``preread`` (nginx ``ssl_preread on``: it reads the ClientHello and
    passes it on), or None (it relays whatever comes as bytes)."""
    if getattr(hop, "listen_ssl", False) or getattr(hop, "bind_ssl", False):
        return "terminate"
    if getattr(hop, "ssl_preread", False):
        return "preread"
    return None


def asks_client_cert(hop: Hop) -> bool:
    """Whether a terminating *hop* requests a client certificate (nginx
    ``ssl_verify_client`` other than off, HAProxy ``verify optional|required``)."""
    if isinstance(hop, HAProxy):
        return hop.verify in ("optional", "required")
    return str(getattr(hop, "ssl_verify_client", "off")) != "off"


def proxy_header_end(buf: bytes | bytearray, v1_cap: int = 108) -> int | None:
    """Framing only: the length of the PROXY header at the start of *buf* once it is complete
    (through the v1 line's LF, or 16 + the v2 length), 0 when *buf* cannot start a header or a
    v1 line has no LF within *v1_cap* bytes (the hop logic decides on what is there), None when
    more bytes are needed."""
    n = len(buf)
    head = bytes(buf[:12])
    if head == V2_SIGNATURE[: len(head)]:
        if n < 16:
            return None
        total = 16 + ((buf[14] << 8) | buf[15])
        return total if n >= total else None
    if bytes(buf[:5]) == b"PROXY"[: min(n, 5)]:
        lf = bytes(buf[:v1_cap]).find(b"\n")
        if lf >= 0:
            return lf + 1
        return None if n < v1_cap else 0
    return 0


# ==============================================================================================
# The relay


@dataclass(frozen=True)
class Passage:
    """One connection through a relay: who came (``peer``), the first bytes read (``data_in``:
    for a hop that terminates TLS, what came in clear then the first plaintext), what the hop
    wrote upstream first (``data_out``, empty when it refused) and from where (``source``);
    ``handshake`` the real TLS handshake's outcome where the hop terminated TLS."""

    peer: Endpoint
    data_in: bytes
    data_out: bytes
    source: Endpoint | None
    view: HopView
    handshake: HandshakeResult | None = None


class HopRelay:
    """A live relay for one *hop*, connecting to *upstream* (``(host, port)``).

    *pin_source_port* binds the upstream connection to the hop's ``source_port`` (so the next
    hop sees exactly the simulated peer); otherwise only the address is bound.
    *header_timeout* bounds the time to the hop's complete input; *idle_timeout* an idle
    connection (nginx's ``proxy_timeout``); *connect_timeout* the upstream connect.
    :attr:`passages` keeps the last *history* connections.
    """

    def __init__(self, hop: Hop, upstream: tuple[str, int], *, pin_source_port: bool = False,
                 header_timeout: float = 5.0, idle_timeout: float | None = 600.0,
                 connect_timeout: float = 5.0, history: int = 1000,
                 pki: LabPKI | None = None) -> None:
        check_loopback(hop.addr)
        check_loopback(upstream[0])
        self.hop = hop
        self.upstream = (upstream[0], int(upstream[1]))
        self.pin_source_port = pin_source_port
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.pki = pki
        self.passages: deque[Passage] = deque(maxlen=history)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.endpoint: tuple[str, int] | None = None

    @property
    def views(self) -> list[HopView]:
        """The hop's view of each recent connection (decisions, refusals with their log)."""
        return [p.view for p in self.passages]

    async def start(self) -> HopRelay:
        self._server = await asyncio.start_server(self._handle, self.hop.addr, self.hop.port,
                                                  reuse_address=True, backlog=1024)
        sockname = self._server.sockets[0].getsockname()
        self.endpoint = (sockname[0], sockname[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HopRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            # only close() cancels a connection; ending normally keeps asyncio's stream
            # callback (which asks the task for its exception) quiet
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hop = self.hop
        peer = aio.endpoint(writer.get_extra_info("peername"))
        local = aio.endpoint(writer.get_extra_info("sockname"))
        loop = asyncio.get_running_loop()
        buf = bytearray()
        deadline = loop.time() + self.header_timeout

        async def more(limit: float | None) -> bool:
            chunk = await asyncio.wait_for(reader.read(65536), limit)
            buf.extend(chunk)
            return bool(chunk)

        def left() -> float:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            return remaining

        def timed_out(what: str) -> None:
            view = HopView(hop.name, type(hop).__name__, peer, local, {},
                           (f"relay: no complete {what} after {self.header_timeout:g} s",),
                           False, "client timed out")
            self.passages.append(Passage(peer, bytes(buf), b"", None, view))

        pp_end = 0
        expects = expects_proxy_header(hop, peer)
        role = tls_role(hop)
        hello: ClientHelloInfo | bool | None = None
        try:
            if expects:
                cap = hop_kind(hop).header_window  # type: ignore[union-attr]
                while (end := proxy_header_end(buf, cap)) is None:
                    if not await more(left()):
                        return
                pp_end = end
            if role is not None:
                # the ClientHello decides (ssl_preread reads it; a terminating hop hands it to
                # its handshake) — or the bytes are not TLS at all, and the step says what then
                while len(buf) == pp_end or read_client_hello(bytes(buf[pp_end:])) is None:
                    if not await more(left()):
                        return
            if role == "terminate":
                hello = read_client_hello(bytes(buf[pp_end:]))
                cut = len(buf)  # not TLS: the step refuses it as the program does
            elif speaks_http(hop) and role is None:
                while True:
                    first = buf[pp_end] if len(buf) > pp_end else None
                    if first is not None and (first >= 0x7F or (first < 0x20 and
                                                                 first not in b"\r\n")):
                        # no request line starts so (a ClientHello, an MQTT packet): nginx and
                        # HAProxy refuse on their first read, the step says how
                        cut = len(buf)
                        break
                    i = buf.find(b"\r\n\r\n", pp_end)
                    if i >= 0:
                        cut = i + 4
                        break
                    if len(buf) - pp_end > _MAX_HEAD:
                        cut = len(buf)
                        break
                    if not await more(left()):
                        return
            else:
                if len(buf) == pp_end == 0 and not await more(self.idle_timeout):
                    return  # closed without a byte: nothing to relay
                cut = len(buf)
        except (TimeoutError, asyncio.TimeoutError):
            timed_out("PROXY header" if expects and not pp_end else "input")
            return
        if isinstance(hello, ClientHelloInfo):
            await self._terminate(reader, writer, buf, pp_end, hello, peer, local,
                                  max(deadline - loop.time(), 0.001))
            return
        data, rest = bytes(buf[:cut]), bytes(buf[cut:])
        up_host, up_port = self.upstream
        out = run_hop(hop, peer, local, data, upstream=Endpoint(ip_address(up_host), up_port))
        if not out.ok:
            self.passages.append(Passage(peer, data, b"", None, out.view))
            writer.transport.abort()
            return
        sport = hop.source_port if self.pin_source_port else 0
        try:
            up_reader, up_writer = await self._connect(sport)
        except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
            view = HopView(out.view.name, out.view.kind, peer, local, out.view.variables,
                           (*out.view.decisions, f"relay: upstream {up_host}:{up_port} "
                            f"unreachable ({exc!r})"), False, "connect() failed")
            self.passages.append(Passage(peer, data, b"", None, view))
            return
        source = aio.endpoint(up_writer.get_extra_info("sockname"))
        self.passages.append(Passage(peer, data, out.data, source, out.view))
        try:
            up_writer.write(out.data + rest)
            await self._pipe_both(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    # -- TLS ---------------------------------------------------------------------------------
    def _server_context(self) -> ssl.SSLContext:
        """The hop's server side: its certificate from the lab PKI (the key type of its
        ``ssl_key``), the highest version its program enables, and — when it asks for a client
        certificate — every lab CA trusted at the TLS level, so that the *step* decides by the
        certificate's CA label (``ssl_client_certificate`` / ``ca-file``), as the program
        does with its one CA file."""
        hop = self.hop
        if self.pki is None:
            raise ConfigurationError(f"{hop.name} terminates TLS: the relay needs pki= (a "
                                     "realip.lab.pki.LabPKI)")
        key = str(getattr(hop, "ssl_key", "EC256"))
        issued = self.pki.server(hop.addr, key_type="rsa" if key.startswith("RSA") else "ec")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # the program's enabled versions (nginx: ssl_protocols or the version's default): the
        # relay's real handshake offers the same range, so a client the program refuses is
        # refused here too
        enabled = [v for v in tls_protocols(hop) if v in _TLS_VERSIONS]
        if enabled:
            ctx.minimum_version = _TLS_VERSIONS[min(enabled)]
            ctx.maximum_version = _TLS_VERSIONS[max(enabled)]
        ctx.load_cert_chain(issued.chain_file, issued.key_file)
        if asks_client_cert(hop):
            ctx.verify_mode = ssl.CERT_OPTIONAL
            for label in self.pki.ca_labels:
                ctx.load_verify_locations(cafile=self.pki.ca_file(label))
        return ctx

    async def _terminate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         buf: bytearray, pp_end: int, hello: ClientHelloInfo, peer: Endpoint,
                         local: Endpoint, limit: float) -> None:
        """Terminate the client's TLS (a real handshake), read the first plaintext (the
        MQTT CONNECT, or the whole request head of an http hop), let the hop's step decide on
        the session the handshake gave, and relay the plaintext upstream."""
        assert self.pki is not None
        hop = self.hop
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit

        def refused(log: str, decisions: tuple[str, ...] = ()) -> None:
            view = HopView(hop.name, type(hop).__name__, peer, local, {},
                           (*decisions, f"relay: {log}"), False, log)
            self.passages.append(Passage(peer, bytes(buf), b"", None, view))

        try:
            ts = await server_handshake(self._server_context(), reader, writer,
                                        bytes(buf[pp_end:]), limit, self.pki.label_of)
        except TlsRefused as exc:
            refused(str(exc))
            writer.transport.abort()
            return
        ts.start()
        try:
            plain = bytearray()
            http = speaks_http(hop)
            try:
                while (b"\r\n\r\n" not in plain) if http else not plain:
                    if len(plain) > _MAX_HEAD:
                        break
                    chunk = await asyncio.wait_for(ts.reader.read(65536),
                                                   max(deadline - loop.time(), 0.001))
                    if not chunk:
                        refused("closed after the TLS handshake, before any data")
                        return
                    plain += chunk
            except (TimeoutError, asyncio.TimeoutError):
                refused(f"no complete input inside TLS after {self.header_timeout:g} s")
                return
            cut = plain.find(b"\r\n\r\n") + 4 if http and b"\r\n\r\n" in plain \
                else len(plain)
            first, rest = bytes(plain[:cut]), bytes(plain[cut:])
            result = ts.result
            session = TlsSession(first, "http" if first[:4] == b"GET " else "mqtt",
                                 server_name=result.server_name, alpn=hello.alpn,
                                 version=hello.version if hello.version in
                                 ("TLSv1.3", "TLSv1.2") else "TLSv1.2",
                                 cert=result.cert)
            up_host, up_port = self.upstream
            out = step(hop, Inbound(bytes(buf[:pp_end]), peer, local, "",
                                    Endpoint(ip_address(up_host), up_port), tls=session))
            if not out.ok:
                self.passages.append(Passage(peer, bytes(buf[:pp_end]) + first, b"", None,
                                             out.view, result))
                ts.transport.abort()
                return
            await self._forward(out, bytes(buf[:pp_end]) + first, rest, peer, local,
                                ts.reader, ts.writer, result)
        finally:
            await ts.stop()

    async def _forward(self, out: Outbound, data: bytes, rest: bytes, peer: Endpoint,
                       local: Endpoint, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter,
                       handshake: HandshakeResult | None = None) -> None:
        """Open the upstream connection (TLS when the step opens one: ``proxy_ssl``), write
        what the step produced and *rest*, then relay both ways."""
        up_host, up_port = self.upstream
        sport = self.hop.source_port if self.pin_source_port else 0
        ctx: ssl.SSLContext | None = None
        clear = b""
        if out.tls is not None:
            # proxy_ssl: the PROXY header in clear, then a TLS connection of its own (no SNI,
            # no client certificate, the upstream's certificate not verified: nginx's default
            # proxy_ssl_verify off)
            clear = b"".join(p for k, p in out.parts if k == "proxy")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            up_reader, up_writer = await self._connect(sport, clear, ctx)
        except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
            view = HopView(out.view.name, out.view.kind, peer, local, out.view.variables,
                           (*out.view.decisions, f"relay: upstream {up_host}:{up_port} "
                            f"unreachable ({exc!r})"), False, "connect() failed")
            self.passages.append(Passage(peer, data, b"", None, view, handshake))
            return
        source = aio.endpoint(up_writer.get_extra_info("sockname"))
        self.passages.append(Passage(peer, data, out.data, source, out.view, handshake))
        try:
            up_writer.write((out.tls.plaintext if out.tls is not None else out.data) + rest)
            await self._pipe_both(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _connect(self, sport: int, clear: bytes = b"", tls: ssl.SSLContext | None = None,
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The upstream connection from the hop's address (and *sport*); with *tls*, *clear*
        goes first in clear, then the TLS handshake."""
        up_host, up_port = self.upstream
        family = socket.AF_INET6 if ":" in self.hop.addr else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.hop.addr, sport))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (up_host, up_port)),
                                   self.connect_timeout)
            if tls is None:
                return await asyncio.open_connection(sock=sock)
            if clear:
                await loop.sock_sendall(sock, clear)
            return await asyncio.wait_for(
                asyncio.open_connection(sock=sock, ssl=tls, server_hostname=""),
                self.connect_timeout)
        except BaseException:
            sock.close()
            raise

    async def _pipe_both(self, a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                         b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
        idle = self.idle_timeout

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while True:
                data = await asyncio.wait_for(src.read(65536), idle)
                if not data:
                    return
                dst.write(data)
                await dst.drain()

        tasks = [asyncio.ensure_future(pipe(a_reader, b_writer)),
                 asyncio.ensure_future(pipe(b_reader, a_writer))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            # On 3.11 wait_for() can swallow a cancel when data arrives at the same moment;
            # aborting both connections ends any read still pending, so the gather returns.
            for w in (a_writer, b_writer):
                w.transport.abort()
            await asyncio.gather(*tasks, return_exceptions=True)


# ==============================================================================================
# A whole topology


class LiveTopology:
    """A topology running for real: its broker (:class:`~realip.lab.broker.LabBroker` with the
    topology's listener) and a :class:`HopRelay` per hop, each on its own (loopback) address
    and port, every hop's upstream connection leaving from its ``source_port`` (pinned by
    default, so the peernames match :func:`~realip.topology.simulate` exactly).  A topology
    that uses TLS needs *pki* (:class:`~realip.lab.pki.LabPKI`) for the broker's ssl/wss
    listeners and the hops that terminate TLS.

    ``async with LiveTopology(topology_on(topo, loopback_plan(topo), ports)) as live:`` then
    connect the client to ``live.entry`` from the client's address.  *limits* goes to the
    broker (:class:`~realip.lab.broker.Limits`).
    """

    def __init__(self, topology: Topology, *, pin_source_ports: bool = True,
                 extra_listeners: Sequence[Broker] = (), limits: Limits | None = None,
                 pki: LabPKI | None = None, **relay_options: Any) -> None:
        self.topology = topology
        check_loopback(topology.client.addr)
        self.broker = LabBroker(topology.broker, *extra_listeners, limits=limits, pki=pki)
        nodes: list[Hop | Broker] = [*topology.hops, topology.broker]
        self.relays = [HopRelay(h, (nodes[i + 1].addr, nodes[i + 1].port),
                                pin_source_port=pin_source_ports, pki=pki, **relay_options)
                       for i, h in enumerate(topology.hops)]

    @property
    def entry(self) -> tuple[str, int]:
        """Where the client connects: the first hop (or the broker)."""
        first = self.topology.hops[0] if self.topology.hops else self.topology.broker
        return first.addr, first.port

    def relay(self, name: str) -> HopRelay:
        for r in self.relays:
            if r.hop.name == name:
                return r
        raise KeyError(name)

    async def start(self) -> LiveTopology:
        try:
            await self.broker.start()
            for r in reversed(self.relays):
                await r.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for r in self.relays:
            await r.close()
        await self.broker.close()

    async def __aenter__(self) -> LiveTopology:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

