"""Mosquitto 2.1 listeners with ``enable_proxy_protocol 1|2``: ``src/proxy_v1.c`` and
``src/proxy_v2.c``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ..._addr import format_ip, ipv4_int, ipv6_int
from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint, TLVType
from ..base import ReceiverModel


def _pton4(t: bytes) -> int | None:
    return ipv4_int(t.decode("latin-1"))


def _pton6(t: bytes) -> int | None:
    return ipv6_int(t.decode("latin-1"))

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# Mosquitto 2.1


def _atoi(token: bytes) -> int:
    """glibc ``atoi``: ``(int) strtol(s, NULL, 10)`` — leading blanks, sign, digits, anything
    after ignored; strtol saturates at the 64-bit limits, the cast keeps the low 32 bits."""
    m = re.match(rb"[ \t\n\v\f\r]*([+-]?)([0-9]*)", token)
    assert m is not None
    value = int(m.group(2)) if m.group(2) else 0
    if m.group(1) == b"-":
        value = -value
    value = max(-(2**63), min(2**63 - 1, value)) & 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def _strtok4(s: bytes) -> tuple[list[bytes], bytes]:
    """Four ``strtok_r(…, " ")`` calls; returns the tokens and what ``saveptr`` points at."""
    tokens: list[bytes] = []
    rest = s
    for _ in range(4):
        rest = rest.lstrip(b" ")
        if not rest:
            return tokens, b""
        sp = rest.find(b" ")
        if sp < 0:
            tokens.append(rest)
            rest = b""
        else:
            tokens.append(rest[:sp])
            rest = rest[sp + 1 :]
    return tokens, rest


_MOSQ_CORRUPT = "Connection rejected, corrupt PROXY header."


def _mosquitto(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    protocol = knobs["protocol"]
    if protocol is None:
        protocol = 2 if data[:1] == b"\r" else 1
        ver = f"auto:{protocol}"
    r = _result("mosquitto", ver)
    if not data:
        return r(False, "nothing to read yet: Mosquitto has no PROXY header timeout and waits",
                 waiting=True)
    if protocol == 1:
        return _mosquitto_v1(data, r, knobs)
    return _mosquitto_v2(data, r, knobs)


def _mosquitto_v1(data: bytes, r: Callable[..., Acceptance],
                  knobs: Mapping[str, Any]) -> Acceptance:
    limit = knobs["v1_limit"]
    end = -1
    for pos in range(3, min(len(data), limit) + 1):
        if data[pos - 1] == 0x0A and data[pos - 2] == 0x0D:
            end = pos
            break
    if end < 0:
        if len(data) >= limit:
            return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
        return r(False, "line not complete: the byte-wise non-blocking read finds no more data "
                 "and the connection is dropped (MOSQ_ERR_CONN_LOST)")
    line = data[:end]
    if end >= 14 and line[:14] == b"PROXY UNKNOWN ":
        return r(True, "v1 UNKNOWN (long form): real peer kept", consumed=end, header_version=1)
    if end >= 11 and line[:11] in (b"PROXY TCP4 ", b"PROXY TCP6 "):
        v6 = line[9] == 0x36
    else:
        return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
    text = line[11 : end - 2].split(b"\0", 1)[0]
    tokens, saveptr = _strtok4(text)
    if len(tokens) < 4 or saveptr:
        return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
    sport, dport = _atoi(tokens[2]), _atoi(tokens[3])
    if not (1 <= sport <= 65535 and 1 <= dport <= 65535):
        return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
    if v6:
        s6, d6 = _pton6(tokens[0]), _pton6(tokens[1])
        if s6 is None or d6 is None:
            return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
        src: _IP = IPv6Address(s6)
        dst: _IP = IPv6Address(d6)
    else:
        s4, d4 = _pton4(tokens[0]), _pton4(tokens[1])
        if s4 is None or d4 is None:
            return r(False, _MOSQ_CORRUPT, log_line=_MOSQ_CORRUPT)
        src = IPv4Address(s4)
        dst = IPv4Address(d4)
    source = Endpoint(src, sport)
    return r(True, f"v1 read: client {tokens[0].decode('latin-1')}:{sport}", source,
             destination=Endpoint(dst, dport), consumed=end, header_version=1)


def _mosquitto_v2(data: bytes, r: Callable[..., Acceptance],
                  knobs: Mapping[str, Any]) -> Acceptance:
    if len(data) < 16:
        return r(False, "the 16-byte fixed part did not arrive in one read: connection dropped "
                 "(MOSQ_ERR_CONN_LOST)")
    if data[:12] != V2_SIGNATURE or data[12] & 0xF0 != 0x20:
        return r(False, "not a v2 header: connection closed (MOSQ_ERR_INVAL)")
    command = data[12] & 0xF
    fam = data[13]
    if command not in (0, 1):
        return r(False, f"v2 command {command}: connection closed (MOSQ_ERR_INVAL)")
    if (fam != 0x00 or command != 0) and fam not in (0x11, 0x21, 0x31):
        return r(False, f"v2 family/transport 0x{fam:02X}: connection closed")
    length = (data[14] << 8) | data[15]
    limit = knobs["v2_limit"]
    if length > 0:
        need = {0x11: 12, 0x21: 36}.get(fam, 0)
        if fam in (0x11, 0x21, 0x31) and (length < need or length > limit):
            return r(False, f"v2 length {length} out of range for 0x{fam:02X}: connection "
                     "closed (MOSQ_ERR_INVAL)")
    elif command != 0 or fam != 0:
        return r(False, "v2 length 0 with an address family: connection closed "
                 "(MOSQ_ERR_PROTOCOL)")
    if len(data) - 16 < length:
        return r(False, f"v2 body: {len(data) - 16} of {length} bytes; Mosquitto waits for the "
                 "rest (and writes later reads over the start of its buffer)", waiting=True)
    block = data[16 : 16 + length]
    buf = block + b"\0"  # calloc(len + 1)
    if fam == 0x11:
        ip4 = IPv4Address(block[0:4])
        src: _IP | str = ip4
        port = (block[8] << 8) | block[9]
        dst: Endpoint | None = Endpoint(IPv4Address(block[4:8]), (block[10] << 8) | block[11])
        pos = 12
        text = format_ip(ip4)
    elif fam == 0x21:
        ip6 = IPv6Address(block[0:16])
        src = ip6
        port = (block[32] << 8) | block[33]
        dst = Endpoint(IPv6Address(block[16:32]), (block[34] << 8) | block[35])
        pos = 36
        text = format_ip(ip6)
    elif fam == 0x31:
        raw = buf[:108].split(b"\0", 1)[0]
        src = raw.decode("utf-8", "surrogateescape")
        port = 0
        dst = None
        pos = 109  # sizeof(src_addr) + 1: the TLV walk starts inside the destination path
        text = src
    else:
        return r(False, "v2 LOCAL: treated as a health check, connection closed without a log "
                 "line (MOSQ_ERR_PROXY)")
    source = Endpoint(src, None if fam == 0x31 else port)
    if not _mosquitto_tlvs(buf, pos, length):
        line = f"Connection from {text}:{port} rejected, corrupt PROXY header."
        return r(False, line, log_line=line, logged_source=source)
    note = " (a LOCAL header with an address block is used like PROXY)" if command == 0 else ""
    return r(True, f"v2: client {text}:{port}{note}", source, destination=dst,
             consumed=16 + length, header_version=2)


def _mosquitto_tlvs(buf: bytes, pos: int, length: int) -> bool:
    """read_tlv/read_tlv_ssl with their uint16 arithmetic; True when the walk succeeds."""
    while pos < length:
        if length - pos < 3:
            return False
        t = buf[pos]
        tl = (buf[pos + 1] << 8) | buf[pos + 2]
        pos = (pos + 3) & 0xFFFF
        if tl > length - pos:
            return False
        if t == TLVType.SSL:
            if tl < 5:
                return False
            pos = (pos + 5) & 0xFFFF
            left = (tl - 5) & 0xFFFF
            while left > 0:
                if length - pos < 3:
                    return False
                sl = (buf[pos + 1] << 8) | buf[pos + 2]
                pos = (pos + 3) & 0xFFFF
                if sl > length - pos:
                    return False
                left = (left - (3 + sl)) & 0xFFFF
                pos = (pos + sl) & 0xFFFF
        else:
            pos = (pos + tl) & 0xFFFF
    return True


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="mosquitto",
    parse=_mosquitto,
    default_version="auto",
    versions=("auto", "1", "2"),
    knobs=MappingProxyType({"protocol": None, "v1_limit": 108, "v2_limit": 500}),
    rules=MappingProxyType({
        "program": "Mosquitto 2.1 listener `enable_proxy_protocol 1|2`",
        "detection": "configured (version='1'/'2'; None infers from the data)",
        "fragmented": "v1 dropped; v2 fixed 16 bytes must arrive at once, rest may trickle",
        "v1_addresses": "inet_pton per family; tokens split with strtok (double spaces ok)",
        "v1_ports": "atoi, 1-65535",
        "unknown_short": "reject: corrupt PROXY header",
        "unknown_long": "accept, real peer",
        "v1_length": "108 bytes incl. CRLF",
        "v2_length": "500 bytes after the fixed part (INET/INET6/UNIX)",
        "v2_bad_command": "reject",
        "v2_local": "close without log (health check); LOCAL with an INET block is used as "
                    "PROXY",
        "v2_other_families": "UNIX: src path as address; others reject",
        "crc32c": "not verified",
        "tlvs": "tiling checked from a fixed offset (UNIX: offset 109, inside the "
                "destination path)",
        "timeout": "none",
        "reject_log": "'Connection rejected, corrupt PROXY header.' (v1) / "
                      "'Connection from <src>:<port> rejected, corrupt PROXY header.' (v2 TLVs)",
        "evidence": "ported from eclipse-mosquitto src/proxy_v1.c, src/proxy_v2.c (not "
                    "executed)",
    }),
    sources=("eclipse-mosquitto/mosquitto 7b8aba10 src/proxy_v1.c, src/proxy_v2.c"),
    choices=("auto", "1", "2"),
    choice_error="version must be '1', '2' or None (both / inferred), not {ver!r}",
    select=lambda v: {"protocol": None if v == "auto" else int(v)},
)
