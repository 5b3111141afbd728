"""Mosquitto's PROXY protocol reader: ``src/proxy_v1.c`` and ``src/proxy_v2.c`` of a listener
with ``enable_proxy_protocol 1|2``, with the reads and log lines of ``src/loop.c``.

Releases (:data:`RELEASES`, data): ``2.0`` has no PROXY support at all; **2.1.2 is the default**
(the released version; 2.1.0 and 2.1.1 read PROXY headers the same way in a TLS-enabled build);
``master`` is commit :data:`MASTER_COMMIT`, which starts the TLV walk of a v2 UNIX block at offset
109 where 2.1.2 starts it at the source path's length + 1.  Both were built from source and
observed on every case of :data:`realip.receivers.EDGE_CASES` and of the specification vectors
(``tests/vectors/mosquitto_2.1.2.json``, ``mosquitto_master.json``).

A receiver version is ``"<release>:<enable_proxy_protocol>"`` (``"master:2"``), or just the
protocol (``"1"``, ``"2"``, ``"auto"`` — release 2.1.2).  What the model reproduces:

* v1 is read one byte per ``recv`` until CRLF (108 bytes at most); a line not complete in the
  first read is dropped (``disconnected: connection closed by client.``);
* v2 reads the 16-byte fixed part, then the body **in the same call**: a fixed part that arrived
  alone is dropped at once; a body that arrives in two reads is written over the start of its
  buffer (the header's address is corrupted, e.g. ``198.51.100.1:0``);
* the peername text: a v1 address is kept exactly as written (``2001:DB8::7``); v2 addresses are
  printed by glibc ``inet_ntop`` (``::102``); a UNIX source is its path with port 0 (``/a:0``).
  The variables ``address`` and ``remote_port`` hold them (absent: the real peer);
* every close but the silent ones (v2 LOCAL, a corrupt TLV: ``MOSQ_ERR_PROXY``) logs
  ``Client (null) [(null):0] disconnected: <why>`` — variable ``disconnect``; ``log_line`` is the
  first line logged (the ``corrupt PROXY header`` notice when there is one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ..._addr import format_ip, ipv4_int, ipv6_int
from ...decisions import Acceptance
from ...decisions import result_maker as _result
from ...proxy_protocol import V2_SIGNATURE, Endpoint, TLVType
from ..base import ReceiverModel

__all__ = ["DEFAULT_RELEASE", "MASTER_COMMIT", "RECEIVER", "RELEASES", "Release", "release"]

#: The master commit built and observed (the UNIX TLV offset fix b21c9f2c is in it).
MASTER_COMMIT: Final = "7b8aba105b77253309de24664bbae69d0cae3da0"


@dataclass(frozen=True)
class Release:
    """One Mosquitto release as the model distinguishes it: whether its listeners read PROXY
    headers, where a v2 UNIX block's TLV walk starts (``"path"``: the source path's length + 1,
    ``"field"``: 109, past the 108-byte source field), and the source it was read from."""

    name: str
    proxy: bool
    unix_tlv_start: str
    source: str


#: The releases modelled, by name.
RELEASES: Final[Mapping[str, Release]] = MappingProxyType({r.name: r for r in (
    Release("2.0", False, "", "v2.0.11 (Debian 12): no enable_proxy_protocol"),
    Release("2.1.2", True, "path", "v2.1.2 = 99fa50f30e325609394c324c8ff71cfbbe95d8ab"),
    Release("master", True, "field", f"master = {MASTER_COMMIT}"),
)})

#: The release modelled when none is named.
DEFAULT_RELEASE: Final = "2.1.2"


def release(version: str) -> Release:
    """The modelled release for a Mosquitto version string: ``2.0``/``2.0.x``, ``2.1``/``2.1.0``
    to ``2.1.2`` (all read PROXY headers as 2.1.2 does), ``master`` (or a prefix of
    :data:`MASTER_COMMIT`); :class:`ValueError` naming them for anything else."""
    v = version.strip()
    if v == "2.0" or v.startswith("2.0."):
        return RELEASES["2.0"]
    if v in ("2.1", "2.1.0", "2.1.1", "2.1.2"):
        return RELEASES["2.1.2"]
    if v == "master" or (len(v) >= 7 and MASTER_COMMIT.startswith(v.lower())):
        return RELEASES["master"]
    raise ValueError(f"mosquitto: version must be 2.0[.x], 2.1[.0-2] or master "
                     f"({MASTER_COMMIT[:8]}), not {version!r}")


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
#: src/loop.c's disconnect line for a context whose address is still unset (printf of NULL).
_DISCONNECT = "Client (null) [(null):0] disconnected: "
_CONN_LOST = "connection closed by client."
_INVAL = "bad socket read/write: Invalid input"  # MOSQ_ERR_INVAL
_NOMEM = "out of memory."  # the unsupported-family branch returns 1 = MOSQ_ERR_NOMEM
_PROTOCOL = "protocol error."


def _closed(r: Callable[..., Acceptance], why: str, disconnect: str | None,
            notice: str | None = None, **kw: Any) -> Acceptance:
    """A rejection: *notice* logged first (if any), then the disconnect line (None: silent)."""
    variables = tuple(kw.pop("variables", ()))
    line = None if disconnect is None else _DISCONNECT + disconnect
    if line is not None:
        variables += (("disconnect", line),)
    first = notice if notice is not None else line
    return r(False, notice if notice is not None else why, log_line=first,
             variables=variables, **kw)


def _mosquitto(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    return _mosquitto_reads(data, b"", ver, knobs)


def _mosquitto_reads(data: bytes, later: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    protocol = knobs["protocol"]
    if protocol is None:
        protocol = 2 if data[:1] == b"\r" else 1
        ver = f"{ver}:{protocol}"
    r = _result("mosquitto", ver)
    if not data:
        return r(False, "nothing to read yet: Mosquitto has no PROXY header timeout and waits",
                 waiting=True)
    if protocol == 1:
        return _mosquitto_v1(data, r, knobs)
    return _mosquitto_v2(data, later, r, knobs)


def _mosquitto_v1(data: bytes, r: Callable[..., Acceptance],
                  knobs: Mapping[str, Any]) -> Acceptance:
    # One byte per recv until CRLF: a later read never helps (the first EAGAIN drops it).
    limit = knobs["v1_limit"]
    end = -1
    for pos in range(3, min(len(data), limit) + 1):
        if data[pos - 1] == 0x0A and data[pos - 2] == 0x0D:
            end = pos
            break
    if end < 0:
        if len(data) >= limit:
            return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
        return _closed(r, "line not complete in the first read: the byte-wise non-blocking "
                       "read finds no more data and drops the connection (MOSQ_ERR_CONN_LOST)",
                       _CONN_LOST)
    line = data[:end]
    if end >= 14 and line[:14] == b"PROXY UNKNOWN ":
        return r(True, "v1 UNKNOWN (long form): real peer kept", consumed=end, header_version=1)
    if end >= 11 and line[:11] in (b"PROXY TCP4 ", b"PROXY TCP6 "):
        v6 = line[9] == 0x36
    else:
        return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
    text = line[11 : end - 2].split(b"\0", 1)[0]
    tokens, saveptr = _strtok4(text)
    if len(tokens) < 4 or saveptr:
        return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
    sport, dport = _atoi(tokens[2]), _atoi(tokens[3])
    if not (1 <= sport <= 65535 and 1 <= dport <= 65535):
        return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
    if v6:
        s6, d6 = _pton6(tokens[0]), _pton6(tokens[1])
        if s6 is None or d6 is None:
            return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
        src: _IP = IPv6Address(s6)
        dst: _IP = IPv6Address(d6)
    else:
        s4, d4 = _pton4(tokens[0]), _pton4(tokens[1])
        if s4 is None or d4 is None:
            return _closed(r, "", _INVAL, _MOSQ_CORRUPT)
        src = IPv4Address(s4)
        dst = IPv4Address(d4)
    # strdup(saddr_s): the peername is the text as written, not the parsed address
    written = tokens[0].decode("latin-1")
    return r(True, f"v1 read: client {written}:{sport}", Endpoint(src, sport),
             destination=Endpoint(dst, dport), consumed=end, header_version=1,
             variables=(("address", written), ("remote_port", str(sport))))


def _mosquitto_v2(data: bytes, later: bytes, r: Callable[..., Acceptance],
                  knobs: Mapping[str, Any]) -> Acceptance:
    if len(data) < 16:
        return _closed(r, "the 16-byte fixed part did not arrive in one read: connection "
                       "dropped (MOSQ_ERR_CONN_LOST)", _CONN_LOST)
    if data[:12] != V2_SIGNATURE or data[12] & 0xF0 != 0x20:
        return _closed(r, "not a v2 header: connection closed (MOSQ_ERR_INVAL)", _INVAL)
    command = data[12] & 0xF
    fam = data[13]
    if command not in (0, 1):
        return _closed(r, f"v2 command {command}: connection closed (MOSQ_ERR_INVAL)", _INVAL)
    if (fam != 0x00 or command != 0) and fam not in (0x11, 0x21, 0x31):
        return _closed(r, f"v2 family/transport 0x{fam:02X}: connection closed (the code "
                       "returns 1, MOSQ_ERR_NOMEM)", _NOMEM)
    length = (data[14] << 8) | data[15]
    limit = knobs["v2_limit"]
    if length > 0:
        need = {0x11: 12, 0x21: 36}.get(fam, 0)
        if fam in (0x11, 0x21, 0x31) and (length < need or length > limit):
            return _closed(r, f"v2 length {length} out of range for 0x{fam:02X}: connection "
                           "closed (MOSQ_ERR_INVAL)", _INVAL)
    elif command != 0 or fam != 0:
        return _closed(r, "v2 length 0 with an address family: connection closed "
                       "(MOSQ_ERR_PROTOCOL)", _PROTOCOL)
    # The body: net__read(buf, len - pos) in the same call, always into the start of buf.
    buf = bytearray(length + 1)  # calloc(len + 1)
    pos = 0
    note = ""
    if length > 0:
        first = data[16 : 16 + length]
        if not first:
            return _closed(r, "the 16-byte fixed part arrived alone: the body read in the same "
                           "call finds no data and the connection is dropped "
                           "(MOSQ_ERR_CONN_LOST)", _CONN_LOST)
        buf[: len(first)] = first
        pos = len(first)
        if pos < length:
            more = later[: length - pos]
            if not more:
                return r(False, f"v2 body: {pos} of {length} bytes; Mosquitto waits for the "
                         "rest (no timeout)", waiting=True)
            buf[: len(more)] = more  # the second read lands on the start of the buffer
            pos += len(more)
            note = (f" (the body came in two reads of {len(first)} and {len(more)} bytes; "
                    "the second was written over the start of the buffer)")
            if pos < length:
                return r(False, f"v2 body: {pos} of {length} bytes; Mosquitto waits for the "
                         "rest (no timeout)" + note, waiting=True)
    block = bytes(buf)
    if fam == 0x11:
        ip4 = IPv4Address(block[0:4])
        src: _IP | str = ip4
        port = (block[8] << 8) | block[9]
        dst: Endpoint | None = Endpoint(IPv4Address(block[4:8]), (block[10] << 8) | block[11])
        tlv = 12
        text = format_ip(ip4)
    elif fam == 0x21:
        ip6 = IPv6Address(block[0:16])
        src = ip6
        port = (block[32] << 8) | block[33]
        dst = Endpoint(IPv6Address(block[16:32]), (block[34] << 8) | block[35])
        tlv = 36
        text = format_ip(ip6)  # glibc inet_ntop
    elif fam == 0x31:
        raw = block[:108].split(b"\0", 1)[0]  # strndup(src_addr, 108)
        src = raw.decode("utf-8", "surrogateescape")
        port = 0
        dst = None
        # 2.1.2: strlen(address) + 1; master: sizeof(src_addr) + 1 = 109
        tlv = len(raw) + 1 if knobs["unix_tlv_start"] == "path" else 109
        text = raw.decode("latin-1")
    else:
        return _closed(r, "v2 LOCAL: treated as a health check, connection closed without a "
                       "log line (MOSQ_ERR_PROXY)" + note, None)
    source = Endpoint(src, None if fam == 0x31 else port)
    variables: tuple[tuple[str, str], ...] = (("address", text), ("remote_port", str(port)))
    ok, kept = _mosquitto_tlvs(block, tlv, length)
    if not ok:
        line = f"Connection from {text}:{port} rejected, corrupt PROXY header."
        return _closed(r, "", None, line, logged_source=source, variables=variables)
    if 0x21 in kept and 0x23 in kept:  # both strings set: a notice before the CONNECT
        variables += (("negotiated", f"Connection from {text}:{port} negotiated "
                       f"{kept[0x21].decode('latin-1')} cipher {kept[0x23].decode('latin-1')}"),)
    local = " (a LOCAL header with an address block is used like PROXY)" if command == 0 else ""
    return r(True, f"v2: client {text}:{port}{local}{note}", source, destination=dst,
             consumed=16 + length, header_version=2, variables=variables)


def _mosquitto_tlvs(buf: bytes, pos: int, length: int) -> tuple[bool, dict[int, bytes]]:
    """read_tlv/read_tlv_ssl with their uint16 arithmetic: whether the walk succeeds, and the
    SSL sub-TLVs it keeps (version 0x21, cipher 0x23: ``strndup``, the last one wins)."""
    kept: dict[int, bytes] = {}
    while pos < length:
        if length - pos < 3:
            return False, kept
        t = buf[pos]
        tl = (buf[pos + 1] << 8) | buf[pos + 2]
        pos = (pos + 3) & 0xFFFF
        if tl > length - pos:
            return False, kept
        if t == TLVType.SSL:
            if tl < 5:
                return False, kept
            pos = (pos + 5) & 0xFFFF
            left = (tl - 5) & 0xFFFF
            while left > 0:
                if length - pos < 3:
                    return False, kept
                st = buf[pos]
                sl = (buf[pos + 1] << 8) | buf[pos + 2]
                pos = (pos + 3) & 0xFFFF
                if sl > length - pos:
                    return False, kept
                if st in (0x21, 0x23):
                    kept[st] = buf[pos : pos + sl].split(b"\0", 1)[0]
                left = (left - (3 + sl)) & 0xFFFF
                pos = (pos + sl) & 0xFFFF
        else:
            pos = (pos + tl) & 0xFFFF
    return True, kept


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

def _choices() -> tuple[str, ...]:
    out = ["auto", "1", "2"]
    for name, rel in RELEASES.items():
        if rel.proxy:  # 2.0 has no PROXY reader to model (its broker step says so)
            out += [name, f"{name}:1", f"{name}:2", f"{name}:auto"]
    return tuple(out)


def _select(ver: str) -> Mapping[str, Any]:
    # "2" = the default release; "master" = its protocol inferred; "master:2" = both named
    name, proto = DEFAULT_RELEASE, ver
    if ver in RELEASES:
        name, proto = ver, "auto"
    elif ":" in ver:
        name, _, proto = ver.rpartition(":")
    rel = RELEASES[name]
    return {"protocol": None if proto == "auto" else int(proto), "release": rel.name,
            "unix_tlv_start": rel.unix_tlv_start}


RECEIVER: Final = ReceiverModel(
    name="mosquitto",
    parse=_mosquitto,
    parse_later=_mosquitto_reads,
    default_version="auto",
    versions=_choices(),
    knobs=MappingProxyType({"protocol": None, "release": DEFAULT_RELEASE,
                            "unix_tlv_start": "path", "v1_limit": 108, "v2_limit": 500}),
    rules=MappingProxyType({
        "program": "Mosquitto 2.1.2 listener `enable_proxy_protocol 1|2` (2.0: no PROXY support)",
        "detection": "configured (version='1'/'2'; None infers from the data)",
        "fragmented": "v1 dropped; v2: the fixed 16 bytes alone are dropped, a body in two reads "
                      "is written over the start of its buffer",
        "v1_addresses": "inet_pton per family, then kept as written; tokens split with strtok "
                        "(double spaces ok)",
        "v1_ports": "atoi, 1-65535",
        "unknown_short": "reject: corrupt PROXY header",
        "unknown_long": "accept, real peer",
        "v1_length": "108 bytes incl. CRLF",
        "v2_length": "500 bytes after the fixed part (INET/INET6/UNIX)",
        "v2_bad_command": "reject",
        "v2_local": "close without log (health check); LOCAL with an INET block is used as "
                    "PROXY",
        "v2_other_families": "UNIX: src path as address, port 0; others close with 'out of "
                             "memory'",
        "crc32c": "not verified",
        "tlvs": "tiling checked from a fixed offset (UNIX: the path's length + 1 in 2.1.2, "
                "109 in master)",
        "timeout": "none",
        "reject_log": "'Connection rejected, corrupt PROXY header.' (v1) / "
                      "'Connection from <src>:<port> rejected, corrupt PROXY header.' (v2 TLVs), "
                      "then 'Client (null) [(null):0] disconnected: …'",
        "evidence": "Mosquitto 2.1.2 and master 7b8aba10 built from source, every EDGE_CASES "
                    "case and spec vector (tests/vectors/mosquitto_*.json)",
    }),
    sources=("eclipse-mosquitto/mosquitto v2.1.2 and master 7b8aba10: src/proxy_v1.c, "
             "src/proxy_v2.c, src/loop.c"),
    choices=_choices(),
    choice_error="version must be '1', '2' or 'auto', optionally after a release with a "
                 "PROXY reader ('2.1.2:2', 'master:1'; 2.0 has none), not {ver!r}",
    select=_select,
)
