"""realip.aio on real loopback sockets: headers whole, split and byte by byte, LOCAL, policies,
deadlines, refusals with their reasons, and 200 bad connections that never stop good ones.

Every test runs its own event loop under a hard timeout and closes what it opened; the server
listens on 127.0.3.1, clients come from their own 127.0.3.x addresses.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from realip import InvalidProxyHeader, Reason
from realip.aio import (
    PeerPolicy,
    Policy,
    ProxyPolicyError,
    ProxyProtocolFactory,
    ProxyResult,
    endpoint,
    read_proxy_header,
    start_server,
)
from realip.proxy_protocol import V2_SIGNATURE, Command, Endpoint, build

HOST = "127.0.3.1"
PAYLOAD = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" + b"after the header"
V1 = build(("198.51.100.7", 56324), ("203.0.113.1", 1883), version=1)
V2 = build(("198.51.100.7", 56324), ("203.0.113.1", 1883), version=2, crc32c=True,
           tlvs=[(0x01, b"mqtt")])
V2_LOCAL = build(None, None, version=2, command=Command.LOCAL)
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def run(timeout: float = 10.0) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Run an async test in its own loop, bounded by *timeout* seconds."""
    def wrap(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        @functools.wraps(fn)
        def sync(*args: Any, **kwargs: Any) -> None:
            asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))
        return sync
    return wrap


class Recorder:
    """A Streams callback that records what the application sees: peername, result, bytes."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ProxyResult, bytes]] = []
        self.errors: list[tuple[Endpoint, Exception]] = []
        self.event = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await asyncio.wait_for(reader.read(), 5)
            self.seen.append((writer.get_extra_info("peername"),
                              writer.get_extra_info("proxy_result"), data))
            writer.write(b"ok")
            await writer.drain()
        finally:
            writer.close()
            self.event.set()

    def on_error(self, peer: Endpoint, exc: Exception) -> None:
        self.errors.append((peer, exc))
        self.event.set()

    async def wait(self, n: int, what: str = "seen") -> None:
        while len(getattr(self, what)) < n:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 5)


async def serve(rec: Recorder, **options: Any) -> asyncio.Server:
    options.setdefault("timeout", 2.0)
    return await start_server(rec, HOST, 0, on_error=rec.on_error, backlog=1024, **options)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def send(port: int, chunks: list[bytes], *, source: str = "127.0.3.9",
               pause: float = 0.0, eof: bool = True) -> bytes:
    """Connect from *source*, write *chunks* (one segment each when *pause*), half-close, and
    return what the server answered (b"" when it closed the connection)."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    try:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    except OSError:  # reset, or shut down before we wrote
        return b""
    finally:
        writer.close()


def splits(data: bytes) -> list[list[bytes]]:
    """Whole, every two-piece split, and byte by byte."""
    out = [[data]]
    out += [[data[:i], data[i:]] for i in range(1, len(data))]
    out.append([bytes([b]) for b in data])
    return out


# -- whole, split, byte by byte --------------------------------------------------------------


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
@run(30)
async def test_header_in_every_split_payload_intact(header: bytes) -> None:
    rec = Recorder()
    server = await serve(rec)
    try:
        port = port_of(server)
        cases = splits(header + PAYLOAD[:4])
        for i, chunks in enumerate(cases):
            chunks[-1] += PAYLOAD[4:]
            pause = 0.001 if len(chunks) > 2 else 0.0
            assert await send(port, chunks, pause=pause) == b"ok"
            await rec.wait(i + 1)
        assert not rec.errors
        for peername, result, data in rec.seen:
            assert peername == ("198.51.100.7", 56324)
            assert data == PAYLOAD
            assert result.used and result.peer is not None
            assert str(result.peer.host) == "127.0.3.9"
            assert result.destination == Endpoint(result.header.destination.host, 1883)  # type: ignore[union-attr]
        assert server.proxy_factory.stats["proxied"] == len(cases)  # type: ignore[attr-defined]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
