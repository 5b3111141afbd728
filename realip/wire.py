"""What travels on a link, shared by every program room and the simulator (sans-IO): the bytes
clients write first (MQTT CONNECT, the WebSocket upgrade request), HTTP/1 request heads as the
programs read them, a link's bytes labelled by kind, and :class:`Link` itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from .proxy_protocol import Endpoint, decode
from .tls import TlsRecord, TlsSession, records

__all__ = [
    "WS_KEY",
    "Headers",
    "Link",
    "endpoint",
    "host_header",
    "mqtt_connect",
    "parse_http",
    "printable",
    "split_parts",
    "summary",
    "ws_upgrade_request",
]

Headers = list[tuple[str, str]]

#: The WebSocket key every simulated client sends (RFC 6455's sample nonce): outputs stay
#: deterministic.
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@dataclass(frozen=True)
class Link:
    """One TCP connection: who opened it (``src``, as the receiver sees it), where it arrived
    (``dst``, the receiver's local address), and the bytes the sender wrote first, split into
    ``parts`` (``("proxy", …)``, ``("mqtt", …)``, ``("http", …)``).  On a link that carries
    TLS, ``parts`` are what travelled in clear before the handshake and ``tls`` is the TLS
    connection that follows, readable only by ``tls_holder`` (the hop or broker that holds
    the server key; None when nobody in the chain terminates it)."""

    index: int
    sender: str
    receiver: str
    src: Endpoint
    dst: Endpoint
    parts: tuple[tuple[str, bytes], ...]
    dialed: str = ""
    tls: TlsSession | None = None
    tls_holder: str | None = None

    @property
    def records(self) -> tuple[TlsRecord, ...]:
        """The TLS records the sender writes after the clear parts (empty without TLS)."""
        return () if self.tls is None else records(self.tls, self.tls_holder)

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
        parsed = None if raw is None else parse_http(raw)
        return [] if parsed is None else parsed[1]




def printable(raw: bytes) -> str:
    return raw.decode("latin-1").encode("unicode_escape").decode("ascii")


def summary(kind: str, raw: bytes) -> str:
    if kind == "proxy":
        if raw.startswith(b"PROXY"):
            return printable(raw)
        return f"PROXY v2, {len(raw)} bytes: {raw.hex()}"
    if kind == "http":
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return " | ".join(head.split("\r\n"))
    if kind == "mqtt":
        return f"MQTT CONNECT, {len(raw)} bytes"
    return f"{len(raw)} bytes"


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


def parse_http(raw: bytes) -> tuple[str, Headers, bytes] | None:
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




def host_header(host: str, port: int) -> str:
    """A ``Host`` header value for *host* and *port*: an IPv6 address in brackets (RFC 9110
    §7.2 / RFC 3986 — without them ``$host`` would end at the first colon)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def endpoint(addr: str, port: int | None) -> Endpoint:
    return Endpoint(ip_address(addr), port)


def split_parts(data: bytes, app_kind: str) -> tuple[tuple[str, bytes], ...]:
    """Label the bytes a hop relays: one or more PROXY headers, then the application data."""
    parts: list[tuple[str, bytes]] = []
    rest = data
    while rest[:5] == b"PROXY" or rest[:12] == b"\r\n\r\n\x00\r\nQUIT\n":
        try:
            h = decode(rest, verify_crc32c=False)
        except Exception:  # a header no receiver would take: labelled by its first line below
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


