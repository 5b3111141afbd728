"""What real nginx and HAProxy *send*: headers captured at a small Python backend.

A client bound to 127.0.0.5 connects to the proxy on 127.0.0.2 (or ``::1``, or a UNIX socket);
the proxy connects to a capture server on 127.0.0.3 and sends its PROXY header followed by the
client's bytes.  Every capture must decode with :func:`realip.proxy_protocol.decode` to the
expected addresses and re-encode byte for byte — except the spec-invalid lines nginx writes
after stream realip mixed the families, which the strict decoder must reject.

``REALIP_WRITE_CAPTURED=1`` rewrites ``tests/vectors/captured.json`` from the live captures
(``tests/test_receivers.py`` checks that file without any program).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from realip.errors import InvalidProxyHeader, Reason
from realip.proxy_protocol import V2_SIGNATURE, Command, Endpoint, ProxyHeader, decode, encode

from ._programs import (
    CaptureServer,
    Running,
    exchange,
    free_port,
    start_haproxy,
    start_nginx,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "captured.json"
WRITE = os.environ.get("REALIP_WRITE_CAPTURED") == "1"
CLIENT = "127.0.0.5"
PROXY = "127.0.0.2"
BACKEND = "127.0.0.3"
HELLO = b"hello from the client\n"

_collected: list[dict[str, Any]] = []

pytestmark = pytest.mark.real


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """Frame a header without the decoder: v2 by its length field, v1 up to the first CRLF."""
    if data[:12] == V2_SIGNATURE and len(data) >= 16:
        end = 16 + int.from_bytes(data[14:16], "big")
    else:
        end = data.index(b"\r\n") + 2
    return data[:end], data[end:]


def ep(text: str | None) -> Endpoint | None:
    """``"203.0.113.7:56324"`` / ``"[2001:db8::7]:56324"`` -> Endpoint."""
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    return Endpoint(ip_address(host.strip("[]")), int(port))


@dataclass
class Expect:
    name: str
    source: str | None  #: None: a LOCAL / UNKNOWN header
    destination: str | None
    notes: str
    spec_valid: bool = True
    version: int | None = None


def check_capture(program: str, program_version: str, data: bytes, want: Expect,
                  payload: bytes | None = HELLO) -> ProxyHeader | None:
    """Assert the captured bytes against *want*; collect them for captured.json."""
    header, rest = split_header(data)
    if payload is not None:
        assert rest == payload, "the client's bytes must follow the header unchanged"
    decoded: ProxyHeader | None = None
    if want.spec_valid:
        decoded = decode(header)
        assert decoded is not None and decoded.size == len(header)
        assert decoded.source == ep(want.source)
        assert decoded.destination == ep(want.destination)
        if want.version is not None:
            assert decoded.version == want.version
        assert encode(decoded) == header, "re-encoding must reproduce the captured bytes"
        assert decode(data) == decoded  # with the payload behind it
    else:
        with pytest.raises(InvalidProxyHeader) as info:
            decode(header)
        assert info.value.reason in (Reason.V1_BAD_ADDRESS,)
        text = header.decode("ascii")
        assert want.source is not None and want.destination is not None
        src, dst = ep(want.source), ep(want.destination)
        assert src is not None and dst is not None
        assert f" {src.port} {dst.port}\r\n" in text
    _collected.append({
        "name": want.name,
        "program": program,
        "version": program_version,
        "hex": header.hex(),
        "source": want.source,
        "destination": want.destination,
        "spec_valid": want.spec_valid,
        "notes": want.notes,
    })
    return decoded


@pytest.fixture(scope="module", autouse=True)
def _write_vectors() -> Iterator[None]:
    yield
    if WRITE and _collected:
        entries = sorted(_collected, key=lambda e: (e["program"], e["name"]))
        VECTORS.write_text(json.dumps(entries, indent=2) + "\n")


def _ipv6_text(host: str, port: int) -> str:
    return f"[{host}]:{port}"


# -- nginx ---------------------------------------------------------------------------------------


@dataclass
class NginxSender:
    running: Running
    capture: CaptureServer
    version: str
    plain: int
    realip: int
    plain6: int
    realip6: int
    unix_path: Path


@pytest.fixture(scope="module")
def nginx_sender(nginx_bin: str, nginx_version: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxSender]:
    capture = CaptureServer(BACKEND)
    d = tmp_path_factory.mktemp("nginx-send")
    plain, realip = free_port(PROXY), free_port(PROXY)
    plain6, realip6 = free_port("::1"), free_port("::1")
    sock = d / "client.sock"
    up = f"proxy_pass {BACKEND}:{capture.port}; proxy_protocol on;"
    servers = f"""
    server {{ listen {PROXY}:{plain}; {up} }}
    server {{ listen {PROXY}:{realip} proxy_protocol; set_real_ip_from 127.0.0.0/8; {up} }}
    server {{ listen [::1]:{plain6}; {up} }}
    server {{ listen [::1]:{realip6} proxy_protocol; set_real_ip_from ::1; {up} }}
    server {{ listen unix:{sock}; {up} }}