@pytest.mark.parametrize("how", ["whole", "split", "bytes"])
@run()
async def test_read_proxy_header_takes_exactly_the_header(header: bytes, how: str) -> None:
    got: list[tuple[ProxyResult, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            result = await read_proxy_header(reader, writer, timeout=2)
            got.append((result, await asyncio.wait_for(reader.read(), 5)))
        finally:
            writer.close()

    server = await asyncio.start_server(handler, HOST, 0)
    try:
        data = header + PAYLOAD
        chunks = {"whole": [data], "split": [data[:7], data[7:20], data[20:]],
                  "bytes": [bytes([b]) for b in data]}[how]
        await send(port_of(server), chunks, pause=0.001 if how != "whole" else 0)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        result, rest = got[0]
        assert rest == PAYLOAD
        assert result.source == Endpoint(result.header.source.host, 56324)  # type: ignore[union-attr]
        assert result.peer is not None and str(result.peer.host) == "127.0.3.9"
    finally:
        server.close()
        await server.wait_closed()


# -- LOCAL and UNKNOWN -------------------------------------------------------------------------


@pytest.mark.parametrize("header", [V2_LOCAL, V1_UNKNOWN], ids=["v2-local", "v1-unknown"])
@run()
async def test_local_health_check_keeps_real_addresses(header: bytes) -> None:
    rec = Recorder()
    server = await serve(rec)
    try:
        assert await send(port_of(server), [header + b"ping"], source="127.0.3.10") == b"ok"
        await rec.wait(1)
        peername, result, data = rec.seen[0]
        assert peername[0] == "127.0.3.10" and data == b"ping"
        assert result.is_local and not result.used and not result.proxied
        assert result.source == result.peer
        assert server.proxy_factory.stats["local"] == 1  # type: ignore[attr-defined]
        assert not rec.errors
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_connect_and_close_is_a_quiet_health_check() -> None:
    rec = Recorder()
    server = await serve(rec)
    try:
        assert await send(port_of(server), []) == b""
        for _ in range(100):
            if server.proxy_factory.stats["empty"]:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        assert server.proxy_factory.stats["empty"] == 1  # type: ignore[attr-defined]
        assert not rec.errors and not rec.seen
    finally:
        server.close()
        await server.wait_closed()


# -- policies ----------------------------------------------------------------------------------


TRUSTED = "127.0.3.20"
UNTRUSTED = "127.0.3.30"


@run()
async def test_require_for_trusted_reject_for_others() -> None:
    rec = Recorder()
    server = await serve(rec, policy=PeerPolicy([f"{TRUSTED}/32"]))
    port = port_of(server)
    try:
        # trusted proxy: header honoured
        assert await send(port, [V1 + b"a"], source=TRUSTED) == b"ok"
        # trusted proxy without a header: refused (REQUIRE)
        assert await send(port, [b"\x10\x0chello"], source=TRUSTED) == b""
        # direct client without a header: allowed, its own address
        assert await send(port, [b"\x10\x0cdirect"], source=UNTRUSTED) == b"ok"
        # direct client forging a header: refused (REJECT)
        assert await send(port, [V1 + b"forged"], source=UNTRUSTED) == b""
        await rec.wait(2)
        await rec.wait(2, "errors")
        by_data = {d: (p, r) for p, r, d in rec.seen}
        assert by_data[b"a"][0] == ("198.51.100.7", 56324)
        assert by_data[b"\x10\x0cdirect"][0][0] == UNTRUSTED
        assert by_data[b"\x10\x0cdirect"][1].policy is Policy.REJECT
        reasons = sorted(type(e).__name__ for _, e in rec.errors)
        assert reasons == ["InvalidProxyHeader", "ProxyPolicyError"]
        bad = {str(p.host): e for p, e in rec.errors}
        assert isinstance(bad[TRUSTED], InvalidProxyHeader)
        assert bad[TRUSTED].reason is Reason.NOT_PROXY
        assert isinstance(bad[UNTRUSTED], ProxyPolicyError)
        assert bad[UNTRUSTED].policy is Policy.REJECT
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("policy", [Policy.IGNORE, Policy.SKIP])
@run()
async def test_ignore_strips_skip_passes(policy: Policy) -> None:
    rec = Recorder()
    server = await serve(rec, policy=policy)
    try:
        assert await send(port_of(server), [V2 + b"data"], source=UNTRUSTED) == b"ok"
        await rec.wait(1)
        peername, result, data = rec.seen[0]
        assert peername[0] == UNTRUSTED and not result.used
        if policy is Policy.IGNORE:
            assert data == b"data" and result.header is not None
        else:
            assert data == V2 + b"data" and result.header is None
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_optional_for_trusted_peers() -> None:
    rec = Recorder()
    policy = PeerPolicy(["127.0.3.0/24"], trusted_policy=Policy.OPTIONAL,
                        untrusted_policy=Policy.REJECT)
    server = await serve(rec, policy=policy)
    port = port_of(server)
    try:
        # a short direct first packet that is a prefix of neither signature goes through at once
        assert await send(port, [b"\x10"], source=TRUSTED, eof=True) == b"ok"
        assert await send(port, [V1[:1], V1[1:] + b"x"], source=TRUSTED, pause=0.001) == b"ok"
        # "PR" then a byte that cannot continue "PROXY": no header, all three bytes delivered
        assert await send(port, [b"PR", b"!"], source=TRUSTED, pause=0.001) == b"ok"
        await rec.wait(3)
        datas = sorted(d for _, _, d in rec.seen)
        assert datas == [b"\x10", b"PR!", b"x"]
        proxied = next(p for p, _, d in rec.seen if d == b"x")
        assert proxied == ("198.51.100.7", 56324)
    finally:
        server.close()
        await server.wait_closed()


def test_optional_for_everybody_warns() -> None:
    with pytest.warns(UserWarning, match="forge"):
        ProxyProtocolFactory(asyncio.Protocol, policy=Policy.OPTIONAL)
    with pytest.warns(UserWarning, match="forge"):
        PeerPolicy([], untrusted_policy=Policy.OPTIONAL)


@run()
async def test_drop_closes_before_reading() -> None:
    rec = Recorder()
    server = await serve(rec, policy=lambda peer: Policy.DROP if str(peer.host) == UNTRUSTED
                         else Policy.SKIP)
    try:
        assert await send(port_of(server), [b"x"], source=UNTRUSTED) == b""
        assert await send(port_of(server), [b"y"], source=TRUSTED) == b"ok"
        await rec.wait(1, "errors")
        assert server.proxy_factory.stats["dropped"] == 1  # type: ignore[attr-defined]
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_a_failing_policy_drops_only_its_connection() -> None:
    rec = Recorder()
    calls = []

    def policy(peer: Endpoint) -> Policy:
        calls.append(peer)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return Policy.SKIP

    server = await serve(rec, policy=policy)
    try:
        assert await send(port_of(server), [b"x"]) == b""
        assert await send(port_of(server), [b"y"]) == b"ok"
    finally:
        server.close()
        await server.wait_closed()


# -- refusals with their reason ----------------------------------------------------------------


BAD = {
    "garbage": ([b"GET / HTTP/1.1\r\n\r\n"], Reason.NOT_PROXY),
    "v1-too-long": ([b"PROXY UNKNOWN " + b"1" * 120], Reason.V1_TOO_LONG),
    "v1-bad-port": ([b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"], Reason.V1_BAD_PORT),
    "v2-too-large": ([V2_SIGNATURE + b"\x21\x11\x20\x00"], Reason.V2_TOO_LARGE),
    "v2-bad-crc": ([V2[:-1] + bytes([V2[-1] ^ 1])], Reason.CRC32C_MISMATCH),
    "truncated": ([V1[:20]], Reason.TRUNCATED),
    "truncated-v2": ([V2[:30]], Reason.TRUNCATED),
}


@pytest.mark.parametrize("name", sorted(BAD))
@run()
async def test_bad_headers_refused_with_reason(name: str) -> None:
    chunks, reason = BAD[name]
    rec = Recorder()
    server = await serve(rec)
    try:
        assert await send(port_of(server), chunks) == b""
        await rec.wait(1, "errors")
        exc = rec.errors[0][1]
        assert isinstance(exc, InvalidProxyHeader) and exc.reason is reason
        assert server.proxy_factory.stats[reason.value] == 1  # type: ignore[attr-defined]
        assert not rec.seen
    finally:
        server.close()
        await server.wait_closed()


async def _reading_server(errors: list[InvalidProxyHeader], timeout: float) -> asyncio.Server:
    """A Streams server whose handler calls read_proxy_header and records what it raises."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_proxy_header(reader, writer, timeout=timeout)
        except InvalidProxyHeader as exc:
            errors.append(exc)
        finally:
            writer.close()

    return await asyncio.start_server(handler, HOST, 0)


@pytest.mark.parametrize("name", sorted(BAD))
@run()
async def test_read_proxy_header_reasons(name: str) -> None:
    chunks, reason = BAD[name]
    errors: list[InvalidProxyHeader] = []
    server = await _reading_server(errors, timeout=2)
    try:
        await send(port_of(server), chunks)
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.01)
        assert isinstance(errors[0], InvalidProxyHeader) and errors[0].reason is reason
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_slow_loris_hits_the_deadline() -> None:
    rec = Recorder()
    server = await serve(rec, timeout=0.5)
    try:
        start = time.monotonic()
        # one byte per 100 ms: the header would take 3.5 s
        try:
            answer = await send(port_of(server), [bytes([b]) for b in V1], pause=0.1, eof=False)
            assert answer == b""
        except ConnectionError:
            pass  # the server closed while we were still writing: the verdict is checked below
        await rec.wait(1, "errors")
        elapsed = time.monotonic() - start
        exc = rec.errors[0][1]
        assert isinstance(exc, InvalidProxyHeader) and exc.reason is Reason.TIMEOUT
        assert 0.4 < elapsed < 2.0
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_read_proxy_header_deadline() -> None:
    errors: list[InvalidProxyHeader] = []
    started = time.monotonic()
    server = await _reading_server(errors, timeout=0.4)
    try:
        _, writer = await asyncio.open_connection(HOST, port_of(server))
        try:
            for b in V1:
                writer.write(bytes([b]))
                await writer.drain()
                if errors:
                    break
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass
        finally:
            writer.close()
        assert errors and errors[0].reason is Reason.TIMEOUT
        assert time.monotonic() - started < 2.0
    finally:
        server.close()
        await server.wait_closed()


@run()
async def test_max_pending_sheds_load() -> None:
    rec = Recorder()
    server = await serve(rec, max_pending=2, timeout=1.0)
    port = port_of(server)
    held = []
    try:
        for _ in range(2):
            _, w = await asyncio.open_connection(HOST, port)
            w.write(b"PROXY")
            await w.drain()
            held.append(w)
        await asyncio.sleep(0.05)
        assert await send(port, [V1 + b"x"]) == b""
        assert server.proxy_factory.stats["overload"] == 1  # type: ignore[attr-defined]
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


# -- Protocol style ----------------------------------------------------------------------------


class Inner(asyncio.Protocol):
    instances: ClassVar[list[Inner]] = []

    def __init__(self) -> None:
        self.peername: Any = None
        self.result: ProxyResult | None = None
        self.data = b""
        self.eof = False
        Inner.instances.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peername = transport.get_extra_info("peername")
        self.result = transport.get_extra_info("proxy_result")

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof = True
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.write(b"bye")
        self.transport.close()
        return True


class BufferedInner(asyncio.BufferedProtocol):
    instances: ClassVar[list[BufferedInner]] = []

    def __init__(self) -> None:
        self.buf = bytearray(3)  # tiny on purpose: the trailing bytes need several calls
        self.data = b""
        BufferedInner.instances.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data += bytes(self.buf[:nbytes])

    def eof_received(self) -> bool:
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.close()
        return True


@pytest.mark.parametrize("inner", [Inner, BufferedInner])
@run()
async def test_protocol_style_hands_over_trailing_bytes(inner: type) -> None:
    inner.instances = []
    loop = asyncio.get_running_loop()
    factory = ProxyProtocolFactory(inner, timeout=2)
    server = await loop.create_server(factory, HOST, 0)
    try:
        await send(port_of(server), [V2 + PAYLOAD[:10], PAYLOAD[10:]], pause=0.01)
        for _ in range(100):
            if inner.instances and inner.instances[0].data == PAYLOAD:
                break
            await asyncio.sleep(0.01)
        got = inner.instances[0]
        assert got.data == PAYLOAD
        if inner is Inner:
            assert got.peername == ("198.51.100.7", 56324)
            assert got.result.used
            assert got.transport.get_extra_info("real_peername")[0] == "127.0.3.9"
            assert got.transport.get_extra_info("sockname") == ("203.0.113.1", 1883)
    finally:
        server.close()
        await server.wait_closed()


def test_exact_reads_never_pass_the_end_of_a_valid_header() -> None:
    """read_proxy_header's read sizes, on every valid vector: never a byte past the header."""
    import json
    from pathlib import Path

    from realip.aio import _want
    from realip.proxy_protocol import V2_MAX_SIZE, decode

    vectors = json.loads((Path(__file__).parent / "vectors" / "proxy_protocol_valid.json")
                         .read_text())
    checked = 0
    for case in vectors:
        data = bytes.fromhex(case["hex"])
        header = decode(data + b"\x00", verify_crc32c=False, max_v2_size=V2_MAX_SIZE)
        assert header is not None
        got = b""
        while len(got) < header.size:
            step = _want(got)
            assert step >= 1 and len(got) + step <= header.size, (case["name"], got, step)
            got = data[: len(got) + step]
        checked += 1
    assert checked >= 35


def test_endpoint_spellings() -> None:
    assert str(endpoint(("127.0.0.1", 5))) == "127.0.0.1:5"
    assert str(endpoint(("::1", 5, 0, 0))) == "[::1]:5"
    assert endpoint("/tmp/sock").host == "unix:/tmp/sock"
    assert endpoint("").host == "unix:"


# -- many bad connections, good clients unaffected --------------------------------------------


@run(40)
async def test_200_bad_connections_do_not_stop_good_clients() -> None:
    rec = Recorder()
    server = await serve(rec, timeout=0.5)
    port = port_of(server)

    async def bad(i: int) -> None:
        kind = i % 5
        source = f"127.0.3.{100 + i % 100}"
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        except OSError:
            return
        try:
            if kind == 0:  # garbage
                writer.write(b"\x16\x03\x01\x02\x00" * 10)
            elif kind == 1:  # slow loris: one byte, then silence
                writer.write(b"P")
            elif kind == 2:  # disconnect mid-header
                writer.write(V2[:20])
                await writer.drain()
                writer.transport.abort()
                return
            elif kind == 3:  # oversize v2
                writer.write(V2_SIGNATURE + b"\x21\x11\xff\xff")
            else:  # a v1 line that never ends
                writer.write(b"PROXY TCP4 " + b"9" * 200)
            await writer.drain()
            await asyncio.wait_for(reader.read(), 3)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def good(i: int) -> tuple[int, bytes]:
        header = build((f"192.0.2.{i + 1}", 40000 + i), ("203.0.113.1", 1883), version=1 + i % 2)
        return i, await send(port, [header + f"client {i}".encode()], source="127.0.3.50")

    try:
        tasks = [asyncio.ensure_future(bad(i)) for i in range(200)]
        goods = [asyncio.ensure_future(good(i)) for i in range(20)]
        answers = await asyncio.gather(*goods)
        assert all(a == b"ok" for _, a in answers)
        await asyncio.gather(*tasks)
        await rec.wait(20)
        for peername, _, data in rec.seen:
            i = int(data.split()[1])
            assert peername == (f"192.0.2.{i + 1}", 40000 + i)
        stats = server.proxy_factory.stats  # type: ignore[attr-defined]
        assert stats["proxied"] == 20
        refused = sum(v for k, v in stats.items() if k not in ("proxied",))
        assert refused == 200, stats
        assert stats[Reason.TIMEOUT.value] == 40
        # the accept loop is alive: one more good client
        assert await send(port, [V1 + b"after"]) == b"ok"
        assert factory_pending(server) == 0
    finally:
        server.close()
        await server.wait_closed()


def factory_pending(server: asyncio.Server) -> int:
    return int(server.proxy_factory.pending)  # type: ignore[attr-defined]


# -- 1-byte segments, in process (issue 11) -----------------------------------------------------
# ProxyProtocolFactory driven through asyncio's own callbacks with a stub transport, so that
# every segment boundary is exactly the one chosen (TCP on loopback may merge small writes).

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from realip.aio import ProxyProtocol  # noqa: E402
from realip.proxy_protocol import Reader, decode  # noqa: E402

V1_TCP6 = b"PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 56324 1883\r\n"
V2_IP6 = build(("2001:db8::7", 56324), ("2001:db8::1", 1883), version=2,
               tlvs=[(0x02, b"mqtt.example")])
SEGMENT_HEADERS = {"v1": V1, "v1-tcp6": V1_TCP6, "v1-unknown": V1_UNKNOWN, "v2": V2,
                   "v2-ipv6": V2_IP6, "v2-local": V2_LOCAL}


class _StubTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.41.9", 40001), "sockname": ("127.0.41.1", 1883)}.get(
            name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class _App(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.data = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data


def _deliver_segments(factory: ProxyProtocolFactory, segments: list[bytes]) -> tuple[
        ProxyProtocol, _StubTransport]:
    proto = factory()
    transport = _StubTransport()
    proto.connection_made(transport)
    for seg in segments:
        target = transport.protocol if hasattr(transport, "protocol") else proto
        target.data_received(seg)  # type: ignore[attr-defined]
    return proto, transport


def _segmentings(stream: bytes) -> list[list[bytes]]:
    """All 1-byte segments; for every i, i 1-byte segments then the rest in one; and every
    two-piece split."""
    n = len(stream)
    ones = [stream[i : i + 1] for i in range(n)]
    out = [ones]
    out += [[*ones[:i], stream[i:]] for i in range(n)]
    out += [[stream[:i], stream[i:]] for i in range(1, n)]
    return out


def _check(factory: ProxyProtocolFactory, header: bytes, segments: list[bytes]) -> None:
    want = decode(header)
    assert want is not None
    _, transport = _deliver_segments(factory, segments)
    app = transport.protocol
    assert isinstance(app, _App), segments  # handed over: the header was complete and valid
    result = app.transport.get_extra_info("proxy_result")
    assert result.header == want
    assert app.data == PAYLOAD  # not a byte lost, added or reordered after the header
    assert not transport.closed
    if want.is_local:
        assert app.transport.get_extra_info("peername") == ("127.0.41.9", 40001)
    else:
        src = want.source
        assert src is not None
        assert app.transport.get_extra_info("peername")[:2] == (str(src.host), src.port)


@pytest.mark.parametrize("policy", [Policy.REQUIRE, Policy.OPTIONAL])
@pytest.mark.parametrize("name", list(SEGMENT_HEADERS))
@run(60)
async def test_one_byte_segments_every_split_same_header_no_byte_lost(
        name: str, policy: Policy) -> None:
    header = SEGMENT_HEADERS[name]
    # OPTIONAL (for the trusted stub peer): the first bytes are sniffed before the reader
    factory = ProxyProtocolFactory(_App, policy=PeerPolicy(["127.0.41.0/24"],
                                                           trusted_policy=policy), timeout=30)
    cases = _segmentings(header + PAYLOAD)
    for segments in cases:
        _check(factory, header, segments)
    kind = "local" if decode(header).is_local else "proxied"  # type: ignore[union-attr]
    assert factory.stats[kind] == len(cases) and factory.pending == 0


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(list(SEGMENT_HEADERS)),
       cuts=st.lists(st.integers(1, 4), min_size=1, max_size=120))
def test_any_segmenting_gives_the_same_header(name: str, cuts: list[int]) -> None:
    header = SEGMENT_HEADERS[name]
    stream = header + PAYLOAD
    segments, at = [], 0
    for size in cuts:
        if at >= len(stream):
            break
        segments.append(stream[at : at + size])
        at += size
    if at < len(stream):
        segments.append(stream[at:])

    async def go() -> None:
        _check(ProxyProtocolFactory(_App, timeout=30), header, segments)

    asyncio.run(go())


@run()
async def test_one_byte_segments_of_a_bad_header_are_refused_at_the_first_bad_byte() -> None:
    errors: list[Exception] = []
    factory = ProxyProtocolFactory(_App, timeout=30, on_error=lambda p, e: errors.append(e))
    bad = b"PROXY TCP4 192.168.1.256 10.0.0.1 1 2\r\n"
    proto, transport = _deliver_segments(factory, [bad[i : i + 1] for i in range(len(bad))])
    assert transport.closed and len(errors) == 1
    assert isinstance(errors[0], InvalidProxyHeader)
    assert proto._received == len(b"PROXY TCP4 192.168.1.25") + 1  # closed at the '6'


@pytest.mark.parametrize("bad, at", [
    (b"PROXY TCQ4 1.2.3.4 5.6.7.8 1 2\r\n", len(b"PROXY TCQ")),  # in the literal
    (b"PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", len(b"PROXX")),
    (V2[:5] + b"\x00" + V2[6:], 6),  # in the v2 signature
    (V2[:12] + b"\x31" + V2[13:], 13),  # the version/command byte after it
])
@run()
async def test_the_segment_fast_path_refuses_at_the_same_byte_as_the_reader(
        bad: bytes, at: int) -> None:
    """The per-segment fast path (literal, signature, v2 body, v1 automaton) hands every byte
    it cannot vouch for to the reader: a bad header sent a byte at a time is refused at the
    byte where Reader.feed refuses it."""
    errors: list[Exception] = []
    factory = ProxyProtocolFactory(_App, timeout=30, on_error=lambda p, e: errors.append(e))
    proto, transport = _deliver_segments(factory, [bad[i : i + 1] for i in range(len(bad))])
    reader, failed_at = Reader(), None
    for i in range(len(bad)):
        try:
            reader.feed(bad[i : i + 1])
        except InvalidProxyHeader:
            failed_at = i + 1
            break
    assert failed_at == at
    assert transport.closed and len(errors) == 1 and isinstance(errors[0], InvalidProxyHeader)
    assert proto._received == at
