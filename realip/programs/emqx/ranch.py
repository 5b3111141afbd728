"""EMQX ws/wss listeners with ``proxy_protocol = true``: cowboy reading the header with ranch
2.2's ``ranch_proxy_header:parse/1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint, TLVType, crc32c
from ..base import ReceiverModel
from . import erlang
from .esockd import _Crash

# Erlang's own readers (the room's shared grammar, realip.programs.emqx.erlang)
_erl_ipv6 = erlang.parse_ipv6
_erl_int = erlang.list_to_integer
_erl_ip = erlang.parse_address_bytes
_erl_ipv4_strict = erlang.parse_ipv4strict

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# EMQX ws/wss: cowboy -> ranch_proxy_header:parse/1


class _RanchError(Exception):
    """``{error, HumanReadable}`` from ranch_proxy_header:parse/1."""


_R_V1_MALFORMED = "Malformed or incomplete PROXY protocol header line. (PP 2.1)"
_R_V1_IPV4 = "Failed to parse an IPv4 address in the PROXY protocol header line. (PP 2.1)"
_R_V1_IPV6 = "Failed to parse an IPv6 address in the PROXY protocol header line. (PP 2.1)"
_R_V1_PORT = "Failed to parse a port number in the PROXY protocol header line. (PP 2.1)"
_R_V2_MISSING = "Missing data in the PROXY protocol binary header. (PP 2.2)"
_R_V2_TLV_LEN = "Invalid TLV length in the PROXY protocol binary header. (PP 2.2)"


def _ranch(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("emqx-ws", ver)
    if not data:
        return r(False, f"nothing to read yet: cowboy waits {knobs['timeout']} "
                 "(ranch:recv_proxy_header/2), then the connection is closed", waiting=True)
    try:
        info = _ranch_parse(data)
    except _RanchError as e:
        return r(False, f"{{error, protocol_error, '{e}'}}: connection process exits", )
    except _Crash as e:
        return r(False, f"connection process crashed ({e}): socket closed")
    consumed, version, command, src, dst = info
    if src is not None:
        return r(True, f"v{version} PROXY: EMQX takes peername {src} (X-Forwarded-For is "
                 "ignored)", src, destination=dst, consumed=consumed, header_version=version)
    what = "LOCAL" if command == 0 else "no INET/INET6 source"
    return r(True, f"v{version} {what}: EMQX falls back to the X-Forwarded-For header (or "
             "the real peer)", consumed=consumed, header_version=version)


_RanchInfo = tuple[int, int, int, Endpoint | None, Endpoint | None]


def _ranch_parse(data: bytes) -> _RanchInfo:
    if data[:12] == V2_SIGNATURE:
        return _ranch_v2(data)
    if data[:6] == b"PROXY ":
        return _ranch_v1(data)
    raise _RanchError("The PROXY protocol header signature was not recognized. (PP 2.1, PP 2.2)")


def _ranch_port(rest: bytes | int, sep: int) -> tuple[int, bytes | int]:
    if isinstance(rest, bytes):
        for k in range(1, 6):
            if len(rest) > k and rest[k] == sep:
                return _ranch_port_value(rest[:k]), rest[k + 1 :]
        return _ranch_port_value(rest), sep  # the catch-all clause parse_port(Port0, Rest)
    raise _RanchError(_R_V1_PORT)  # binary_to_integer on an integer: badarg


def _ranch_port_value(text: bytes) -> int:
    value = _erl_int(text.decode("latin-1"))
    if value is None or not 0 < value <= 65535:
        raise _RanchError(_R_V1_PORT)
    return value


def _ranch_v1(data: bytes) -> _RanchInfo:
    rest = data[6:]
    if rest[:9] == b"UNKNOWN\r\n":
        return 15, 1, 1, None, None
    if rest[:8] == b"UNKNOWN ":
        crlf = rest.find(b"\r\n", 8)
        if crlf < 0:
            raise _RanchError(_R_V1_MALFORMED)
        return 6 + crlf + 2, 1, 1, None, None
    if rest[:5] not in (b"TCP4 ", b"TCP6 "):
        raise _RanchError("The INET protocol and family string was not recognized. (PP 2.1)")
    v6 = rest[3] == 0x36
    rest = rest[5:]
    addrs: list[_IP] = []
    for _ in range(2):
        if v6:
            sp = rest.find(b" ")
            if sp < 0:
                raise _RanchError(_R_V1_MALFORMED)
            a6 = _erl_ipv6(rest[:sp].decode("latin-1"))
            if a6 is None:
                raise _RanchError(_R_V1_IPV6)
            addrs.append(IPv6Address(a6))
            rest = rest[sp + 1 :]
        else:
            for k in range(7, 16):
                if len(rest) > k and rest[k] == 0x20:
                    a4 = _erl_ipv4_strict(rest[:k].decode("latin-1"))
                    if a4 is None:
                        raise _RanchError(_R_V1_IPV4)
                    addrs.append(IPv4Address(a4))
                    rest = rest[k + 1 :]
                    break
            else:
                raise _RanchError(_R_V1_MALFORMED)
    sport, after = _ranch_port(rest, 0x20)
    dport, after = _ranch_port(after, 0x0D)
    if not isinstance(after, bytes) or after[:1] != b"\n":
        raise _RanchError(_R_V1_MALFORMED)
    consumed = len(data) - len(after) + 1
    return consumed, 1, 1, Endpoint(addrs[0], sport), Endpoint(addrs[1], dport)


def _ranch_v2(data: bytes) -> _RanchInfo:
    rest = data[12:]
    if len(rest) >= 4 and rest[0] == 0x20:
        length = (rest[2] << 8) | rest[3]
        if len(rest) - 4 < length:
            raise _RanchError(_R_V2_MISSING)
        return 16 + length, 2, 0, None, None
    if len(rest) >= 4 and rest[0] == 0x21 and rest[1] >> 4 <= 3 and rest[1] & 0xF <= 2:
        family, proto = rest[1] >> 4, rest[1] & 0xF
        length = (rest[2] << 8) | rest[3]
        if len(rest) - 4 < length:
            raise _RanchError(_R_V2_MISSING)
        body = data[16:]
        if family == 0 or proto == 0:
            return 16 + length, 2, 1, None, None
        if family == 1 and len(body) >= 12 and length >= 12:
            src: Endpoint | None = Endpoint(IPv4Address(body[0:4]), (body[8] << 8) | body[9])
            dst: Endpoint | None = Endpoint(IPv4Address(body[4:8]), (body[10] << 8) | body[11])
            at = 12
        elif family == 2 and len(body) >= 36 and length >= 36:
            src = Endpoint(IPv6Address(body[0:16]), (body[32] << 8) | body[33])
            dst = Endpoint(IPv6Address(body[16:32]), (body[34] << 8) | body[35])
            at = 36
        elif family == 3 and len(body) >= 216 and length >= 216:
            s_path = body[0:108].split(b"\0", 1)
            d_path = body[108:216].split(b"\0", 1)
            if len(s_path) < 2 or not s_path[0] or len(d_path) < 2 or not d_path[0]:
                raise _RanchError("Invalid UNIX address in PROXY protocol binary header. (PP 2.2)")
            src = dst = None  # a path: EMQX needs src_address and src_port, so it falls back
            at = 216
        else:
            raise _RanchError("Invalid length in the PROXY protocol binary header. (PP 2.2)")
        end = _ranch_tlvs(data, 16 + at, length - at, length)
        return end, 2, 1, src, dst
    if len(rest) < 1:
        raise _Crash("function_clause in ranch_proxy_header:parse_v2/1")
    if rest[0] >> 4 != 2:
        raise _RanchError("Invalid version in the PROXY protocol binary header. (PP 2.2)")
    if rest[0] & 0xF > 1:
        raise _RanchError("Invalid command in the PROXY protocol binary header. (PP 2.2)")
    if len(rest) >= 2 and rest[1] >> 4 > 3:
        raise _RanchError("Invalid address family in the PROXY protocol binary header. (PP 2.2)")
    if len(rest) >= 2 and rest[1] & 0xF > 2:
        raise _RanchError(
            "Invalid transport protocol in the PROXY protocol binary header. (PP 2.2)")
    raise _Crash("function_clause in ranch_proxy_header:parse_v2/1")


def _ranch_tlvs(data: bytes, at: int, remaining: int, length: int) -> int:
    """ranch parse_tlv/4: *remaining* counts down; the patterns read the received bytes, so a
    TLV overrunning the header reads into the payload (and fails later)."""
    while remaining != 0:
        if at + 3 > len(data):
            raise _RanchError(_R_V2_TLV_LEN)
        t = data[at]
        tl = (data[at + 1] << 8) | data[at + 2]
        value = data[at + 3 : at + 3 + tl]
        if t == TLVType.CRC32C and tl == 4 and len(data) >= at + 7:
            after_len = remaining - 7
            before_len = 3 + length - after_len - 4
            if after_len < 0 or before_len < 0:
                raise _Crash("badmatch while locating the CRC32C field")
            full = data[: 16 + length]
            crc_pos = 13 + before_len
            zeroed = full[:crc_pos] + bytes(4) + full[crc_pos + 4 :]
            if crc32c(zeroed) != int.from_bytes(data[at + 3 : at + 7], "big"):
                raise _RanchError(
                    "Failed CRC32C verification in PROXY protocol binary header. (PP 2.2)")
            at += 7
            remaining = after_len
            continue
        if t == TLVType.UNIQUE_ID and (tl > 128 or len(value) < tl):
            raise _RanchError("Invalid TLV length in the PROXY protocol binary header. "
                              "(PP 2.2, PP 2.2.5)")
        if t == TLVType.SSL and len(data) >= at + 8:  # the SSL clause needs client + verify
            if tl < 5 or len(data) < at + 3 + tl:
                raise _RanchError(_R_V2_TLV_LEN)
            subs = value[5:]
            j = 0
            sub_left = tl - 5
            while sub_left != 0:
                if j + 3 > len(subs) or j + 3 + ((subs[j + 1] << 8) | subs[j + 2]) > len(subs):
                    raise _RanchError(_R_V2_TLV_LEN)
                st = subs[j]
                sl = (subs[j + 1] << 8) | subs[j + 2]
                if st not in (0x21, 0x22, 0x23, 0x24, 0x25):
                    raise _RanchError("Invalid TLV subtype for PP2_TYPE_SSL in PROXY protocol "
                                      "binary header. (PP 2.2)")
                j += 3 + sl
                sub_left -= 3 + sl
            at += 3 + tl
            remaining -= 3 + tl
            continue
        if len(value) < tl:
            raise _RanchError(_R_V2_TLV_LEN)
        at += 3 + tl
        remaining -= 3 + tl
    return at


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="emqx-ws",
    parse=_ranch,
    default_version="2.2",
    versions=("2.2",),
    knobs=MappingProxyType({"timeout": "1s"}),
    rules=MappingProxyType({
        "program": "EMQX ws/wss listener `proxy_protocol = true` (cowboy -> ranch 2.2)",
        "detection": "auto",
        "fragmented": "reject (single recv)",
        "v1_addresses": "strict per family (ipv4strict / ipv6strict, scope ids allowed)",
        "v1_ports": "1-65535",
        "unknown_short": "accept, falls back to X-Forwarded-For / peer",
        "unknown_long": "accept, falls back to X-Forwarded-For / peer",
        "v1_length": "none",
        "v2_length": "none",
        "v2_bad_command": "reject",
        "v2_local": "accept, falls back to X-Forwarded-For / peer",
        "v2_other_families": "accept; DGRAM keeps addresses, UNSPEC/UNIX fall back to XFF",
        "crc32c": "verified",
        "tlvs": "UNIQUE_ID <= 128; SSL sub-TLVs 0x21-0x25 only",
        "timeout": "1 s hard-coded in cowboy",
        "reject_log": "ranch's human-readable atom (connection process exits)",
        "evidence": "ported from ninenines/ranch src/ranch_proxy_header.erl (not executed)",
    }),
    sources=("ninenines/ranch 2.2 src/ranch_proxy_header.erl :: parse; src/ranch_tcp.erl "
             ":: recv_proxy_header; emqx/emqx emqx_ws_connection.erl :: get_peer_info"),
)
