"""aedes-protocol-decoder 2.2.0 (``extractProxyDetails``) reading a PROXY header with
proxy-protocol-js 4.0.6, as aedes-server-factory 0.2.1 calls it on the first ``readable`` chunk.

The decoder looks at the **first chunk only** and hands what its parser calls ``data`` to the MQTT
parser.  Every parse error is thrown inside the socket's ``readable`` handler and nothing catches
it: the Node process dies (:attr:`~realip.decisions.Acceptance.crash`), taking every client of the
broker with it.  Addresses are kept as the header wrote them (no validation), v1 ports are any
run of digits, and v2's length field only has to be at least the family's block size: the rest of
the header (TLVs) is handed to the MQTT parser, which closes the connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Any, Final

from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint
from ..base import ReceiverModel

__all__ = ["RECEIVER", "ipv6_text"]

_V1_ERR = "V1BinaryProxyProtocolParseError"
_V2_ERR = "V2ProxyProtocolParseError"


class _Thrown(Exception):
    """What proxy-protocol-js throws (uncaught in aedes-server-factory)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.text = f"{name}: {message}"


def _host(text: str) -> IPv4Address | IPv6Address | str:
    # an address the decoder copied verbatim stays text unless it is already canonical
    try:
        ip = ip_address(text)
    except ValueError:
        return text
    return ip if str(ip) == text else text


def _v1(data: bytes) -> tuple[str, str, str, int, int, int]:
    pos = 5  # after "PROXY" (the decoder checked "PROXY "), the cursor is on the space

    def nxt() -> int:
        nonlocal pos
        pos += 1
        if pos >= len(data):
            raise _Thrown(_V1_ERR, "protocol payload has been terminated unexpectedly")
        return data[pos]

    def field() -> bytes:
        out = bytearray()
        while (b := nxt()) != 0x20:
            out.append(b)
        return bytes(out)

    proto = field().decode("utf-8", "replace")
    if proto not in ("TCP4", "TCP6", "UNKNOWN"):
        raise _Thrown(_V1_ERR, "unexpected INET protocol has come")
    addrs = []
    for _ in range(2):
        raw = field()
        if not raw:
            raise _Thrown(_V1_ERR, "address information is missing")
        addrs.append(raw.decode("utf-8", "replace"))

    def port(last: bool) -> int:
        digits = []
        while True:
            b = nxt()
            if not last and b == 0x20:
                break
            if last and b == 0x0D:
                if nxt() == 0x0A:
                    break
                raise _Thrown(_V1_ERR, "invalid port information has come")
            if not 0x30 <= b <= 0x39:
                raise _Thrown(_V1_ERR, "invalid port information has come")
            digits.append(b - 0x30)
        if not digits:
            raise _Thrown(_V1_ERR, "port information is missing")
        return int("".join(map(str, digits)))

    sport, dport = port(False), port(True)
    return proto, addrs[0], addrs[1], sport, dport, pos + 1


def ipv6_text(block: bytes) -> str:
    """aedes-protocol-decoder's ``parseIpV6Array``: hex groups without leading zeros, then every
    run of colons squeezed to ``::`` (``::ffff:cb00:7107``, ``2001:db8::1::1``)."""
    block = block[:16].ljust(16, b"\0")
    groups = [block[i : i + 2].hex().lstrip("0") for i in range(0, 16, 2)]
    return re.sub(r":{2,}", "::", ":".join(groups))


_FAMILY_LEN: Final = {0x00: 0, 0x10: 12, 0x20: 36, 0x30: 216}


