"""What real PROXY protocol receivers do with a given header — one model per program, sans-IO.

:func:`accepts` answers, for the bytes a receiver finds in its **first read** of a fresh
connection, what that program decides: accept or reject, which client address it will use from
then on, how many bytes it takes as the header, and — for a rejection — the message it logs, in
its own words.  Each receiver is its own parser reproducing that program's grammar; they differ
from the specification (and from each other) on purpose::

    >>> from realip.receivers import accepts
    >>> line = b"PROXY TCP4 203.0.113.256 198.51.100.1 56324 1883\\r\\n"
    >>> accepts("spec", line).accepted
    False
    >>> accepts("nginx", line).source is None      # accepted, but realip cannot parse the text
    True
    >>> str(accepts("haproxy", line).source)       # the octet overflow carries
    '203.0.114.0:56324'

Receivers (:data:`RECEIVERS`) and the versions modelled (``version=`` picks another one):

* ``spec`` — the specification, via :func:`realip.proxy_protocol.decode` (v1 and v2).
* ``nginx`` — nginx ``stream`` ``listen … proxy_protocol`` with stream realip; default
  ``1.22.1`` (Debian 12), also ``1.23.2``, ``1.23.3``, ``1.31``.
* ``haproxy`` — HAProxy ``bind … accept-proxy``; default ``2.6.12``, also ``2.9``, ``3.0``.
* ``emqx-tcp`` — EMQX tcp/ssl listeners (esockd 5.17); the version names the esockd backend,
  ``gen_tcp`` (default) or ``socket``.
* ``emqx-ws`` — EMQX ws/wss listeners (cowboy reading with ranch 2.2 ``ranch_proxy_header``).
* ``mosquitto`` — Mosquitto 2.1 ``enable_proxy_protocol 1|2``; ``version="1"``/``"2"``, or
  inferred from the data when not given.

Conventions (the same for every receiver):

* *data* is what the program finds in its first read (nginx and HAProxy peek once, ranch reads
  once).  A header split across two TCP writes is modelled by passing the first fragment.
* ``accepted`` — the program goes on with the connection.  ``source``/``destination`` are the
  addresses it uses from then on; ``None`` means "the real TCP endpoints" (LOCAL, UNKNOWN,
  skipped families — or a rejection).  For nginx, ``source`` is the address **stream realip**
  sets (the peer is assumed to be in ``set_real_ip_from``); text its PROXY parser accepted but
  realip cannot parse leaves the peer in place (``source is None`` while
  ``variable("proxy_protocol_addr")`` still holds the text).
* ``waiting`` — the program would block for more bytes until its timeout (esockd waits for the
  rest of a fragmented header; everyone waits when nothing arrived at all).  Such a result is
  ``accepted=False`` with ``waiting=True`` and a reason saying what happens on timeout.
* ``log_line`` — the exact message the program logs for the rejection (without its timestamp
  and connection prefix; for ``waiting``, the one it logs when the timeout strikes), or
  ``None`` when it closes silently or the text is not modelled exactly; ``reason`` is the log
  line when there is one, else a short description.
* ``logged_source`` — HAProxy prints a client address in front of its rejection message; when
  the header's addresses were already applied before a TLV check failed, that is the *forged*
  address (this field), else the real peer (``None``).
* A receiver never raises on any input: every outcome is an :class:`Acceptance`.

The nginx and HAProxy models are checked against the real programs by ``tests/real`` (Debian
nginx 1.22.1 and HAProxy 2.6.12, every case of :data:`EDGE_CASES`); their other versions, and
the EMQX and Mosquitto models, are ports of the sources named in :data:`PROFILES` that were not
executed against those programs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from . import erlang
from . import nginx as ngx
from ._addr import format_ip, ipv4_int, ipv6_int
from .decisions import Acceptance
from .decisions import result_maker as _result
from .errors import InvalidProxyHeader, quote_bytes
from .proxy_protocol import V2_SIGNATURE, Command, Endpoint, TLVType, crc32c, decode

__all__ = [
    "ASPECTS",
    "EDGE_CASES",
    "PAYLOAD",
    "PROFILES",
    "RECEIVERS",
    "Acceptance",
    "EdgeCase",
    "Profile",
    "accepts",
    "compare",
    "profile",
    "profile_table",
]

_IP = IPv4Address | IPv6Address

#: Names accepted by :func:`accepts`, in the order the comparison table prints them.
RECEIVERS: Final[tuple[str, ...]] = ("spec", "nginx", "haproxy", "emqx-tcp", "emqx-ws", "mosquitto")


# ==============================================================================================
# Profiles: the comparison table (semantics.md §7, corrected by the real programs), as data

#: Rows of :func:`profile_table`, in print order: (key, heading).
ASPECTS: Final[tuple[tuple[str, str], ...]] = (
    ("program", "program and configuration"),
    ("detection", "v1/v2 selection"),
    ("fragmented", "header split over two reads"),
    ("v1_addresses", "v1 address validation"),
    ("v1_ports", "v1 port range"),
    ("unknown_short", "PROXY UNKNOWN\\r\\n"),
    ("unknown_long", "PROXY UNKNOWN <addrs>\\r\\n"),
    ("v1_length", "v1 line length cap"),
    ("v2_length", "v2 header size cap"),
    ("v2_bad_command", "v2 command 2..15"),
    ("v2_local", "v2 LOCAL"),
    ("v2_other_families", "v2 PROXY with UNSPEC/UNIX/DGRAM"),
    ("crc32c", "CRC32C TLV"),
    ("tlvs", "TLV checks"),
    ("timeout", "waiting for the header"),
    ("reject_log", "rejection log"),
    ("evidence", "how this row set was established"),
)


@dataclass(frozen=True)
class Profile:
    """One receiver's behaviour, as printable rules (``rules``) and parser settings (``knobs``).

    ``knobs`` are the values the model's parser reads (buffer sizes, version-dependent switches),
    so the version differences are data, not code paths scattered through the parser.
    """

    receiver: str
    version: str
    versions: tuple[str, ...]  #: version strings with distinct behaviour (others round down)
    rules: Mapping[str, str]  #: aspect key (see :data:`ASPECTS`) -> description
    knobs: Mapping[str, Any]
    sources: str  #: where the rules were read (repository path :: function)


def _frozen(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


# Version rules, applied in order to the base knobs and rules when version >= first:
# (first version, knob, value, aspect key or "", the aspect's text from that version on).
_Rule = tuple[tuple[int, ...], str, Any, str, str]

_BASE_KNOBS: Final[Mapping[str, Mapping[str, Any]]] = {
    "spec": _frozen({"protocol": None}),
    # ngx_stream_proxy_protocol_handler: recv(MSG_PEEK) into a NGX_PROXY_PROTOCOL_MAX_HEADER buffer
    "nginx": _frozen({"max_header": 107, "log_first_line": False, "timeout": "30s"}),
    # conn_recv_proxy: recv(MSG_PEEK) into the trash buffer (tune.bufsize)
    "haproxy": _frozen({"bufsize": 16384, "parse_local_tlvs": False, "tlv_alloc_cap": None}),
    "emqx-tcp": _frozen({"backend": "gen_tcp", "v1_window": 108, "timeout": "3s"}),
    "emqx-ws": _frozen({"timeout": "1s"}),
    "mosquitto": _frozen({"protocol": None, "v1_limit": 108, "v2_limit": 500}),
}

_VERSION_RULES: Final[Mapping[str, tuple[_Rule, ...]]] = {
    "nginx": (
        # 68119b436: quote only the first line of the received data
        ((1, 23, 2), "log_first_line", True, "reject_log",
         "broken header: \"<data up to the first CR or LF>\"; 'unknown PROXY protocol "
         "version: N'; 'header is too large'; short v2 address block: no log line"),
        # 7600ca028: NGX_PROXY_PROTOCOL_MAX_HEADER 107 -> 4096
        ((1, 23, 3), "max_header", 4096, "v1_length", "4096 bytes (the peek buffer)"),
        ((1, 23, 3), "", None, "v2_length", "4096 bytes: 'header is too large'"),
    ),
    "haproxy": (
        # fecc573da: generic TLV list, HA_PP2_MAX_ALLOC
        ((2, 9), "tlv_alloc_cap", 1024, "tlvs",
         "strict tiling; AUTHORITY <= 255, UNIQUE_ID <= 128, any value <= 1024; forged source "
         "logged"),
        # 8b72270e9: the TLVs of LOCAL headers are parsed too, from offset 16
        ((3, 0), "parse_local_tlvs", True, "v2_local",
         "accept, real peer; everything after the 16-byte prefix parsed as TLVs"),
    ),
}

_DEFAULT_VERSION: Final[Mapping[str, str]] = {
    "spec": "auto",
    "nginx": "1.22.1",
    "haproxy": "2.6.12",
    "emqx-tcp": "gen_tcp",
    "emqx-ws": "2.2",
    "mosquitto": "auto",
}

_VERSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "spec": ("auto", "1", "2"),
    "nginx": ("1.22.1", "1.23.2", "1.23.3", "1.31"),
    "haproxy": ("2.6.12", "2.9", "3.0"),
    "emqx-tcp": ("gen_tcp", "socket"),
    "emqx-ws": ("2.2",),
    "mosquitto": ("auto", "1", "2"),
}

_RULES: Final[Mapping[str, Mapping[str, str]]] = {
    "spec": {
        "program": "HAProxy doc/proxy-protocol.txt (2026/04/27) via realip.proxy_protocol.decode",
        "detection": "auto (version='1'/'2' restricts)",
        "fragmented": "may wait (reported as waiting) or reject",
        "v1_addresses": "strict per family, no leading zeros",
        "v1_ports": "0-65535, no leading zeros",
        "unknown_short": "accept, real peer",
        "unknown_long": "accept, real peer",
        "v1_length": "107 bytes incl. CRLF",
        "v2_length": "4096 bytes (decode's max_v2_size)",
        "v2_bad_command": "reject",
        "v2_local": "accept, real peer, address block ignored",
        "v2_other_families": "UNIX accepted (path as source); UNSPEC: real peer",
        "crc32c": "verified",
        "tlvs": "strict tiling; UNIQUE_ID <= 128; SSL sub-TLVs checked",
        "timeout": "not modelled",
        "reject_log": "realip Reason codes",
        "evidence": "the codec's own test vectors",
    },
    "nginx": {
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
    },
    "haproxy": {
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
    },
    "emqx-tcp": {
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
    },
    "emqx-ws": {
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
    },
    "mosquitto": {
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
    },
}

_SOURCES: Final[Mapping[str, str]] = {
    "spec": "realip.proxy_protocol.decode",
    "nginx": "nginx/nginx release-1.22.1 src/core/ngx_proxy_protocol.c :: "
             "ngx_proxy_protocol_read, ngx_proxy_protocol_v2_read; src/stream/"
             "ngx_stream_handler.c :: ngx_stream_proxy_protocol_handler; src/stream/"
             "ngx_stream_realip_module.c; src/core/ngx_inet.c :: ngx_parse_addr, "
             "ngx_inet6_ntop",
    "haproxy": "haproxy/haproxy v2.6.0 src/connection.c :: conn_recv_proxy; src/tools.c :: "
               "inetaddr_host_lim_ret; include/haproxy/intops.h :: __read_uint; "
               "src/session.c :: session_kill_embryonic",
    "emqx-tcp": "emqx/esockd 5.17.0 src/esockd_proxy_protocol.erl; erlang/otp "
                "lib/kernel/src/inet_parse.erl :: address",
    "emqx-ws": "ninenines/ranch 2.2 src/ranch_proxy_header.erl :: parse; src/ranch_tcp.erl "
               ":: recv_proxy_header; emqx/emqx emqx_ws_connection.erl :: get_peer_info",
    "mosquitto": "eclipse-mosquitto/mosquitto 7b8aba10 src/proxy_v1.c, src/proxy_v2.c",
}


def _version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if m is None:
        return None
    return tuple(int(x) for x in m.group(1).split("."))


def _resolve(receiver: str, version: str | None) -> tuple[str, Mapping[str, Any]]:
    """Normalise *version* and compute the parser knobs for it."""
    if receiver not in _BASE_KNOBS:
        raise ValueError(f"unknown receiver {receiver!r}; choose one of {', '.join(RECEIVERS)}")
    ver = _DEFAULT_VERSION[receiver] if version is None else str(version).strip()
    knobs = dict(_BASE_KNOBS[receiver])
    if receiver in ("spec", "mosquitto"):
        if ver not in ("auto", "1", "2"):
            raise ValueError(f"{receiver}: version must be '1', '2' or None (both / inferred), "
                             f"not {ver!r}")
        knobs["protocol"] = None if ver == "auto" else int(ver)
    elif receiver == "emqx-tcp":
        if ver not in ("gen_tcp", "socket"):
            raise ValueError("emqx-tcp: version names the esockd backend: 'gen_tcp' or "
                             f"'socket', not {ver!r}")
        knobs["backend"] = ver
    elif receiver in _VERSION_RULES or receiver == "emqx-ws":
        vt = _version_tuple(ver)
        if vt is None:
            raise ValueError(f"{receiver}: cannot read version {ver!r}")
        for first, knob, value, _aspect, _text in _VERSION_RULES.get(receiver, ()):
            if vt >= first and knob:
                knobs[knob] = value
    return ver, MappingProxyType(knobs)


def profile(receiver: str, version: str | None = None) -> Profile:
    """The :class:`Profile` of *receiver* at *version* (default: the modelled default)."""
    ver, knobs = _resolve(receiver, version)
    rules = dict(_RULES[receiver])
    vt = _version_tuple(ver)
    for first, _knob, _value, aspect, text in _VERSION_RULES.get(receiver, ()):
        if vt is not None and vt >= first and aspect:
            rules[aspect] = text
    return Profile(receiver, ver, _VERSIONS[receiver], MappingProxyType(rules), knobs,
                   _SOURCES[receiver])


#: The default profile of every receiver.
PROFILES: Final[Mapping[str, Profile]] = MappingProxyType({r: profile(r) for r in RECEIVERS})


def profile_table(receivers: tuple[str, ...] = RECEIVERS,
                  versions: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    """The comparison table as rows: a header row, then one row per aspect of :data:`ASPECTS`.

    *versions* maps receiver names to versions other than the default.  Every cell is plain
    text, so a notebook can print it with any table formatter.
    """
    versions = versions or {}
    profs = [profile(r, versions.get(r)) for r in receivers]
    rows: list[tuple[str, ...]] = [("aspect", *(f"{p.receiver} {p.version}" for p in profs))]
    for key, heading in ASPECTS:
        rows.append((heading, *(p.rules[key] for p in profs)))
    return rows


# ==============================================================================================
# Address grammars of the programs (each its own; none of them is the spec's)


# The grammars are shared with the resolver: realip._addr (glibc inet_pton), realip.nginx and
# realip.erlang hold the one implementation of each.
def _pton4(t: bytes) -> int | None:
    return ipv4_int(t.decode("latin-1"))


def _pton6(t: bytes) -> int | None:
    return ipv6_int(t.decode("latin-1"))


_ngx_parse_addr = ngx.parse_addr
_ngx_ntop = ngx.format_addr
_erl_ipv6 = erlang.parse_ipv6
_erl_parse_address = erlang.parse_address


def _erl_ipv4_strict(s: str) -> int | None:
    """``inet:parse_ipv4strict_address``: dotted quad, decimal, no leading zeros."""
    return ipv4_int(s)

_DIGITS = frozenset(b"0123456789")








# -- Erlang (OTP lib/kernel/src/inet_parse.erl) ------------------------------------------------

_ERL_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _erl_int(text: str, base: int = 10) -> int | None:
    """``erlang:list_to_integer/2``: optional sign, digits of *base*, nothing else."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or any(c not in _ERL_DIGITS[base] for c in body):
        return None
    value = int(body, base)
    return -value if text[:1] == "-" else value






