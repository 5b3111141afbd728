"""EMQX tcp/ssl listeners with ``proxy_protocol = true``: esockd's ``esockd_proxy_protocol``.

esockd 5.x reads the header with one of two backends, and the model's versions name them as
data: ``"5.17 gen_tcp"`` (default; ``esockd_transport:proxy_upgrade/2``, a ``{packet, line}``
read of the first line) and ``"5.17 socket"`` (``esockd_socket:proxy_upgrade/2``, two bytes,
then a peek loop for CRLF within 108 bytes); the bare ``"gen_tcp"`` / ``"socket"`` still read.
Which one an EMQX listener uses (``listeners.tcp.<name>.tcp_backend``, emqx
``apps/emqx/src/emqx_schema.erl`` ``fields("mqtt_tcp_listener")``):

* EMQX 5.0 – 5.10 (esockd 5.9.3 – 5.14.0): no ``tcp_backend``; always gen_tcp.
* EMQX 6.0 – 6.3.0-beta.1 (esockd 5.15.0 – 5.17.0): ``tcp_backend``, default ``gen_tcp``.
* EMQX 6.3.0-beta.2 on (esockd 5.17.0; emqx master pins 5.17.2): default ``socket`` on Unix,
  ``gen_tcp`` on Windows (:func:`backend_for`).
* ssl listeners always go through ``esockd_transport`` (the gen_tcp path).

Checked against the real esockd 5.17.0 under OTP 25 on every ``EDGE_CASES`` case and spec vector
(``tests/vectors/esockd_5.17.0.json``, ``tests/test_esockd_vectors.py``).  The socket backend
crashes on a v2 LOCAL header (``function_clause`` in ``set_socket_meta/1``), busy-waits at 100%
CPU on a v1 line without CRLF and then crashes with ``{invalid,{timeout,-1}}``, and reports a
missing v2 body as ``{recv_proxy_info_error,timeout}`` (so does gen_tcp).  A rejection carries
the term ``recv/3`` returned as variable ``esockd_error``, a crash its reason as
``esockd_crash``; an accepted v2 SSL TLV its ``pp2_ssl_verify`` and ``pp2_ssl_cn`` (the CN
``peer_cert_as_username = cn`` takes on a tcp listener).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ...decisions import Acceptance
from ...decisions import result_maker as _result
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
    """An Erlang process crash in the model (pattern-match failure and the like); ``term`` is
    the exit reason as Erlang prints it (``function_clause``, ``{badmatch,{error,einval}}``)."""

    def __init__(self, message: str, term: str = "") -> None:
        super().__init__(message)
        self.term = term


def _bins(parts: list[bytes]) -> str:
    return "[" + ",".join(erlang.format_binary(p) for p in parts) + "]"


def _esockd(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    make = _result("emqx-tcp", ver)
    timeout = knobs["timeout"]

    def fail(term: str, why: str, waiting: bool = False) -> Acceptance:
        # recv/3 returned {error, Term}: esockd closes the socket, EMQX's connection process
        # exits with {shutdown, Term} (no error log).
        if waiting:
            why = f"blocks until proxy_protocol_timeout ({timeout}), then {{error,{term}}}: {why}"
        else:
            why = f"{{error,{term}}}: {why}"
        return make(False, why, waiting=waiting, variables=(("esockd_error", term),))

    try:
        if knobs["backend"] == "socket":
            return _esockd_socket(data, make, fail, knobs)
        return _esockd_gen_tcp(data, make, fail, knobs)
    except _Crash as e:
        spin = e.term.startswith("{invalid,{timeout,")
        variables: tuple[tuple[str, str], ...] = (("esockd_crash", e.term),)
        if spin:
            # socket_recvline/3 re-peeks the same bytes without blocking: a busy loop.
            variables += (("esockd_cpu", "100% until CRLF or proxy_protocol_timeout"),)
            return make(False, f"busy-waits at 100% CPU for the rest of the line; at "
                        f"proxy_protocol_timeout ({timeout}) the connection process crashes "
                        f"({e}): socket closed", waiting=True, variables=variables)
        return make(False, f"connection process crashed ({e}): socket closed",
                    variables=variables)


def _esockd_gen_tcp(data: bytes, r: Callable[..., Acceptance], fail: Callable[..., Acceptance],
                    knobs: Mapping[str, Any]) -> Acceptance:
    # do_recv/3: {packet, line}, {active, once}; a line longer than the socket's `buffer`
    # (EMQX tcp_options.buffer, 4KB) arrives truncated to it.
    buffer = knobs["line_buffer"]
    lf = data.find(b"\n", 0, buffer)
    if lf >= 0:
        line = data[: lf + 1]
    elif len(data) >= buffer:
        line = data[:buffer]
    else:
        what = "nothing received" if not data else "first line not complete"
        return fail("proxy_proto_timeout", what, waiting=True)
    if line[:9] == b"PROXY TCP" and len(line) >= 11 and line[10] == 0x20:
        return _esockd_v1(line[11:], line[9], len(line), r)
    if line[:13] == b"PROXY UNKNOWN":
        return r(True, "v1 UNKNOWN line: real peer kept", consumed=len(line), header_version=1)
    if line == b"\r\n":
        return _esockd_v2(data, 2, r, fail, socket=False)
    return fail(f"{{invalid_proxy_info,{erlang.format_binary(line)}}}", "connection closed")


def _esockd_socket(data: bytes, r: Callable[..., Acceptance], fail: Callable[..., Acceptance],
                   knobs: Mapping[str, Any]) -> Acceptance:
    # recv_esockd_socket/2: socket:recv(Sock, 2, [], Timeout) first.
    if not data:
        return fail("proxy_proto_timeout", "nothing received", waiting=True)
    if len(data) < 2:
        # {error, {timeout, Partial}} goes through map_tcpsocket_error({Reason, _}).
        return fail("{recv_proxy_info_error,timeout}", "one byte of two received",
                    waiting=True)
    if data[:2] == b"\r\n":
        return _esockd_v2(data, 2, r, fail, socket=True)
    if data[:2] != b"PR":
        return fail(f"{{invalid_proxy_info,{erlang.format_binary(data[:2])}}}",
                    "connection closed")
    # socket_recvline/3 peeks and looks for CRLF within the first 108 bytes after "PR".
    window = knobs["v1_window"]
    rest = data[2:]
    pos = rest.find(b"\r\n", 0, window)
    if pos < 0:
        if not rest:
            # the peek blocks and times out; recv_v1_esockd_socket maps the mapped error again
            return fail("{recv_proxy_info_error,proxy_proto_timeout}", "nothing after 'PR'",
                        waiting=True)
        if len(rest) < window:
            raise _Crash("error {invalid,{timeout,-1}}: socket:recv/4 called with the first "
                         "negative remaining time", "{invalid,{timeout,-1}}")
        # {error, {invalid_proxy_info, Bytes}} is mapped as {Reason, _}: the bytes are lost
        return fail("{recv_proxy_info_error,invalid_proxy_info}",
                    f"no CRLF within {window} bytes after 'PR'")
    line = rest[:pos]
    if line[:7] == b"OXY TCP" and len(line) >= 9 and line[8] == 0x20:
        return _esockd_v1(line[9:], line[7], pos + 4, r)
    if line[:11] == b"OXY UNKNOWN":
        return r(True, "v1 UNKNOWN line: real peer kept", consumed=pos + 4, header_version=1)
    return fail(f"{{invalid_proxy_info,{erlang.format_binary(b'PR' + line)}}}",
                "connection closed")


def _esockd_v1(info: bytes, proto: int, consumed: int,
               r: Callable[..., Acceptance]) -> Acceptance:
    if proto not in b"46":
        raise _Crash(f"function_clause in inet_family/1 for {chr(proto)!r}", "function_clause")
    parts = re.split(rb" |\r\n", info)
    while parts and parts[-1] == b"":
        parts.pop()
    if len(parts) != 4:
        raise _Crash(f"badmatch: {len(parts)} fields instead of 4", f"{{badmatch,{_bins(parts)}}}")
    src = _erl_ip(parts[0])
    dst = _erl_ip(parts[1])
    if src is None or dst is None:
        raise _Crash("badmatch: inet:parse_address returned {error, einval}",
                     "{badmatch,{error,einval}}")
    sport = _erl_int(parts[2].decode("latin-1"))
    dport = _erl_int(parts[3].decode("latin-1"))
    if sport is None or dport is None:
        raise _Crash("badarg in list_to_integer/1 for a port", "badarg")
    source = Endpoint(src, sport)
    return r(True, f"v1 read with inet:parse_address: client {source}", source,
             destination=Endpoint(dst, dport), consumed=consumed, header_version=1)


def _esockd_v2(data: bytes, at: int, r: Callable[..., Acceptance],
               fail: Callable[..., Acceptance], *, socket: bool) -> Acceptance:
    def short(got: bytes, what: str) -> Acceptance:
        # gen_tcp:recv/3 times out as {error, timeout}; socket:recv/4 as {error, {timeout,
        # Partial}} once some bytes came, and recv_v2/3 wraps either unmapped.
        reason = f"{{timeout,{erlang.format_binary(got)}}}" if socket and got else "timeout"
        return fail(f"{{recv_proxy_info_error,{reason}}}", what, waiting=True)

    head = data[at : at + 14]
    if len(head) < 14:
        return short(head, "v2 fixed part not complete")
    if head[:10] != V2_SIGNATURE[2:] or head[10] >> 4 != 2:
        return fail(f"{{invalid_proxy_info,{erlang.format_binary(head)}}}", "connection closed")
    command = head[10] & 0xF
    family = head[11] >> 4
    transport = head[11] & 0xF
    length = (head[12] << 8) | head[13]
    start = at + 14
    if length == 0:
        # recv(Socket, 0) returns whatever is buffered (or waits for anything).
        body = data[start:]
        if not body:
            return short(b"", "length 0: recv(Socket, 0) waits for any byte, which it would "
                         "swallow as the address block")
        consumed = len(data)
    else:
        if len(data) - start < length:
            return short(data[start:], f"v2 body of {length} bytes not complete")
        body = data[start : start + length]
        consumed = start + length
    if family > 3:
        raise _Crash(f"function_clause in inet_family/1 for family {family}", "function_clause")
    if command == 0:
        if socket:
            # parse_v2 returns the bare socket; set_socket_meta/1 matches only #proxy_socket{}
            raise _Crash("function_clause in set_socket_meta/1 (v2 LOCAL)", "function_clause")
        note = " (recv(0) swallowed the bytes after it)" if length == 0 and body else ""
        return r(True, "v2 LOCAL: real peer kept" + note, consumed=consumed, header_version=2)
    if command != 1 or transport != 1 or family not in (1, 2):
        return fail("unsupported_proto_v2", "connection closed")
    size = 12 if family == 1 else 36
    if len(body) < size:
        raise _Crash(f"badmatch: address block of {len(body)} bytes",
                     f"{{badmatch,{erlang.format_binary(body)}}}")
    if family == 1:
        src: _IP = IPv4Address(body[0:4])
        dst: _IP = IPv4Address(body[4:8])
    else:
        src = IPv6Address(body[0:16])
        dst = IPv6Address(body[16:32])
    sport = (body[size - 4] << 8) | body[size - 3]
    dport = (body[size - 2] << 8) | body[size - 1]
    err, ssl = _esockd_tlvs(body[size:])
    if err is not None:
        return fail(err, "warning 'malformed_pp2_tlv' logged; connection closed")
    source = Endpoint(src, sport)
    note = " (address block read from the bytes after a length-0 header)" if length == 0 else ""
    return r(True, f"v2 PROXY: client {source}{note}", source, destination=Endpoint(dst, dport),
             consumed=consumed, header_version=2, variables=ssl)


def _esockd_tlvs(b: bytes) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """parse_pp2_additional/2: the error term (None when the TLVs tile the rest) and what the
    first SSL TLV tells EMQX: ``pp2_ssl_cn`` (what ``peer_cert_common_name/1`` returns, the
    ``peer_cert_as_username = cn`` source) and ``pp2_ssl_verify`` (``success`` / ``failed``)."""
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(b):
        if len(b) - i < 3 or i + 3 + ((b[i + 1] << 8) | b[i + 2]) > len(b):
            return f"{{malformed_pp2_tlv,{len(b) - i}}}", ()
        t = b[i]
        length = (b[i + 1] << 8) | b[i + 2]
        value = b[i + 3 : i + 3 + length]
        i += 3 + length
        if t == TLVType.SSL:
            if len(value) < 5:
                raise _Crash("function_clause in parse_pp2_ssl/1 (SSL TLV under 5 bytes)",
                             "function_clause")
            first = not any(k == "pp2_ssl_verify" for k, _ in found)
            cn: bytes | None = None
            j = 5
            while j < len(value):
                sub_len = (value[j + 1] << 8) | value[j + 2] if len(value) - j >= 3 else 0
                if len(value) - j < 3 or j + 3 + sub_len > len(value):
                    return f"{{malformed_pp2_ssl_tlv,{len(value) - j}}}", ()
                if value[j] == 0x22 and cn is None:
                    cn = value[j + 3 : j + 3 + sub_len]
                j += 3 + sub_len
            if first:
                verify = int.from_bytes(value[1:5], "big")
                found.append(("pp2_ssl_verify", "success" if verify == 0 else "failed"))
                if cn is not None:
                    found.append(("pp2_ssl_cn", erlang.format_binary(cn)))
    return None, tuple(found)


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

#: The versions modelled: esockd 5.17 with each backend (the bare backend names are aliases).
VERSIONS: Final = ("5.17 gen_tcp", "5.17 socket")
_ALIASES: Final = {"gen_tcp": "5.17 gen_tcp", "socket": "5.17 socket"}


def backend_for(emqx_version: str, listener: str = "tcp") -> str:
    """The esockd version string an EMQX release uses by default on a *listener* (``tcp`` or
    ``ssl``): ``tcp_backend`` defaults to ``socket`` from EMQX 6.3 on (Unix; first in
    6.3.0-beta.2 — beta.1 still defaulted to gen_tcp, which this function does not tell
    apart), ``gen_tcp`` before; ssl listeners always go through ``esockd_transport``."""
    from ..base import version_tuple

    vt = version_tuple(emqx_version) or (0,)
    return "5.17 socket" if listener == "tcp" and vt >= (6, 3) else "5.17 gen_tcp"


RECEIVER: Final = ReceiverModel(
    name="emqx-tcp",
    parse=_esockd,
    default_version="5.17 gen_tcp",
    versions=VERSIONS,
    knobs=MappingProxyType({"backend": "gen_tcp", "v1_window": 108, "line_buffer": 4096,
                            "timeout": "3s"}),
    rules=MappingProxyType({
        "program": "EMQX tcp/ssl listener `proxy_protocol = true` (esockd 5.17)",
        "detection": "auto (first line: 'PROXY TCP', 'PROXY UNKNOWN' or '\\r\\n'; socket "
                     "backend: first two bytes 'PR' or '\\r\\n')",
        "fragmented": "waits until proxy_protocol_timeout (socket backend: a v1 line without "
                      "CRLF busy-waits at 100% CPU, then crashes with {invalid,{timeout,-1}})",
        "v1_addresses": "inet:parse_address (lenient: octal, hex, short forms), family "
                        "unchecked",
        "v1_ports": "list_to_integer, no range check",
        "unknown_short": "accept, real peer",
        "unknown_long": "accept, real peer",
        "v1_length": "first line cut at the socket buffer (4KB, gen_tcp) / CRLF within 108 "
                     "bytes after 'PR' (socket backend)",
        "v2_length": "65535 (read exactly len); len 0 swallows whatever is buffered",
        "v2_bad_command": "error unsupported_proto_v2",
        "v2_local": "accept, real peer (socket backend: function_clause crash)",
        "v2_other_families": "error unsupported_proto_v2; family > 3 crashes",
        "crc32c": "not verified",
        "tlvs": "strict tiling; SSL value < 5 bytes crashes",
        "timeout": "proxy_protocol_timeout (3 s), capped at 17 s; a v2 body still missing ends "
                   "as {recv_proxy_info_error,timeout}",
        "reject_log": "none: recv/3 returns {error, Term} (variable esockd_error) and the "
                      "connection exits with {shutdown, Term}; a crash (esockd_crash) writes a "
                      "crash report",
        "evidence": "run: esockd 5.17.0 under OTP 25, both backends, every EDGE_CASES case and "
                    "spec vector (tests/vectors/esockd_5.17.0.json)",
    }),
    sources=("emqx/esockd 5.17.0 src/esockd_proxy_protocol.erl (recv/3, do_recv/3, "
             "recv_esockd_socket/2, socket_recvline/3, recv_v2/3, parse_v1/2, parse_v2/4); "
             "erlang/otp lib/kernel/src/inet_parse.erl :: address"),
    choices=(*VERSIONS, *_ALIASES),
    choice_error="version names esockd 5.17 and its backend: '5.17 gen_tcp' or "
                 "'5.17 socket' (or just 'gen_tcp' / 'socket'), not {ver!r}",
    select=lambda v: {"backend": _ALIASES.get(v, v).split()[-1]},
)
