"""HAProxy ``bind … accept-proxy`` / ``expect-proxy``: ``conn_recv_proxy`` on the first read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ..._addr import format_ip, ipv6_int
from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint, TLVType, crc32c
from ..base import ReceiverModel, VersionRule

_DIGITS = frozenset(b"0123456789")


def _pton6(t: bytes) -> int | None:
    return ipv6_int(t.decode("latin-1"))

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# HAProxy

_HAP_TRUNCATED = "Truncated PROXY protocol header received"
_HAP_NOT_HDR = "Received something which does not look like a PROXY protocol header"
_HAP_BAD_HDR = "Received an invalid PROXY protocol header"
_HAP_BAD_PROTO = "Received an unhandled protocol in the PROXY protocol header"
_HAP_TIMEOUT = "Timeout while waiting for PROXY protocol header"


def _hap_inetaddr(buf: bytearray, p: int, stop: int) -> tuple[int, int]:
    """``inetaddr_host_lim_ret``: per dotted field the last three digits (missing ones are 0)
    form 100a+10b+c, added at the field's byte position — so 256 carries into the field
    before.  Up to four fields; stops at anything that is not a digit or a dot."""
    value = 0
    shift = 24
    text = p
    while True:
        while p < stop and buf[p] in _DIGITS:
            p += 1
        digits = bytes(buf[max(text, p - 3) : p])
        if digits:
            value += int(digits) << shift
        if shift == 0 or p == stop or buf[p] != 0x2E:
            break
        shift -= 8
        p += 1
        text = p
    return value & 0xFFFFFFFF, p


def _hap_read_uint(buf: bytearray, p: int, end: int) -> tuple[int, int]:
    """``__read_uint``: decimal digits until a non-digit or *end*, wrapping at 2**32."""
    value = 0
    while p < end and buf[p] in _DIGITS:
        value = (value * 10 + buf[p] - 48) & 0xFFFFFFFF
        p += 1
    return value, p


def _hap_vars(src: Endpoint, dst: Endpoint) -> tuple[tuple[str, str], ...]:
    """The sample fetches ``src``, ``src_port``, ``dst``, ``dst_port`` (a port of 0 makes the
    port fetch fail: empty in a log-format string)."""
    def port(p: int | None) -> str:
        return str(p) if p else ""
    assert not isinstance(src.host, str) and not isinstance(dst.host, str)
    return (("src", format_ip(src.host)), ("src_port", port(src.port)),
            ("dst", format_ip(dst.host)), ("dst_port", port(dst.port)))


def _cstr(buf: bytearray, start: int) -> bytes:
    end = buf.find(0, start)
    return bytes(buf[start : end if end >= 0 else len(buf)])


def _haproxy(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("haproxy", ver)
    buf = bytearray(data[: knobs["bufsize"]])
    n = len(buf)

    def fail(msg: str, logged: Endpoint | None = None, why: str = "") -> Acceptance:
        exact = not msg.startswith("unknown connection error")  # flags not modelled
        return r(False, msg + (f" ({why})" if why else ""), log_line=msg if exact else None,
                 logged_source=logged)

    if n == 0:
        return r(False, f"nothing to read yet: HAProxy waits until 'timeout client', then logs "
                 f"'{_HAP_TIMEOUT}'", waiting=True, log_line=_HAP_TIMEOUT)
    if n < 6:
        return fail(_HAP_TRUNCATED, why="fewer than 6 bytes in the first read")
    if buf[:6] == b"PROXY ":
        if n < 9:
            return fail(_HAP_TRUNCATED, why="fewer than 9 bytes of a v1 line")
        # Bytes past the received data compare as different here; HAProxy compares them with
        # whatever an earlier connection left in its buffer.
        if buf[6:11] == b"TCP4 ":
            src, p = _hap_inetaddr(buf, 11, n)
            if p == n:
                return fail(_HAP_TRUNCATED, why="line ends inside the source address")
            if buf[p] != 0x20:
                return fail(_HAP_BAD_HDR, why="no space after the source address")
            dst, p = _hap_inetaddr(buf, p + 1, n)
            if p == n:
                return fail(_HAP_TRUNCATED, why="line ends inside the destination address")
            if buf[p] != 0x20:
                return fail(_HAP_BAD_HDR, why="no space after the destination address")
            sport, p = _hap_read_uint(buf, p + 1, n)
            if p == n:
                return fail(_HAP_TRUNCATED, why="line ends inside the source port")
            if buf[p] != 0x20:
                return fail(_HAP_BAD_HDR, why="no space after the source port")
            dport, p = _hap_read_uint(buf, p + 1, n)
            if p > n - 2:
                return fail(_HAP_TRUNCATED, why="no CRLF after the destination port")
            if buf[p] != 0x0D or buf[p + 1] != 0x0A:
                return fail(_HAP_BAD_HDR, why="the destination port is not followed by CRLF")
            source = Endpoint(IPv4Address(src), sport & 0xFFFF)
            destination = Endpoint(IPv4Address(dst), dport & 0xFFFF)
            return r(True, f"v1 TCP4 read by the lenient digit reader: client {source}",
                     source, destination=destination, consumed=p + 2, header_version=1,
                     variables=_hap_vars(source, destination))
        if buf[6:11] == b"TCP6 ":
            return _haproxy_tcp6(buf, r, fail)
        if buf[6:15] == b"UNKNOWN\r\n":
            return r(True, "v1 UNKNOWN (short form): real addresses kept", consumed=15,
                     header_version=1)
        return fail(_HAP_BAD_PROTO, why="not 'TCP4 ', 'TCP6 ' or 'UNKNOWN\\r\\n' after 'PROXY '")
    return _haproxy_v2(buf, r, fail, knobs)


def _haproxy_tcp6(buf: bytearray, r: Callable[..., Acceptance],
                  fail: Callable[..., Acceptance]) -> Acceptance:
    n = len(buf)
    line = 11
    starts: list[int] = []
    while True:
        if line > n - 2:
            return fail(_HAP_TRUNCATED, why="no CRLF")
        if buf[line] == 0x0D:
            buf[line] = 0
            line += 1
            if buf[line] != 0x0A:
                return fail(_HAP_BAD_HDR, why="CR not followed by LF")
            line += 1
            break
        if buf[line] == 0x20:
            buf[line] = 0
            if len(starts) < 3:
                starts.append(line + 1)
        line += 1
    if len(starts) < 3:
        return fail(_HAP_BAD_HDR, why="fewer than four fields")
    dst_s, sport_s, dport_s = starts
    sport, q = _hap_read_uint(buf, sport_s, dport_s - 1)
    if buf[q] != 0:
        return fail(_HAP_BAD_HDR, why="source port is not a number")
    dport, q = _hap_read_uint(buf, dport_s, line - 2)
    if buf[q] != 0:
        return fail(_HAP_BAD_HDR, why="destination port is not a number")
    src = _pton6(_cstr(buf, 11))
    dst = _pton6(_cstr(buf, dst_s))
    if src is None or dst is None:
        return fail(_HAP_BAD_HDR, why="inet_pton(AF_INET6) refuses an address")
    source = Endpoint(IPv6Address(src), sport & 0xFFFF)
    destination = Endpoint(IPv6Address(dst), dport & 0xFFFF)
    return r(True, f"v1 TCP6 read: client {source}", source, destination=destination,
             consumed=line, header_version=1, variables=_hap_vars(source, destination))


def _haproxy_v2(buf: bytearray, r: Callable[..., Acceptance], fail: Callable[..., Acceptance],
                knobs: Mapping[str, Any]) -> Acceptance:
    n = len(buf)
    if n < 16:
        return fail(_HAP_TRUNCATED, why="fewer than 16 bytes and not a v1 line")
    if buf[:12] != V2_SIGNATURE or buf[12] & 0xF0 != 0x20:
        return fail(_HAP_NOT_HDR)
    length = (buf[14] << 8) | buf[15]
    total = 16 + length
    if n < total:
        return fail(_HAP_TRUNCATED, why=f"v2 header of {total} bytes, {n} received")
    command = buf[12] & 0xF
    source: Endpoint | None = None
    destination: Endpoint | None = None
    tlv_at: int | None = None
    if command == 1:
        tlv_at = 0  # families other than TCP4/TCP6 leave it at 0: the signature is read as a TLV
        fam = buf[13]
        if fam == 0x11:
            if length < 12:
                return fail(_HAP_BAD_HDR, why="INET address block shorter than 12 bytes")
            source = Endpoint(IPv4Address(bytes(buf[16:20])), (buf[24] << 8) | buf[25])
            destination = Endpoint(IPv4Address(bytes(buf[20:24])), (buf[26] << 8) | buf[27])
            tlv_at = 28
        elif fam == 0x21:
            if length < 36:
                return fail(_HAP_BAD_HDR, why="INET6 address block shorter than 36 bytes")
            source = Endpoint(IPv6Address(bytes(buf[16:32])), (buf[48] << 8) | buf[49])
            destination = Endpoint(IPv6Address(bytes(buf[32:48])), (buf[50] << 8) | buf[51])
            tlv_at = 52
    elif command == 0:
        if knobs["parse_local_tlvs"]:
            tlv_at = 16
    else:
        return fail(_HAP_BAD_HDR, why=f"command {command}")
    if tlv_at is not None:
        err = _haproxy_tlvs(buf, tlv_at, total, knobs)
        if err is not None:
            msg, why = err
            return fail(msg, source, why)
    if command == 0:
        return r(True, "v2 LOCAL: real addresses kept", consumed=total, header_version=2)
    if source is None:
        return r(True, f"v2 PROXY with family byte 0x{buf[13]:02X}: real addresses kept",
                 consumed=total, header_version=2)
    assert destination is not None
    return r(True, f"v2 PROXY: client {source}", source, destination=destination,
             consumed=total, header_version=2, variables=_hap_vars(source, destination))


def _haproxy_tlvs(buf: bytearray, off: int, total: int,
                  knobs: Mapping[str, Any]) -> tuple[str, str] | None:
    while off < total:
        if off + 3 > total:
            return _HAP_BAD_HDR, "fewer than 3 bytes left for a TLV"
        t = buf[off]
        length = (buf[off + 1] << 8) | buf[off + 2]
        value_at = off + 3
        off += 3 + length
        if off > total:
            return _HAP_BAD_HDR, f"TLV 0x{t:02X} overruns the header"
        if t == TLVType.CRC32C:
            if length != 4:
                return _HAP_BAD_HDR, "CRC32C TLV is not 4 bytes"
            stored = int.from_bytes(buf[value_at : value_at + 4], "big")
            buf[value_at : value_at + 4] = bytes(4)
            if crc32c(bytes(buf[:total])) != stored:
                return _HAP_BAD_HDR, "CRC32C mismatch"
        elif t == TLVType.AUTHORITY and length > 255:
            return _HAP_BAD_HDR, "AUTHORITY longer than 255 bytes"
        elif t == TLVType.UNIQUE_ID and length > 128:
            return _HAP_BAD_HDR, "UNIQUE_ID longer than 128 bytes"
        cap = knobs["tlv_alloc_cap"]
        if cap is not None and length > cap:
            return ("unknown connection error (code=0 flags=...)",
                    f"TLV value longer than {cap} bytes (HA_PP2_MAX_ALLOC); message not verified")
    return None


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="haproxy",
    parse=_haproxy,
    default_version="2.6.12",
    versions=("2.6.12", "2.9", "3.0"),
    knobs=MappingProxyType({"bufsize": 16384, "parse_local_tlvs": False, "tlv_alloc_cap": None}),
    rules=MappingProxyType({
        "program": "`bind ... accept-proxy` (mode tcp or http)",
        "detection": "auto",
        "fragmented": "reject at once: 'Truncated PROXY protocol header received'",
        "v1_addresses": "TCP4: non-validating digit reader (overflow carries, missing octets "
                        "0, last 3 digits per octet); TCP6: inet_pton",
        "v1_ports": "unchecked, taken modulo 65536",
        "unknown_short": "accept, real peer",
        "unknown_long": "reject: unhandled protocol",
        "v1_length": "tune.bufsize (16384)",
        "v2_length": "tune.bufsize (16384)",
        "v2_bad_command": "reject",
        "v2_local": "accept, real peer; address block and TLVs not parsed (until 3.0)",
        "v2_other_families": "reject (the signature is read as a TLV)",
        "crc32c": "verified",
        "tlvs": "strict tiling; AUTHORITY <= 255, UNIQUE_ID <= 128; forged source logged",
        "timeout": "timeout client: 'Timeout while waiting for PROXY protocol header'",
        "reject_log": "'<client>:<port> [<date>] <frontend>/<bind>: <message>'",
        "evidence": "tests/real against Debian HAProxy 2.6.12; 2.9/3.0 from source",
    }),
    sources=("haproxy/haproxy v2.6.0 src/connection.c :: conn_recv_proxy; src/tools.c :: "
             "inetaddr_host_lim_ret; include/haproxy/intops.h :: __read_uint; "
             "src/session.c :: session_kill_embryonic"),
    version_rules=(
        # fecc573da: generic TLV list, HA_PP2_MAX_ALLOC
        VersionRule((2, 9), "tlv_alloc_cap", 1024, "tlvs",
         "strict tiling; AUTHORITY <= 255, UNIQUE_ID <= 128, any value <= 1024; forged source "
         "logged"),
        # 8b72270e9: the TLVs of LOCAL headers are parsed too, from offset 16
        VersionRule((3, 0), "parse_local_tlvs", True, "v2_local",
         "accept, real peer; everything after the 16-byte prefix parsed as TLVs"),
    ),
)
