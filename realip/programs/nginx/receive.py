"""nginx ``listen … proxy_protocol``: what ``ngx_proxy_protocol_read`` accepts from the first read
(stream: one ``MSG_PEEK`` of ``NGX_PROXY_PROTOCOL_MAX_HEADER`` bytes; http: the client header
buffer), and the variables it sets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint
from ..base import ReceiverModel, VersionRule
from . import grammar as ngx

_ngx_parse_addr = ngx.parse_addr
_ngx_ntop = ngx.format_addr
_DIGITS = frozenset(b"0123456789")

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# nginx


_NGX_ADDR_CHARS = frozenset(b"0123456789abcdefABCDEF:.")


def _ngx_port_var(port: int) -> str:
    return str(port) if 0 < port < 65536 else ""


def _nginx(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("nginx", ver)
    buf = data[: knobs["max_header"]]
    if not buf:
        return r(False, "nothing to read yet: nginx waits up to proxy_protocol_timeout "
                 f"({knobs['timeout']}), then logs 'client timed out' at info level and closes",
                 waiting=True, log_line="client timed out (110: Connection timed out)")
    n = len(buf)
    if n >= 16 and buf[:12] == V2_SIGNATURE:
        return _nginx_v2(buf, r)

    def broken() -> Acceptance:
        shown = buf
        if knobs["log_first_line"]:
            m = re.search(rb"[\r\n]", buf)
            shown = buf if m is None else buf[: m.start()]
        line = 'broken header: "' + shown.decode("latin-1") + '"'
        return r(False, line, log_line=line)

    if n < 8 or buf[:6] != b"PROXY ":
        return broken()
    if n - 6 >= 7 and buf[6:13] == b"UNKNOWN":
        crlf = buf.find(b"\r\n", 13)
        if crlf < 0:
            return broken()
        return r(True, "v1 UNKNOWN: skipped up to the first CRLF, no PROXY information (real "
                 "peer kept)", consumed=crlf + 2, header_version=1)
    if n - 6 < 5 or buf[6:9] != b"TCP" or buf[9] not in b"46" or buf[10] != 0x20:
        return broken()
    p = 11
    texts: list[bytes] = []
    for _ in range(2):
        start = p
        while True:
            if p == n:
                return broken()
            ch = buf[p]
            p += 1
            if ch == 0x20:
                break
            if ch not in _NGX_ADDR_CHARS:
                return broken()
        texts.append(buf[start : p - 1])
    ports: list[int] = []
    for sep in (0x20, 0x0D):
        end = buf.find(bytes((sep,)), p)
        if end < 0:
            return broken()
        digits = buf[p:end]
        if not digits or not all(c in _DIGITS for c in digits) or int(digits) > 65535:
            return broken()
        ports.append(int(digits))
        p = end + 1
    if p == n or buf[p] != 0x0A:
        return broken()
    return _nginx_accept(r, texts[0], texts[1], ports[0], ports[1], p + 1, 1)


def _nginx_v2(buf: bytes, r: Callable[..., Acceptance]) -> Acceptance:
    version = buf[12] >> 4
    if version != 2:
        line = f"unknown PROXY protocol version: {version}"
        return r(False, line, log_line=line)
    length = (buf[14] << 8) | buf[15]
    if len(buf) - 16 < length:
        line = "header is too large"
        return r(False, line, log_line=line)
    end = 16 + length
    command = buf[12] & 0xF
    transport = buf[13] & 0xF
    family = buf[13] >> 4
    if command != 1:
        return r(True, f"v2 command {command} is not PROXY: header skipped without error, real "
                 "peer kept", consumed=end, header_version=2)
    if transport != 1:
        return r(True, f"v2 transport {transport} is not STREAM: header skipped, real peer kept",
                 consumed=end, header_version=2)
    if family == 1:
        if length < 12:
            return r(False, "v2 INET address block shorter than 12 bytes: connection closed "
                     "without an error-level log line")
        src: _IP = IPv4Address(buf[16:20])
        dst: _IP = IPv4Address(buf[20:24])
        sport, dport = (buf[24] << 8) | buf[25], (buf[26] << 8) | buf[27]
    elif family == 2:
        if length < 36:
            return r(False, "v2 INET6 address block shorter than 36 bytes: connection closed "
                     "without an error-level log line")
        src = IPv6Address(buf[16:32])
        dst = IPv6Address(buf[32:48])
        sport, dport = (buf[48] << 8) | buf[49], (buf[50] << 8) | buf[51]
    else:
        return r(True, f"v2 family {family} is not INET/INET6: header skipped, real peer kept",
                 consumed=end, header_version=2)
    return _nginx_accept(r, _ngx_ntop(src).encode(), _ngx_ntop(dst).encode(), sport, dport,
                         end, 2)


def _nginx_accept(r: Callable[..., Acceptance], src_text: bytes, dst_text: bytes, sport: int,
                  dport: int, consumed: int, version: int) -> Acceptance:
    variables = [
        ("proxy_protocol_addr", src_text.decode("latin-1")),
        ("proxy_protocol_port", _ngx_port_var(sport)),
        ("proxy_protocol_server_addr", dst_text.decode("latin-1")),
        ("proxy_protocol_server_port", _ngx_port_var(dport)),
    ]
    src = _ngx_parse_addr(src_text)
    dst = _ngx_parse_addr(dst_text)
    destination = None if dst is None else Endpoint(dst, dport)
    if src is None:
        return r(True, f"v{version} header read, but stream realip cannot parse "
                 f"{src_text.decode('latin-1')!r}: real peer kept ($proxy_protocol_addr still "
                 "holds the text)", destination=destination, consumed=consumed,
                 header_version=version, variables=tuple(variables))
    variables += [("remote_addr", _ngx_ntop(src)), ("remote_port", _ngx_port_var(sport))]
    source = Endpoint(src, sport)
    return r(True, f"v{version} header read; stream realip sets $remote_addr {_ngx_ntop(src)}",
             source, destination=destination, consumed=consumed, header_version=version,
             variables=tuple(variables))


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="nginx",
    parse=_nginx,
    default_version="1.22.1",
    versions=("1.22.1", "1.23.2", "1.23.3", "1.31"),
    knobs=MappingProxyType({"max_header": 107, "log_first_line": False, "timeout": "30s"}),
    rules=MappingProxyType({
        "program": "stream `listen ... proxy_protocol` + `set_real_ip_from` (stream realip)",
        "detection": "auto",
        "fragmented": "reject at once (one MSG_PEEK)",
        "v1_addresses": "charset 0-9a-fA-F:. only, may be empty, family unchecked; realip then "
                        "parses leniently (leading zeros, empty octets) or keeps the peer",
        "v1_ports": "0-65535, leading zeros ok; port 0 leaves $remote_port empty",
        "unknown_short": "accept, real peer",
        "unknown_long": "accept, real peer (anything up to CRLF)",
        "v1_length": "107 bytes (the peek buffer; 4096 from 1.23.3)",
        "v2_length": "107 bytes: 'header is too large' (4096 from 1.23.3)",
        "v2_bad_command": "skipped like LOCAL (accept, real peer)",
        "v2_local": "accept, real peer",
        "v2_other_families": "skipped (accept, real peer)",
        "crc32c": "not verified",
        "tlvs": "not checked at accept time",
        "timeout": "proxy_protocol_timeout (30 s), 'client timed out' at info level",
        "reject_log": "broken header: \"<everything peeked, payload included>\" (first "
                      "line only from 1.23.2); 'unknown PROXY protocol version: N'; 'header "
                      "is too large'; short v2 address block: no log line",
        "evidence": "tests/real against Debian nginx 1.22.1; newer versions from source",
    }),
    sources=("nginx/nginx release-1.22.1 src/core/ngx_proxy_protocol.c :: "
             "ngx_proxy_protocol_read, ngx_proxy_protocol_v2_read; src/stream/"
             "ngx_stream_handler.c :: ngx_stream_proxy_protocol_handler; src/stream/"
             "ngx_stream_realip_module.c; src/core/ngx_inet.c :: ngx_parse_addr, "
             "ngx_inet6_ntop"),
    version_rules=(
        # 68119b436: quote only the first line of the received data
        VersionRule((1, 23, 2), "log_first_line", True, "reject_log",
         "broken header: \"<data up to the first CR or LF>\"; 'unknown PROXY protocol "
         "version: N'; 'header is too large'; short v2 address block: no log line"),
        # 7600ca028: NGX_PROXY_PROTOCOL_MAX_HEADER 107 -> 4096
        VersionRule((1, 23, 3), "max_header", 4096, "v1_length", "4096 bytes (the peek buffer)"),
        VersionRule((1, 23, 3), "", None, "v2_length", "4096 bytes: 'header is too large'"),
    ),
)


def read_http_listener(data: bytes, version: str | None = None) -> Acceptance:
    """``listen … proxy_protocol`` in ``http``: the header is parsed from the first read into
    the client header buffer (``client_header_buffer_size``, 1 KiB), not from the stream
    module's 107-byte peek — so before 1.23.2 a broken header is quoted with everything read
    (up to 1 KiB), not only 107 bytes."""
    ver, knobs = RECEIVER.settings(version)
    return _nginx(data[:1024], ver, {**knobs, "max_header": 1024})