def _erl_ip(t: bytes) -> _IP | None:
    return _erl_parse_address(t.decode("latin-1"))


# ==============================================================================================
# spec


def _spec(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("spec", ver)
    try:
        h = decode(data, version=knobs["protocol"])
    except InvalidProxyHeader as e:
        return r(False, f"{e.reason.value}: {e.detail}", log_line=None)
    if h is None:
        return r(False, "incomplete header: a spec receiver may wait for the rest (until its "
                 "timeout) or reject a header not complete in the first read", waiting=True)
    what = "LOCAL" if h.command is Command.LOCAL else h.family.name
    if h.source is None:
        reason = f"v{h.version} {what}: real connection addresses are used"
    else:
        reason = f"v{h.version} {what}: client {h.source}"
    return r(True, reason, h.source, destination=h.destination, consumed=h.size,
             header_version=h.version)


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
# Entry points

_MODELS: Final[Mapping[str, Callable[[bytes, str, Mapping[str, Any]], Acceptance]]] = {
    "spec": _spec,
    "nginx": _nginx,
    "haproxy": _haproxy,
    "emqx-tcp": _esockd,
    "emqx-ws": _ranch,
    "mosquitto": _mosquitto,
}


def accepts(receiver: str, data: bytes | bytearray | memoryview, *,
            version: str | None = None) -> Acceptance:
    """What *receiver* does when its first read of a new connection returns *data*.

    *receiver* is one of :data:`RECEIVERS`.  *version* selects the behaviour modelled:

    * ``nginx``: a release such as ``"1.22.1"`` (default, Debian 12), ``"1.23.2"`` (first-line
      log quoting), ``"1.23.3"``/``"1.31"`` (4096-byte header cap).
    * ``haproxy``: ``"2.6.12"`` (default), ``"2.9"`` (1024-byte TLV cap), ``"3.0"`` (LOCAL
      TLVs parsed).
    * ``emqx-tcp``: the esockd backend, ``"gen_tcp"`` (default) or ``"socket"``.
    * ``emqx-ws``: ranch ``"2.2"``.
    * ``spec`` and ``mosquitto``: the PROXY protocol version accepted, ``"1"`` or ``"2"``;
      ``None`` accepts both (spec) or infers the listener's ``enable_proxy_protocol`` from the
      data (Mosquitto, whose listeners never auto-detect).

    Raises :class:`ValueError` only for an unknown receiver or version; never for the data.
    """
    ver, knobs = _resolve(receiver, version)
    raw = bytes(data)
    return _MODELS[receiver](raw, ver, knobs)


def compare(data: bytes | bytearray | memoryview,
            receivers: tuple[str, ...] = RECEIVERS) -> dict[str, Acceptance]:
    """:func:`accepts` for several receivers at their default versions."""
    return {name: accepts(name, data) for name in receivers}


# ==============================================================================================
# A catalogue of edge cases (the table tests/real runs against the real programs)

#: What follows the header in the edge cases: an HTTP request (HAProxy's test frontend answers
#: it; for nginx it is just application data after the header).
PAYLOAD: Final[bytes] = b"GET / HTTP/1.0\r\n\r\n"


@dataclass(frozen=True)
class EdgeCase:
    """One input for the receivers: ``data`` is sent in one write, or in two with a pause when
    ``split`` is set (the receiver's first read then holds ``data[:split]``).  ``payload``
    appends :data:`PAYLOAD` to the (last) write; ``ipv6`` sends from ``::1``."""

    name: str
    data: bytes
    note: str
    split: int | None = None
    payload: bool = True
    ipv6: bool = False

    def writes(self) -> tuple[bytes, ...]:
        """The TCP writes a client makes, in order."""
        tail = PAYLOAD if self.payload else b""
        if self.split is None:
            return (self.data + tail,)
        return (self.data[: self.split], self.data[self.split :] + tail)

    def first_read(self) -> bytes:
        """What the receiver sees in its first read (the input of :func:`accepts`)."""
        return self.writes()[0]


def _v2(vc: int, ft: int, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return V2_SIGNATURE + bytes((vc, ft)) + n.to_bytes(2, "big") + body


def _tlv(t: int, value: bytes, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    return bytes((t,)) + n.to_bytes(2, "big") + value


def _with_crc(header: bytes, good: bool = True) -> bytes:
    """Append a CRC32C TLV to a v2 header (fixing the length), correct or off by one."""
    body = header[16:] + _tlv(TLVType.CRC32C, bytes(4))
    h = header[:14] + len(body).to_bytes(2, "big") + body
    value = crc32c(h) ^ (0 if good else 1)
    return h[:-4] + value.to_bytes(4, "big")


_V4 = bytes((203, 0, 113, 7)) + bytes((198, 51, 100, 1)) + (56324).to_bytes(2, "big") + (
    1883).to_bytes(2, "big")
_V6 = (IPv6Address("2001:db8::7").packed + IPv6Address("2001:db8::1").packed
       + (56324).to_bytes(2, "big") + (1883).to_bytes(2, "big"))
_V6_MAPPED = (IPv6Address("::ffff:203.0.113.7").packed
              + IPv6Address("::ffff:198.51.100.1").packed + _V6[32:])
_V6_COMPAT = IPv6Address("::102").packed + IPv6Address("::1").packed + _V6[32:]
_UNIX = b"/run/client.sock".ljust(108, b"\0") + b"/run/broker.sock".ljust(108, b"\0")
_L4 = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"


def _cases() -> Iterator[EdgeCase]:
    c = EdgeCase
    yield c("v1-tcp4", _L4, "plain valid TCP4 line")
    yield c("v1-tcp4-no-payload", _L4, "valid line, nothing after it in the first read",
            payload=False)
    yield c("v1-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883\r\n", "valid TCP6 line")
    yield c("v1-tcp6-mapped", b"PROXY TCP6 ::ffff:203.0.113.7 ::ffff:198.51.100.1 1 2\r\n",
            "v4-mapped addresses in TCP6")
    yield c("v1-unknown-short", b"PROXY UNKNOWN\r\n", "UNKNOWN, short form")
    yield c("v1-unknown-long", b"PROXY UNKNOWN 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "UNKNOWN with addresses (legal per spec)")
    yield c("v1-unknown-short-ipv6", b"PROXY UNKNOWN\r\n", "UNKNOWN from an IPv6 peer",
            ipv6=True)
    yield c("v1-tcp4-ipv6-peer", _L4, "TCP4 line received from an IPv6 peer", ipv6=True)
    yield c("v1-leading-zeros", b"PROXY TCP4 010.001.002.003 198.51.100.1 56324 1883\r\n",
            "leading zeros (spec: invalid; nginx/HAProxy: decimal)")
    yield c("v1-octet-256", b"PROXY TCP4 203.0.113.256 198.51.100.1 56324 1883\r\n",
            "octet out of range")
    yield c("v1-octet-1004", b"PROXY TCP4 203.0.113.1004 198.51.100.1 56324 1883\r\n",
            "four-digit octet")
    yield c("v1-three-octets", b"PROXY TCP4 203.0.113 198.51.100.1 56324 1883\r\n",
            "a missing octet")
    yield c("v1-empty-octet", b"PROXY TCP4 203..113.7 198.51.100.1 56324 1883\r\n",
            "an empty octet")
    yield c("v1-empty-source", b"PROXY TCP4  198.51.100.1 56324 1883\r\n",
            "empty source field (two spaces) with one field fewer")
    yield c("v1-hex-letters", b"PROXY TCP4 abc.def.1.2 198.51.100.1 56324 1883\r\n",
            "hex letters in a TCP4 address")
    yield c("v1-v4-in-tcp6", b"PROXY TCP6 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "IPv4 text announced as TCP6")
    yield c("v1-v6-in-tcp4", b"PROXY TCP4 2001:db8::7 2001:db8::1 56324 1883\r\n",
            "IPv6 text announced as TCP4")
    yield c("v1-tcp6-255", b"PROXY TCP6 ::ffff:255.255.255.255 ::1 56324 1883\r\n",
            "v4-mapped broadcast")
    yield c("v1-five-octets", b"PROXY TCP4 203.0.113.7.9 198.51.100.1 56324 1883\r\n",
            "a fifth dotted field")
    yield c("v1-tcp6-zone", b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 1883\r\n",
            "an IPv6 zone id")
    yield c("v1-tcp6-uppercase", b"PROXY TCP6 2001:DB8::7 2001:DB8::1 56324 1883\r\n",
            "upper-case IPv6 text")
    yield c("v1-unknown-lone-lf", b"PROXY UNKNOWN\n", "UNKNOWN ended by a lone LF; the "
            "payload holds the next CRLF")
    yield c("v1-port-0", b"PROXY TCP4 203.0.113.7 198.51.100.1 0 1883\r\n", "source port 0")
    yield c("v1-port-65536", b"PROXY TCP4 203.0.113.7 198.51.100.1 65536 1883\r\n",
            "source port 65536")
    yield c("v1-port-99999999999", b"PROXY TCP4 203.0.113.7 198.51.100.1 99999999999 1883\r\n",
            "source port far beyond 16 bits")
    yield c("v1-port-plus", b"PROXY TCP4 203.0.113.7 198.51.100.1 +80 1883\r\n",
            "a signed port")
    yield c("v1-port-leading-zeros", b"PROXY TCP4 203.0.113.7 198.51.100.1 00080 01883\r\n",
            "ports with leading zeros")
    yield c("v1-port-empty", b"PROXY TCP4 203.0.113.7 198.51.100.1  1883\r\n",
            "empty source port")
    yield c("v1-double-space", b"PROXY TCP4 203.0.113.7  198.51.100.1 56324 1883\r\n",
            "two spaces between the addresses")
    yield c("v1-trailing-space", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 \r\n",
            "a space before CRLF")
    yield c("v1-extra-field-tcp4", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 7\r\n",
            "a fifth field (TCP4)")
    yield c("v1-extra-field-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883 7\r\n",
            "a fifth field (TCP6)")
    yield c("v1-tcp6-nul-in-port", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324\0x 1883\r\n",
            "a NUL byte inside the source port (TCP6)")
    yield c("v1-lone-lf", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n",
            "LF without CR, payload follows")
    yield c("v1-lone-lf-no-payload", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n",
            "LF without CR, nothing follows", payload=False)
    yield c("v1-lone-cr", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\rX\r\n",
            "CR not followed by LF")
    yield c("v1-lowercase", b"proxy TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "lower-case keyword")
    yield c("v1-tcp5", b"PROXY TCP5 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "unknown protocol")
    yield c("v1-proxy-only", b"PROXY \r\n", "keyword and CRLF only")
    yield c("v1-too-long-tcp6",
            b"PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 "
            b"0000:0000:0000:0000:0000:ffff:198.151.100.100 56324 1883\r\n",
            "a valid-looking 109-byte TCP6 line (over the 107-byte limit)")
    yield c("v1-too-long-unknown", b"PROXY UNKNOWN " + b"f" * 120 + b"\r\n",
            "a 136-byte UNKNOWN line")
    yield c("v1-split", _L4, "line split over two TCP writes", split=28)
    yield c("not-proxy", b"", "an HTTP request without any header")
    yield c("short-garbage", b"hello\n", "six bytes that are no header", payload=False)
    yield c("v2-inet", _v2(0x21, 0x11, _V4), "v2 PROXY TCP over IPv4")
    yield c("v2-inet-no-payload", _v2(0x21, 0x11, _V4), "v2 INET, nothing after it",
            payload=False)
    yield c("v2-inet6", _v2(0x21, 0x21, _V6), "v2 PROXY TCP over IPv6")
    yield c("v2-inet6-mapped", _v2(0x21, 0x21, _V6_MAPPED), "v2 INET6 with v4-mapped addresses")
    yield c("v2-inet6-compat", _v2(0x21, 0x21, _V6_COMPAT), "v2 INET6 source ::102")
    yield c("v2-local", _v2(0x20, 0x00, b""), "v2 LOCAL, empty")
    yield c("v2-local-ipv6", _v2(0x20, 0x00, b""), "v2 LOCAL from an IPv6 peer", ipv6=True)
    yield c("v2-local-inet-block", _v2(0x20, 0x11, _V4), "LOCAL carrying an INET address block")
    yield c("v2-local-bad-crc", _with_crc(_v2(0x20, 0x00, b""), good=False),
            "LOCAL with a wrong CRC32C TLV")
    yield c("v2-unspec", _v2(0x21, 0x00, b""), "PROXY with family UNSPEC")
    yield c("v2-unix", _v2(0x21, 0x31, _UNIX), "PROXY over a UNIX stream socket")
    yield c("v2-dgram", _v2(0x21, 0x12, _V4), "PROXY over UDP/IPv4")
    yield c("v2-version-1", _v2(0x11, 0x11, _V4), "version nibble 1")
    yield c("v2-command-2", _v2(0x22, 0x11, _V4), "command nibble 2")
    yield c("v2-family-4", _v2(0x21, 0x41, _V4), "family nibble 4")
    yield c("v2-short-block", _v2(0x21, 0x11, _V4[:11]), "INET with an 11-byte block")
    yield c("v2-crc-good", _with_crc(_v2(0x21, 0x11, _V4)), "INET with a correct CRC32C")
    yield c("v2-crc-bad", _with_crc(_v2(0x21, 0x11, _V4), good=False), "INET, wrong CRC32C")
    yield c("v2-crc-3-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.CRC32C, b"abc")),
            "CRC32C TLV of 3 bytes")
    yield c("v2-noop", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, b"\0\0\0\0")), "a NOOP TLV")
    yield c("v2-tlv-overrun", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, b"\0\0", 10)),
            "a TLV longer than the header")
    yield c("v2-tlv-2-bytes", _v2(0x21, 0x11, _V4 + b"\x04\x00"), "two stray bytes after "
            "the addresses")
    yield c("v2-unique-id-64", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 64)),
            "UNIQUE_ID of 64 bytes (95-byte header)")
    yield c("v2-unique-id-128", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 128)),
            "UNIQUE_ID of 128 bytes (159-byte header)")
    yield c("v2-unique-id-129", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 129)),
            "UNIQUE_ID of 129 bytes")
    yield c("v2-authority-256", _v2(0x21, 0x11, _V4 + _tlv(TLVType.AUTHORITY, b"a" * 256)),
            "AUTHORITY of 256 bytes")
    yield c("v2-unique-id-empty", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"")),
            "an empty UNIQUE_ID (what HAProxy sends without unique-id-format)")
    yield c("v2-noop-2000", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(2000))),
            "a 2000-byte NOOP TLV (HAProxy >= 2.9 caps TLV values at 1024)")
    yield c("v2-107-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(76))),
            "a 107-byte header")
    yield c("v2-108-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(77))),
            "a 108-byte header")
    yield c("v2-ssl", _v2(0x21, 0x11, _V4 + _tlv(TLVType.SSL, b"\x01\0\0\0\0"
                                                 + _tlv(0x21, b"TLSv1.3"))),
            "an SSL TLV with a version sub-TLV")
    yield c("v2-split-10", _v2(0x21, 0x11, _V4), "v2 split after 10 bytes", split=10)
    yield c("v2-split-20", _v2(0x21, 0x11, _V4), "v2 split after 20 bytes", split=20)


#: The edge cases, by name.
EDGE_CASES: Final[Mapping[str, EdgeCase]] = MappingProxyType({c.name: c for c in _cases()})
