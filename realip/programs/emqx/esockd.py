"""EMQX tcp/ssl listeners with ``proxy_protocol = true``: esockd's ``esockd_proxy_protocol``
(both backends, ``gen_tcp`` and ``socket``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...errors import quote_bytes
from ...proxy_protocol import V2_SIGNATURE, Endpoint, TLVType
from ..base import ReceiverModel
from . import erlang

# Erlang's own readers (the room's shared grammar, realip.programs.emqx.erlang)
_erl_ipv6 = erlang.parse_ipv6
_erl_int = erlang.list_to_integer
_erl_ip = erlang.parse_address_bytes
_erl_ipv4_strict = erlang.parse_ipv4strict

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# EMQX tcp/ssl: esockd


class _Crash(Exception):
    """An Erlang process crash in the model (pattern-match failure and the like)."""


def _esockd(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("emqx-tcp", ver)
    timeout = knobs["timeout"]
    wait = (f"esockd blocks for more bytes until proxy_protocol_timeout ({timeout}), then "
            "closes with proxy_proto_timeout")
    try:
        if knobs["backend"] == "socket":
            return _esockd_socket(data, r, wait, knobs)
        if not data:
            return r(False, wait, waiting=True)
        lf = data.find(b"\n")
        if lf < 0:
            return r(False, "first line not complete: " + wait, waiting=True)
        line = data[: lf + 1]
        if line[:9] == b"PROXY TCP" and len(line) >= 11 and line[10] == 0x20:
            return _esockd_v1(line[11:], line[9], len(line), r)
        if line[:13] == b"PROXY UNKNOWN":
            return r(True, "v1 UNKNOWN line: real peer kept", consumed=len(line),
                     header_version=1)
        if line == b"\r\n":
            return _esockd_v2(data, 2, r, wait)
        return r(False, f"{{invalid_proxy_info, {quote_bytes(line)}}}: connection closed")
    except _Crash as e:
        return r(False, f"connection process crashed ({e}): socket closed")


def _esockd_socket(data: bytes, r: Callable[..., Acceptance], wait: str,
                   knobs: Mapping[str, Any]) -> Acceptance:
    if len(data) < 2:
        return r(False, wait, waiting=True)
    if data[:2] == b"\r\n":
        return _esockd_v2(data, 2, r, wait)
    if data[:2] != b"PR":
        return r(False, f"{{invalid_proxy_info, {quote_bytes(data[:2])}}}: connection closed")
    window = knobs["v1_window"]
    rest = data[2:]
    pos = rest.find(b"\r\n", 0, window)
    if pos < 0:
        if len(rest) < window:
            return r(False, "no CRLF yet: " + wait, waiting=True)
        return r(False, f"{{invalid_proxy_info, {quote_bytes(rest)}}}: no CRLF within "
                 f"{window} bytes")
    line = rest[:pos]
    if line[:7] == b"OXY TCP" and len(line) >= 9 and line[8] == 0x20:
        return _esockd_v1(line[9:], line[7], pos + 4, r)
    if line[:11] == b"OXY UNKNOWN":
        return r(True, "v1 UNKNOWN line: real peer kept", consumed=pos + 4, header_version=1)
    return r(False, f"{{invalid_proxy_info, {quote_bytes(b'PR' + line)}}}: connection closed")


def _esockd_v1(info: bytes, proto: int, consumed: int,
               r: Callable[..., Acceptance]) -> Acceptance:
    if proto not in b"46":
        raise _Crash(f"function_clause in inet_family/1 for {chr(proto)!r}")
    parts = re.split(rb" |\r\n", info)
    while parts and parts[-1] == b"":
        parts.pop()
    if len(parts) != 4:
        raise _Crash(f"badmatch: {len(parts)} fields instead of 4")
    src = _erl_ip(parts[0])
    dst = _erl_ip(parts[1])
    if src is None or dst is None:
        raise _Crash("badmatch: inet:parse_address returned {error, einval}")
    sport = _erl_int(parts[2].decode("latin-1"))
    dport = _erl_int(parts[3].decode("latin-1"))
    if sport is None or dport is None:
        raise _Crash("badarg in list_to_integer/1 for a port")
    source = Endpoint(src, sport)
    return r(True, f"v1 read with inet:parse_address: client {source}", source,
             destination=Endpoint(dst, dport), consumed=consumed, header_version=1)


def _esockd_v2(data: bytes, at: int, r: Callable[..., Acceptance], wait: str) -> Acceptance:
    head = data[at : at + 14]
    if len(head) < 14:
        return r(False, "v2 fixed part not complete: " + wait, waiting=True)
    if head[:10] != V2_SIGNATURE[2:] or head[10] >> 4 != 2:
        return r(False, f"{{invalid_proxy_info, {quote_bytes(head)}}}: connection closed")
    command = head[10] & 0xF
    family = head[11] >> 4
    transport = head[11] & 0xF
    length = (head[12] << 8) | head[13]
    start = at + 14
    if length == 0:
        # gen_tcp:recv(Socket, 0) returns whatever is buffered (or waits for anything).
        body = data[start:]
        if not body:
            return r(False, "length 0: recv(Socket, 0) waits for any byte, which it will "
                     "swallow as the address block; " + wait, waiting=True)
        consumed = len(data)
    else:
        if len(data) - start < length:
            return r(False, f"v2 body of {length} bytes not complete: " + wait, waiting=True)
        body = data[start : start + length]
        consumed = start + length
    if family > 3:
        raise _Crash(f"function_clause in inet_family/1 for family {family}")
    if command == 0:
        note = " (recv(0) swallowed the bytes after it)" if length == 0 and body else ""
        return r(True, "v2 LOCAL: real peer kept" + note, consumed=consumed, header_version=2)
    if command != 1 or transport != 1 or family not in (1, 2):
        return r(False, "{error, unsupported_proto_v2}: connection closed")
    size = 12 if family == 1 else 36
    if len(body) < size:
        raise _Crash(f"badmatch: address block of {len(body)} bytes")
    if family == 1:
        src: _IP = IPv4Address(body[0:4])
        dst: _IP = IPv4Address(body[4:8])
    else:
        src = IPv6Address(body[0:16])
        dst = IPv6Address(body[16:32])
    sport = (body[size - 4] << 8) | body[size - 3]
    dport = (body[size - 2] << 8) | body[size - 1]
    err = _esockd_tlvs(body[size:])
    if err is not None:
        return r(False, err)
    source = Endpoint(src, sport)
    note = " (address block read from the bytes after a length-0 header)" if length == 0 else ""
    return r(True, f"v2 PROXY: client {source}{note}", source, destination=Endpoint(dst, dport),
             consumed=consumed, header_version=2)


def _esockd_tlvs(b: bytes) -> str | None:
    i = 0
    while i < len(b):
        if len(b) - i < 3 or i + 3 + ((b[i + 1] << 8) | b[i + 2]) > len(b):
            return (f"{{error, {{malformed_pp2_tlv, {len(b) - i}}}}} (warning "
                    "'malformed_pp2_tlv' logged): connection closed")
        t = b[i]
        length = (b[i + 1] << 8) | b[i + 2]
        value = b[i + 3 : i + 3 + length]
        i += 3 + length
        if t == TLVType.SSL:
            if len(value) < 5:
                raise _Crash("function_clause in parse_pp2_ssl/1 (SSL TLV under 5 bytes)")
            j = 5
            while j < len(value):
                if len(value) - j < 3 or j + 3 + ((value[j + 1] << 8) | value[j + 2]) > len(value):
                    return (f"{{error, {{malformed_pp2_ssl_tlv, {len(value) - j}}}}} (warning "
                            "'malformed_pp2_tlv' logged): connection closed")
                j += 3 + ((value[j + 1] << 8) | value[j + 2])
    return None


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="emqx-tcp",
    parse=_esockd,
    default_version="gen_tcp",
    versions=("gen_tcp", "socket"),
    knobs=MappingProxyType({"backend": "gen_tcp", "v1_window": 108, "timeout": "3s"}),
    rules=MappingProxyType({
        "program": "EMQX tcp/ssl listener `proxy_protocol = true` (esockd 5.17)",
        "detection": "auto (first line: 'PROXY TCP', 'PROXY UNKNOWN' or '\\r\\n')",
        "fragmented": "waits until proxy_protocol_timeout",
        "v1_addresses": "inet:parse_address (lenient: octal, hex, short forms), family "
                        "unchecked",
        "v1_ports": "list_to_integer, no range check",
        "unknown_short": "accept, real peer",
        "unknown_long": "accept, real peer",
        "v1_length": "none (gen_tcp line mode) / 108 (socket backend)",
        "v2_length": "65535 (read exactly len); len 0 swallows whatever is buffered",
        "v2_bad_command": "error unsupported_proto_v2",
        "v2_local": "accept, real peer",
        "v2_other_families": "error unsupported_proto_v2; family > 3 crashes",
        "crc32c": "not verified",
        "tlvs": "strict tiling; SSL value < 5 bytes crashes",
        "timeout": "proxy_protocol_timeout (3 s); v2 follow-up reads capped at 17 s",
        "reject_log": "Erlang error terms (not modelled exactly)",
        "evidence": "ported from emqx/esockd src/esockd_proxy_protocol.erl (not executed)",
    }),
    sources=("emqx/esockd 5.17.0 src/esockd_proxy_protocol.erl; erlang/otp "
             "lib/kernel/src/inet_parse.erl :: address"),
    choices=("gen_tcp", "socket"),
    choice_error="version names the esockd backend: 'gen_tcp' or 'socket', not {ver!r}",
    select=lambda v: {"backend": v},
)