def _aedes(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("aedes", ver)
    try:
        if data[:6] == b"PROXY ":
            return _accept_v1(data, r)
        if data[:12] == V2_SIGNATURE:
            return _accept_v2(data, r)
    except _Thrown as exc:
        return r(False, f"uncaught {exc.text}: the Node process dies and every client of the "
                 "broker is disconnected", log_line=exc.text, crash=True)
    if not data:
        return r(False, "nothing read yet: aedes-server-factory waits for the first chunk",
                 waiting=True)
    return r(True, "no PROXY header: the bytes go to the MQTT parser as they are", consumed=0,
             variables=(("isProxy", "0"),))


def _accept_v1(data: bytes, r: Callable[..., Acceptance]) -> Acceptance:
    proto, src, dst, sport, dport, end = _v1(data)
    family = {"TCP4": "4", "TCP6": "6"}.get(proto, "0")
    return r(True, f"v1 {proto}: client {src}:{sport} taken verbatim", Endpoint(_host(src), sport),
             destination=Endpoint(_host(dst), dport), consumed=end,
             header_version=1, variables=(("ipAddress", src), ("port", str(sport)),
                                          ("isProxy", "1"), ("ipFamily", family)))


def _accept_v2(data: bytes, r: Callable[..., Acceptance]) -> Acceptance:
    if len(data) < 13:
        raise _Thrown(_V2_ERR, "given binary doesn't have a byte for version and command "
                      "(13rd byte)")
    if data[12] & 0xF0 != 0x20:
        raise _Thrown(_V2_ERR, "given protocol version is invalid")
    if data[12] & 0x0F not in (0, 1):
        raise _Thrown(_V2_ERR, "given command is invalid")
    if len(data) < 14:
        raise _Thrown(_V2_ERR, "given binary doesn't have a byte for address family and "
                      "transport protocol (14th byte)")
    fam, transport = data[13] & 0xF0, data[13] & 0x0F
    if fam not in _FAMILY_LEN:
        raise _Thrown(_V2_ERR, "given address family is invalid")
    if transport not in (0, 1, 2):
        raise _Thrown(_V2_ERR, "given transport protocol is invalid")
    if len(data) < 16:
        raise _Thrown(_V2_ERR, "given binary doesn't have bytes for specifying length")
    length = (data[14] << 8) | data[15]
    need = _FAMILY_LEN[fam]
    if length < need:
        raise _Thrown(_V2_ERR, "given specified length is shorter than address family's "
                      "length")
    block = data[16:]
    variables: list[tuple[str, str]] = []
    source: Endpoint | None = None
    if fam in (0x10, 0x20):
        if fam == 0x10:
            text = ".".join([str(b) for b in block[:4]] + [""] * (4 - len(block[:4])))
            pb = 8
        else:
            text = ipv6_text(block)
            pb = 32
        port: int | None = (block[pb] << 8) + block[pb + 1] if len(block) >= pb + 2 else None
        variables = [("ipAddress", text), ("port", "NaN" if port is None else str(port)),
                     ("ipFamily", "4" if fam == 0x10 else "6")]
        source = Endpoint(_host(text), port)
    variables.append(("isProxy", "2"))
    who = f"client {variables[0][1]}:{variables[1][1]}" if source else "the real peer"
    consumed = 16 + need
    if len(data) < consumed:
        return r(False, f"v2: {who}, but the {need}-byte address block is cut after "
                 f"{len(block)} bytes: the rest of the header arrives later and reaches the MQTT "
                 "parser, which closes the connection", variables=tuple(variables),
                 logged_source=source, header_version=2)
    if length > need:
        return r(False, f"v2: {who}, but the length field ({length}) is ignored: the "
                 f"{length - need} bytes after the address block (TLVs) reach the MQTT parser, "
                 "which closes the connection", variables=tuple(variables),
                 logged_source=source, header_version=2)
    return r(True, f"v2: {who}", source, consumed=consumed, header_version=2,
             variables=tuple(variables))


RECEIVER: Final = ReceiverModel(
    name="aedes",
    parse=_aedes,
    default_version="2.2.0",
    versions=("2.2.0",),
    knobs=MappingProxyType({}),
    rules=MappingProxyType({
        "program": "aedes 1.2.0 + aedes-server-factory 0.2.1 `trustProxy: true` + "
                   "aedes-protocol-decoder 2.2.0 (proxy-protocol-js 4.0.6)",
        "detection": "optional: `PROXY ` or the v2 signature at the start of the first chunk",
        "fragmented": "first chunk only: a cut v1 line crashes the process",
        "v1_addresses": "verbatim, any bytes up to a space (203.0.113.256, abc.def.1.2)",
        "v1_ports": "any run of digits (65536, 99999999999); sign or other bytes crash",
        "unknown_short": "crash (the parser reads on for addresses)",
        "unknown_long": "accept, the header's addresses",
        "v1_length": "none",
        "v2_length": "must be >= the family's block; larger: TLVs reach the MQTT parser",
        "v2_bad_command": "crash",
        "v2_local": "real peer; LOCAL with an INET block uses the block",
        "v2_other_families": "UNIX: real peer; bad family/transport: crash",
        "crc32c": "not verified (the TLV bytes break MQTT)",
        "tlvs": "not read: handed to the MQTT parser, connection closed",
        "timeout": "none (connectTimeout 30 s for CONNECT)",
        "reject_log": "an uncaught V1/V2ProxyProtocolParseError ends the Node process",
        "evidence": "273 TCP cases on the real aedes (tests/vectors/aedes_1.2.0.json)",
    }),
    sources="npm aedes-protocol-decoder 2.2.0 index.js (extractProxyDetails), proxy-protocol-js "
            "4.0.6 lib/v1/V1BinaryProxyProtocol.js, lib/v2/V2ProxyProtocol.js",
    choices=("2.2.0",),
    choice_error="version must be '2.2.0', not {ver!r}",
)