"""
    try:
        running = start_nginx(nginx_bin, d, servers, [(PROXY, plain), ("::1", realip6)])
    except Exception:
        capture.close()
        raise
    try:
        yield NginxSender(running, capture, nginx_version, plain, realip, plain6, realip6, sock)
    finally:
        running.stop()
        capture.close()


def _through(capture: CaptureServer, host: str, port: int, data: bytes,
             source: str | None = CLIENT) -> tuple[tuple[str, int], bytes]:
    capture.clear()
    ex = exchange(host, port, (data,), source=source, timeout=3, half_close=True)
    got = capture.wait(1)
    return ex.local, got[0][1]


def _unix_through(capture: CaptureServer, path: Path, data: bytes) -> bytes:
    capture.clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(str(path))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    return capture.wait(1)[0][1]


def test_nginx_v1_direct(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    (chost, cport), data = _through(n.capture, PROXY, n.plain, HELLO)
    assert data.startswith(f"PROXY TCP4 {CLIENT} {PROXY} {cport} {n.plain}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-tcp4", f"{chost}:{cport}", f"{PROXY}:{n.plain}",
        "stream proxy_protocol on: the TCP peer and nginx's own local address", version=1))


def test_nginx_v1_after_realip(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    incoming = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"
    _, data = _through(n.capture, PROXY, n.realip, incoming + HELLO)
    assert data.startswith(f"PROXY TCP4 203.0.113.7 {PROXY} 56324 {n.realip}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-realip", "203.0.113.7:56324", f"{PROXY}:{n.realip}",
        "stream realip relays the client; the destination is nginx's own address, not the "
        "incoming 198.51.100.1:1883"))


def test_nginx_v1_normalises_text(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    incoming = b"PROXY TCP4 010.001.002.003 198.51.100.1 00080 1883\r\n"
    _, data = _through(n.capture, PROXY, n.realip, incoming + HELLO)
    assert data.startswith(f"PROXY TCP4 10.1.2.3 {PROXY} 80 {n.realip}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-realip-normalised", "10.1.2.3:80", f"{PROXY}:{n.realip}",
        "received '010.001.002.003 ... 00080': realip reads decimal, the relay prints it "
        "normalised"))


def test_nginx_v1_mixed_families_tcp6_on_ipv4(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    incoming = b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883\r\n"
    _, data = _through(n.capture, PROXY, n.realip, incoming + HELLO)
    assert data.startswith(f"PROXY TCP6 2001:db8::7 {PROXY} 56324 {n.realip}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-realip-mixed-tcp6", "[2001:db8::7]:56324", f"{PROXY}:{n.realip}",
        "spec-invalid: TCP6 chosen from the relayed source, the IPv4 listen address printed "
        "as is", spec_valid=False))


def test_nginx_v1_ipv6_listener(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    (chost, cport), data = _through(n.capture, "::1", n.plain6, HELLO, source=None)
    assert data.startswith(f"PROXY TCP6 ::1 ::1 {cport} {n.plain6}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-tcp6", _ipv6_text(chost, cport), _ipv6_text("::1", n.plain6),
        "IPv6 client on an IPv6 listener"))


def test_nginx_v1_mixed_families_tcp4_on_ipv6(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    incoming = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"
    _, data = _through(n.capture, "::1", n.realip6, incoming + HELLO, source=None)
    assert data.startswith(f"PROXY TCP4 203.0.113.7 ::1 56324 {n.realip6}\r\n".encode())
    check_capture("nginx", n.version, data, Expect(
        "nginx-v1-realip-mixed-tcp4", "203.0.113.7:56324", _ipv6_text("::1", n.realip6),
        "spec-invalid: TCP4 with the IPv6 listen address", spec_valid=False))


def test_nginx_v1_unix_client(nginx_sender: NginxSender) -> None:
    n = nginx_sender
    data = _unix_through(n.capture, n.unix_path, HELLO)
    assert data == b"PROXY UNKNOWN\r\n" + HELLO
    h = check_capture("nginx", n.version, data, Expect(
        "nginx-v1-unknown", None, None, "a client on a UNIX socket: the short UNKNOWN form"))
    assert h is not None and h.command is Command.PROXY


# -- HAProxy -------------------------------------------------------------------------------------

HAPROXY_BACKENDS = {
    # name: (frontend bind options or None, server options)
    "v1": ("", "send-proxy"),
    "v2": ("", "send-proxy-v2"),
    "v2opts": ("", "send-proxy-v2 proxy-v2-options crc32c,unique-id,authority,ssl"),
    "relay2": ("accept-proxy", "send-proxy-v2 proxy-v2-options crc32c,authority,unique-id"),
    "relay1": ("accept-proxy", "send-proxy"),
    "unix1": ("unix", "send-proxy"),
    "unix2": ("unix", "send-proxy-v2"),
    "check2": (None, "send-proxy-v2 check check-send-proxy inter 300ms "
                     "proxy-v2-options crc32c"),
    "check1": (None, "send-proxy check check-send-proxy inter 300ms"),
}


@dataclass
class HAProxySender:
    running: Running
    version: str
    captures: dict[str, CaptureServer]
    ports: dict[str, int]
    socks: dict[str, Path]


@pytest.fixture(scope="module")
def haproxy_sender(haproxy_bin: str, haproxy_version: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAProxySender]:
    d = tmp_path_factory.mktemp("haproxy-send")
    captures = {name: CaptureServer(BACKEND) for name in HAPROXY_BACKENDS}
    ports: dict[str, int] = {}
    socks: dict[str, Path] = {}
    sections = []
    wait: list[tuple[str, int]] = []
    for name, (bind, server) in HAPROXY_BACKENDS.items():
        if bind is not None:
            if bind == "unix":
                socks[name] = d / f"{name}.sock"
                line = f"bind unix@{socks[name]}"
            else:
                ports[name] = free_port(PROXY)
                line = f"bind {PROXY}:{ports[name]} {bind}"
                wait.append((PROXY, ports[name]))
            sections.append(f"frontend f_{name}\n    mode tcp\n    {line}\n"
                            f"    default_backend b_{name}\n")
        sections.append(f"backend b_{name}\n    mode tcp\n"
                        f"    server s {BACKEND}:{captures[name].port} {server}\n")
    try:
        running = start_haproxy(haproxy_bin, d, "\n".join(sections), wait[:1])
    except Exception:
        for c in captures.values():
            c.close()
        raise
    try:
        yield HAProxySender(running, haproxy_version, captures, ports, socks)
    finally:
        running.stop()
        for c in captures.values():
            c.close()


def test_haproxy_v1(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    (chost, cport), data = _through(h.captures["v1"], PROXY, h.ports["v1"], HELLO)
    assert data.startswith(f"PROXY TCP4 {CLIENT} {PROXY} {cport} {h.ports['v1']}\r\n".encode())
    check_capture("haproxy", h.version, data, Expect(
        "haproxy-v1-tcp4", f"{chost}:{cport}", f"{PROXY}:{h.ports['v1']}", "server send-proxy",
        version=1))


def test_haproxy_v2(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    (chost, cport), data = _through(h.captures["v2"], PROXY, h.ports["v2"], HELLO)
    dec = check_capture("haproxy", h.version, data, Expect(
        "haproxy-v2-inet", f"{chost}:{cport}", f"{PROXY}:{h.ports['v2']}",
        "server send-proxy-v2: 0x21 0x11, no TLVs", version=2))
    assert dec is not None and dec.tlvs == ()


def test_haproxy_v2_options(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    (chost, cport), data = _through(h.captures["v2opts"], PROXY, h.ports["v2opts"], HELLO)
    dec = check_capture("haproxy", h.version, data, Expect(
        "haproxy-v2-inet-options", f"{chost}:{cport}", f"{PROXY}:{h.ports['v2opts']}",
        "proxy-v2-options crc32c,unique-id,authority,ssl without TLS: CRC32C, an empty "
        "UNIQUE_ID and an SSL TLV with client 0 and verify 0; no AUTHORITY"))
    assert dec is not None
    assert [t.type for t in dec.tlvs] == [0x03, 0x05, 0x20]
    assert dec.unique_id == b""
    ssl = dec.ssl
    assert ssl is not None and int(ssl.client) == 0 and ssl.verify == 0 and not ssl.verified


def _incoming_v2(src: bytes, dst: bytes, fam: int, tlvs: bytes) -> bytes:
    body = src + dst + (56324).to_bytes(2, "big") + (1883).to_bytes(2, "big") + tlvs
    return V2_SIGNATURE + bytes((0x21, fam)) + len(body).to_bytes(2, "big") + body


def test_haproxy_v2_relay(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    tlvs = (b"\x02" + (16).to_bytes(2, "big") + b"mqtt.example.com"
            + b"\x05" + (11).to_bytes(2, "big") + b"client-id-1")
    incoming = _incoming_v2(bytes((203, 0, 113, 7)), bytes((198, 51, 100, 1)), 0x11, tlvs)
    _, data = _through(h.captures["relay2"], PROXY, h.ports["relay2"], incoming + HELLO)
    dec = check_capture("haproxy", h.version, data, Expect(
        "haproxy-v2-relay", "203.0.113.7:56324", "198.51.100.1:1883",
        "accept-proxy -> send-proxy-v2 with crc32c,authority,unique-id: the original source "
        "and destination, the received AUTHORITY; UNIQUE_ID is HAProxy's own (empty)"))
    assert dec is not None
    assert dec.authority == "mqtt.example.com"
    assert dec.unique_id == b""


def test_haproxy_v2_relay_mapped(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    src = ip_address("2001:db8::7").packed
    dst = ip_address("::ffff:198.51.100.1").packed
    incoming = _incoming_v2(src, dst, 0x21, b"")
    _, data = _through(h.captures["relay2"], PROXY, h.ports["relay2"], incoming + HELLO)
    check_capture("haproxy", h.version, data, Expect(
        "haproxy-v2-relay-inet6-mapped", "[2001:db8::7]:56324", "[::ffff:198.51.100.1]:1883",
        "a v4-mapped destination stays INET6 (0x21) when relayed"))


def test_haproxy_v1_relay(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    incoming = b"PROXY TCP6 2001:db8::7 ::ffff:198.51.100.1 56324 1883\r\n"
    _, data = _through(h.captures["relay1"], PROXY, h.ports["relay1"], incoming + HELLO)
    assert data.startswith(b"PROXY TCP6 2001:db8::7 ::ffff:198.51.100.1 56324 1883\r\n")
    check_capture("haproxy", h.version, data, Expect(
        "haproxy-v1-relay-tcp6-mapped", "[2001:db8::7]:56324", "[::ffff:198.51.100.1]:1883",
        "accept-proxy -> send-proxy: relayed as received"))


def test_haproxy_v1_relay_from_v2(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    incoming = _incoming_v2(bytes((203, 0, 113, 7)), bytes((198, 51, 100, 1)), 0x11, b"")
    _, data = _through(h.captures["relay1"], PROXY, h.ports["relay1"], incoming + HELLO)
    assert data.startswith(b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n")
    check_capture("haproxy", h.version, data, Expect(
        "haproxy-v1-relay-from-v2", "203.0.113.7:56324", "198.51.100.1:1883",
        "a v2 header received, a v1 line sent"))


def test_haproxy_unix_clients(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    data1 = _unix_through(h.captures["unix1"], h.socks["unix1"], HELLO)
    assert data1 == b"PROXY UNKNOWN\r\n" + HELLO
    check_capture("haproxy", h.version, data1, Expect(
        "haproxy-v1-unix-unknown", None, None, "a UNIX-socket client: UNKNOWN short form"))
    data2 = _unix_through(h.captures["unix2"], h.socks["unix2"], HELLO)
    dec = check_capture("haproxy", h.version, data2, Expect(
        "haproxy-v2-unix-local", None, None, "a UNIX-socket client: LOCAL, family 0"))
    assert dec is not None and dec.command is Command.LOCAL


def test_haproxy_health_checks(haproxy_sender: HAProxySender) -> None:
    h = haproxy_sender
    (_peer2, data2), = h.captures["check2"].wait(1, timeout=5)[:1]
    dec = check_capture("haproxy", h.version, data2, Expect(
        "haproxy-v2-check-local", None, None,
        "check-send-proxy with send-proxy-v2 and crc32c: LOCAL with a CRC32C TLV"),
        payload=None)
    assert dec is not None and dec.command is Command.LOCAL
    (peer1, data1), = h.captures["check1"].wait(1, timeout=5)[:1]
    header, _ = split_header(data1)
    check_port = h.captures["check1"].port
    assert header == f"PROXY TCP4 {peer1[0]} {BACKEND} {peer1[1]} {check_port}\r\n".encode()
    check_capture("haproxy", h.version, data1, Expect(
        "haproxy-v1-check", f"{peer1[0]}:{peer1[1]}", f"{BACKEND}:{check_port}",
        "check-send-proxy with send-proxy: the check connection's own addresses"),
        payload=None)
