"""Writing a simulated trace as a pcap capture that Wireshark and tshark dissect (sans-IO: the
bytes are built here; only :func:`write_trace` touches a file).

Each link becomes one TCP conversation over IPv4 or IPv6 (Ethernet framing): the three-way
handshake, then one data segment per part the sender wrote first — a v2 PROXY header and the
MQTT CONNECT in separate segments, as Wireshark's heuristic PROXY dissector needs — with
sequence numbers that add up.  On a link carrying TLS the ClientHello follows the clear parts
as its own segment (its real bytes: Wireshark shows the SNI a pass-through load balancer
reads); the encrypted records after it are not written, since the simulator has no ciphertext
to put in them and invents none (their framing is in :attr:`realip.wire.Link.records`).
The broker leg keeps its own port (1883 → decoded as MQTT).
Timestamps are synthetic and fixed, so the same trace always gives the same file.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from .proxy_protocol import Endpoint
from .wire import Link


class _HasLinks(Protocol):
    """A :class:`realip.topology.Trace` (anything with its links): pcap needs only those."""

    @property
    def links(self) -> Sequence[Link]: ...

__all__ = ["pcap_bytes", "write_trace"]

_SYN, _ACK, _PSH = 0x02, 0x10, 0x08


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    header = struct.pack("!HHIIBBHHH", src.port, dst.port, seq, ack, 5 << 4, flags, 65535, 0, 0)
    s, d = src.host, dst.host
    assert isinstance(s, (IPv4Address, IPv6Address)) and isinstance(d, (IPv4Address, IPv6Address))
    length = len(header) + len(payload)
    if isinstance(s, IPv4Address):
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 6, length)
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", length, 6)
    csum = _checksum(pseudo + header + payload)
    header = header[:16] + struct.pack("!H", csum) + header[18:]
    return header + payload


def _ip(src: Endpoint, dst: Endpoint, segment: bytes) -> tuple[int, bytes]:
    s, d = src.host, dst.host
    assert isinstance(s, (IPv4Address, IPv6Address)) and isinstance(d, (IPv4Address, IPv6Address))
    if isinstance(s, IPv4Address) and isinstance(d, IPv4Address):
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, 6, 0,
                           s.packed, d.packed)
        head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        return 0x0800, head + segment
    s6 = s if isinstance(s, IPv6Address) else IPv6Address(0xFFFF00000000 | int(s))
    d6 = d if isinstance(d, IPv6Address) else IPv6Address(0xFFFF00000000 | int(d))
    head = struct.pack("!IHBB16s16s", 6 << 28, len(segment), 6, 64, s6.packed, d6.packed)
    return 0x86DD, head + segment


def _frame(src: Endpoint, dst: Endpoint, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:
    ethertype, packet = _ip(src, dst, _tcp(src, dst, seq, ack, flags, payload))
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ethertype) + packet


def pcap_bytes(trace: _HasLinks) -> bytes:
    """The whole capture as bytes (pcap, Ethernet link type, microsecond timestamps)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t = 1_720_000_000_000_000  # a fixed instant (µs), so captures are reproducible
    for link in trace.links:
        c, s = link.src, link.dst
        cseq, sseq = 1000, 5000
        frames = [_frame(c, s, cseq, 0, _SYN), _frame(s, c, sseq, cseq + 1, _SYN | _ACK),
                  _frame(c, s, cseq + 1, sseq + 1, _ACK)]
        cseq += 1
        payloads = [p for _, p in link.parts]
        if link.tls is not None:
            payloads.append(link.tls.hello)
        for payload in payloads:
            frames.append(_frame(c, s, cseq, sseq + 1, _PSH | _ACK, payload))
            cseq += len(payload)
            frames.append(_frame(s, c, sseq + 1, cseq, _ACK))
        for frame in frames:
            t += 1000
            out += struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame))
            out += frame
        t += 100_000
    return bytes(out)


def write_trace(trace: _HasLinks, path: str) -> None:
    """Write :func:`pcap_bytes` of *trace* to *path*."""
    with open(path, "wb") as f:
        f.write(pcap_bytes(trace))
