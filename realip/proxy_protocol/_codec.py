"""Decoding, annotating and encoding PROXY protocol headers (sans-IO).

``decode`` has fast paths for the common headers (v1 TCP4/TCP6, v2 INET/INET6 PROXY) and falls back
to a careful walker for everything else.  The walker also produces :func:`annotate`'s field list, so
the explanation a notebook draws and the decision the decoder takes come from the same code.

Errors are reported at the earliest byte that makes the data impossible to complete into a valid
header, so feeding a header whole or one byte at a time gives the same :class:`Reason`.
"""

from __future__ import annotations

import re
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from .._addr import (
    FAST_ADDRESS_SLOTS,
    format_ip,
    ipv4_from_int,
    ipv4_int,
    ipv6_from_int,
    ipv6_int,
)
from .._socket import AF_INET, AF_INET6, inet_pton
from ..errors import EncodeError, InvalidProxyHeader, Reason
from ._crc32c import crc32c
from ._model import TLV, Endpoint, ProxyHeader
from ._spec import (
    ADDRESS_BLOCK,
    UNIX_PATH_LEN,
    V1_MAX_LINE,
    V1_PREFIX,
    V2_DEFAULT_MAX_SIZE,
    V2_FIXED,
    V2_MAX_SIZE,
    V2_SIGNATURE,
    VALID_FAMILY_TRANSPORT,
    Command,
    Family,
    SSLClient,
    SSLSubType,
    TLVType,
    Transport,
    tlv_range,
)
from ._tlv import check_ssl, check_tlvs, split_tlvs

__all__ = ["Field", "annotate", "decode", "encode"]

_tuple_new = tuple.__new__
_unpack_v4 = struct.Struct("!IIHH").unpack_from
_unpack_v6 = struct.Struct("!16s16sHH").unpack_from
_unpack_v6q = struct.Struct("!QQQQHH").unpack_from
_v4 = ipv4_from_int
_v6 = ipv6_from_int
# Octet text → value: a dict lookup is cheaper than int() in the v1 hot path.
_from_bytes = int.from_bytes
_pton = inet_pton
_AF_INET = AF_INET
_AF_INET6 = AF_INET6

_PROXY = Command.PROXY
_LOCAL = Command.LOCAL
_INET = Family.INET
_INET6 = Family.INET6
_UNIX = Family.UNIX
_UNSPEC = Family.UNSPEC
_STREAM = Transport.STREAM
_TUNSPEC = Transport.UNSPEC

# The common, valid v1 lines (TCP4 and TCP6) in one regex match, which captures both address
# texts (groups 1-2 for TCP4, 3-4 for TCP6: the family needs no comparison) and both ports;
# inet_pton then checks each address text against its family's exact grammar (an IPv6 text in
# a TCP4 line fails it, and so does any byte that is no part of an address: CR, LF, NUL,
# non-ASCII), and anything that does not match or check takes the careful path, which says what
# is wrong.  The address texts are "anything but a space" here because the regex engine scans
# such a run in a tight loop (a character class costs a lookup per byte); inet_pton is the
# grammar.  One regex for both families: a TCP6 line does not pay for a failed TCP4 match
# first.  The destination port is only digits here: _v1_dest4/_v1_dest6 check its grammar (no
# leading zero, at most 65535) once per destination, and the memo then holds only checked texts.
_V1_TCP = re.compile(rb"PROXY TCP(?:4 ([^ ]{2,45}) ([^ ]{2,45})|6 ([^ ]{2,45}) ([^ ]{2,45})) "
                     rb"([1-9][0-9]{0,4}|0) ([0-9]{1,5})\r\n")

# Address text → address object for v1 lines.  A receiver sees the same few texts again and again
# (its own address as every destination, returning clients, a NAT pool), and parsing IPv6 text
# in Python costs more than the rest of the header; the memo is bounded and holds only texts
# that parsed, so junk cannot grow it.  An IPv6 entry keeps the text as written beside the
# address (the header's ``v1_text``), so a hit decodes nothing.
_V1_MEMO4: dict[bytes, IPv4Address] = {}
_V1_MEMO6: dict[bytes, tuple[IPv6Address, str]] = {}  # separate: "1.2.3.4" in a TCP6 line
_V1_MEMO_MAX = 4096
# Destination address text → (its port text, the Endpoint [, the v1 text for TCP6]): every header
# a receiver reads names the receiver itself as the destination, so that endpoint is checked and
# built once.  Keyed by the address alone and the port compared, which is cheaper than hashing
# a pair; bounded like the address memo and filled only with destinations that checked.
_V1_DEST4: dict[bytes, tuple[bytes, Endpoint]] = {}
_V1_DEST6: dict[bytes, tuple[bytes, Endpoint, str]] = {}
# their bound get methods (the dicts are cleared, never replaced): one lookup less per use
_memo4_get = _V1_MEMO4.get
_memo6_get = _V1_MEMO6.get
_dest4_get = _V1_DEST4.get
_dest6_get = _V1_DEST6.get
_new_object = object.__new__
_FAST_SLOTS = FAST_ADDRESS_SLOTS


def _v1_ip4(text: bytes) -> IPv4Address | None:
    # glibc's inet_pton is exactly the v1 grammar for IPv4 (four decimal octets, no leading
    # zeros, nothing else) — checked against realip's own parser on 200 000 random texts.
    # decode(): the regex admits ASCII only, and UTF-8 is the codec with no name to look up.
    try:
        ip = _v4(_from_bytes(_pton(_AF_INET, text.decode()), "big"))
    except (OSError, ValueError):  # ValueError: a NUL (or undecodable) byte
        return None
    if len(_V1_MEMO4) >= _V1_MEMO_MAX:
        _V1_MEMO4.clear()
    _V1_MEMO4[text] = ip
    return ip


def _v1_ip6_text(text: bytes) -> tuple[IPv6Address, str] | None:
    # inet_pton(AF_INET6) accepts exactly RFC 4291 text without zone ids, as ipv6_int does
    # (300 000 random texts agree); it is ~7x faster than parsing in Python
    try:
        written = text.decode()
        entry = (_v6(_from_bytes(_pton(_AF_INET6, written), "big")), written)
    except (OSError, ValueError):  # ValueError: a NUL (or undecodable) byte
        return None
    if len(_V1_MEMO6) >= _V1_MEMO_MAX:
        _V1_MEMO6.clear()
    _V1_MEMO6[text] = entry
    return entry


def _v1_ip6(text: bytes) -> IPv6Address | None:
    """The IPv6 address a v1 line's *text* names, or None (decode()'s own test)."""
    entry = _memo6_get(text) or _v1_ip6_text(text)
    return None if entry is None else entry[0]


def _v1_port(text: bytes) -> int | None:
    """A v1 port's value: digits without a leading zero, at most 65535 (else None)."""
    if text[:1] == b"0" and len(text) > 1:
        return None
    port = int(text)
    return port if port <= 0xFFFF else None


def _v1_dest4(text: bytes, port_text: bytes) -> Endpoint | None:
    ip = _memo4_get(text) or _v1_ip4(text)
    port = _v1_port(port_text)
    if ip is None or port is None:
        return None
    ep: Endpoint = _tuple_new(Endpoint, (ip, port))
    if len(_V1_DEST4) >= _V1_MEMO_MAX:
        _V1_DEST4.clear()
    _V1_DEST4[text] = (port_text, ep)
    return ep


def _v1_dest6(text: bytes, port_text: bytes) -> tuple[bytes, Endpoint, str] | None:
    entry = _memo6_get(text) or _v1_ip6_text(text)
    port = _v1_port(port_text)
    if entry is None or port is None:
        return None
    dest = (port_text, _tuple_new(Endpoint, (entry[0], port)), entry[1])
    if len(_V1_DEST6) >= _V1_MEMO_MAX:
        _V1_DEST6.clear()
    _V1_DEST6[text] = dest
    return dest


_V1_PROTOCOLS = (b"TCP4", b"TCP6", b"UNKNOWN")


class Field(NamedTuple):
    """One annotated field of a header: where it is, what it is, what it means, and the verdict
    (``ok``, ``ignored``, ``error``, ``incomplete`` or ``payload``)."""

    offset: int
    length: int
    name: str
    raw: bytes
    meaning: str
    verdict: str


_Notes = list[Field] | None


def _note(notes: _Notes, data: bytes, offset: int, length: int, name: str, meaning: str,
          verdict: str = "ok") -> None:
    if notes is not None:
        notes.append(Field(offset, length, name, data[offset : offset + length], meaning, verdict))


def _as_bytes(data: bytes | bytearray | memoryview, limit: int) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data[:limit])
    raise TypeError(f"decode() needs bytes, bytearray or memoryview, not {type(data).__name__}")


# ----------------------------------------------------------------------------------------------
# decode


def decode(
    data: bytes | bytearray | memoryview,
    *,
    version: int | None = None,
    max_v2_size: int = V2_DEFAULT_MAX_SIZE,
    verify_crc32c: bool = True,
) -> ProxyHeader | None:
    """Decode the PROXY protocol header at the start of *data*.

    Returns the :class:`ProxyHeader` (its ``size`` is the number of bytes it occupies: everything
    from ``data[size:]`` on belongs to the application), or ``None`` when *data* is a valid but
    incomplete prefix of a header (read more and call again).  Malformed input raises
    :class:`~realip.InvalidProxyHeader`.

    *version* restricts the accepted version (1 or 2; ``None`` detects it).  *max_v2_size* caps the
    total size of a v2 header (16 + length field, at most 65551).  *verify_crc32c* may be turned off
    to inspect a header whose checksum is known to be wrong.
    """
    # the default needs no range check (one comparison instead of two on every call)
    if max_v2_size != V2_DEFAULT_MAX_SIZE and not V2_FIXED <= max_v2_size <= V2_MAX_SIZE:
        raise ValueError(f"max_v2_size must be in {V2_FIXED}..{V2_MAX_SIZE}, not {max_v2_size}")
    if type(data) is not bytes:
        data = _as_bytes(data, max(max_v2_size, V1_MAX_LINE))
    try:
        first = data[0]
    except IndexError:  # no byte yet: a valid prefix of anything
        return None
    # `version is None or …`: the default costs an identity test, not a rich comparison
    if first == 0x0D and (version is None or version != 1):
        # Fast path: v2 PROXY over TCP/UDP with IPv4 or IPv6.
        if data[:12] == V2_SIGNATURE and len(data) >= V2_FIXED:
            fam = data[13]
            end = V2_FIXED + ((data[14] << 8) | data[15])
            if data[12] == 0x21 and end <= max_v2_size and len(data) >= end:
                if fam == 0x11 and end >= 28:
                    s, d, sp, dp = _unpack_v4(data, 16)
                    src = _tuple_new(Endpoint, (_v4(s), sp))
                    dst = _tuple_new(Endpoint, (_v4(d), dp))
                    tlv_at = 28
                    family = _INET
                elif fam == 0x21 and end >= 52:
                    sh, sl, dh, dl, sp, dp = _unpack_v6q(data, 16)
                    src = _tuple_new(Endpoint, (_v6((sh << 64) | sl), sp))
                    dst = _tuple_new(Endpoint, (_v6((dh << 64) | dl), dp))
                    tlv_at = 52
                    family = _INET6
                else:
                    return _walk(data, version, max_v2_size, verify_crc32c, None)
                tlvs: tuple[TLV, ...] = ()
                if end > tlv_at:
                    tlvs = split_tlvs(data, tlv_at, end)
                    check_tlvs(data[:end], tlvs, tlv_at, verify_crc32c)
                return _tuple_new(
                    ProxyHeader,
                    (2, _PROXY, family, _STREAM, src, dst, tlvs, end, b"", None, None),
                )
    elif first == 0x50 and (version is None or version != 2):  # "P"
        m = _V1_TCP.match(data)
        if m is not None:
            st, dt, st6, dt6, sp, dp = m.groups()
            if st is not None:  # TCP4
                e4 = _dest4_get(dt)
                d4 = e4[1] if e4 is not None and e4[0] == dp else _v1_dest4(dt, dp)
                sip = _memo4_get(st)
                if sip is None:  # a new client: _v1_ip4 inline (a busy receiver's usual case)
                    try:
                        n = _from_bytes(_pton(_AF_INET, st.decode()), "big")
                    except (OSError, ValueError):  # ValueError: a NUL (or undecodable) byte
                        pass
                    else:
                        if _FAST_SLOTS:
                            sip = _new_object(IPv4Address)
                            sip._ip = n  # type: ignore[attr-defined]
                        else:  # pragma: no cover - ipaddress changed its layout
                            sip = _v4(n)
                        if len(_V1_MEMO4) >= _V1_MEMO_MAX:
                            _V1_MEMO4.clear()
                        _V1_MEMO4[st] = sip
                sport = int(sp)
                if sip is not None and d4 is not None and sport <= 0xFFFF:
                    return _tuple_new(ProxyHeader, (
                        1, _PROXY, _INET, _STREAM, _tuple_new(Endpoint, (sip, sport)), d4, (),
                        m.end(), b"", None, None))
            else:
                end = m.end()
                e6 = _dest6_get(dt6)
                d6 = e6 if e6 is not None and e6[0] == dp else _v1_dest6(dt6, dp)
                s6 = _memo6_get(st6) or _v1_ip6_text(st6)
                sport = int(sp)
                if s6 is not None and d6 is not None and sport <= 0xFFFF and end <= V1_MAX_LINE:
                    return _tuple_new(ProxyHeader, (
                        1, _PROXY, _INET6, _STREAM, _tuple_new(Endpoint, (s6[0], sport)), d6[1],
                        (), end, b"", (s6[1], d6[2]), None))
    return _walk(data, version, max_v2_size, verify_crc32c, None)


def _walk(data: bytes, version: int | None, max_v2_size: int, verify: bool,
          notes: _Notes) -> ProxyHeader | None:
    """The careful path: validates field by field, optionally recording annotations."""
    if not data:
        return None
    first = data[0]
    if first == 0x0D:
        if version == 1:
            raise InvalidProxyHeader(
                Reason.WRONG_VERSION, "a v2 signature where only v1 is accepted", data[:12], 0)
        return _walk_v2(data, max_v2_size, verify, notes)
    if first == 0x50:  # "P"
        if version == 2:
            raise InvalidProxyHeader(
                Reason.WRONG_VERSION, "a v1 line where only v2 is accepted", data[:16], 0)
        return _walk_v1(data, notes)
    raise InvalidProxyHeader(
        Reason.NOT_PROXY, "neither a v1 line ('PROXY ') nor a v2 signature", data[:16], 0)


# -- v1 -----------------------------------------------------------------------------------------


def _v4_prefix_ok(t: bytes) -> bool:
    """Could *t* still grow into a dotted quad without leading zeros?"""
    if len(t) > 15:
        return False
    octets = t.split(b".")
    if len(octets) > 4:
        return False
    last = len(octets) - 1
    for j, o in enumerate(octets):
        if not o:
            if j != last:
                return False
            continue
        if not o.isdigit() or (len(o) > 1 and o[0] == 0x30) or int(o) > 255:
            return False
    return True


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _v6_prefix_ok(t: bytes) -> bool:
    """Could *t* still grow into an IPv6 address text?"""
    if len(t) > 45 or b":::" in t or t.count(b"::") > 1:
        return False
    if t[:1] == b":" and t[1:2] not in (b"", b":"):
        return False
    head, _, quad = t.rpartition(b":")
    if b"." in head:
        return False
    if b"." in quad:
        if not _v4_prefix_ok(quad):
            return False
        budget = 6
    else:
        budget = 8
    groups = [g for g in t.split(b":") if g]
    if b"." in quad:
        groups = groups[:-1]
    for g in groups:
        if len(g) > 4 or any(c not in _HEX for c in g):
            return False
    if quad and b"." not in quad and any(c not in _HEX for c in quad):
        return False
    if b"::" in t:
        return len(groups) <= budget - 1
    return len(groups) <= budget


def _port_prefix_ok(t: bytes) -> bool:
    if not t:
        return True
    return t.isdigit() and not (len(t) > 1 and t[0] == 0x30) and int(t) <= 0xFFFF


def _walk_v1(data: bytes, notes: _Notes) -> ProxyHeader | None:
    n = len(data)
    if not data.startswith(V1_PREFIX):
        if V1_PREFIX.startswith(data[:6]) and n < 6:
            _note(notes, data, 0, n, "signature", "start of 'PROXY ' (v1)", "incomplete")
            return None
        raise InvalidProxyHeader(Reason.NOT_PROXY, "a v1 line starts with 'PROXY '", data[:16], 0)
    _note(notes, data, 0, 6, "signature", "'PROXY ' starts a v1 (text) header")
    window = data[:V1_MAX_LINE]
    cr = window.find(b"\r")
    lf = window.find(b"\n")
    ends = [i for i in (cr, lf) if i >= 0]
    term = min(ends) if ends else -1
    line = window if term < 0 else window[:term]
    # The first byte that is not printable ASCII ends what we can judge as text.
    bad = next((i for i, c in enumerate(line) if not 0x20 <= c <= 0x7E), -1)
    if bad >= 0:
        _v1_fields(data, line[:bad], False, notes)
        raise InvalidProxyHeader(
            Reason.V1_BAD_CHARACTER, f"byte 0x{line[bad]:02X} is not printable ASCII",
            line[bad : bad + 1], bad)
    if term < 0:
        _v1_fields(data, line, False, notes)
        if n >= V1_MAX_LINE:
            raise InvalidProxyHeader(
                Reason.V1_TOO_LONG, f"no CRLF within the first {V1_MAX_LINE} bytes",
                data[:V1_MAX_LINE], 0)
        _note(notes, data, n, 0, "CRLF", "the line has not ended yet", "incomplete")
        return None
    header = _v1_fields(data, line, True, notes)
    if term + 2 > V1_MAX_LINE:
        raise InvalidProxyHeader(
            Reason.V1_TOO_LONG, f"the line would be {term + 2} bytes long (at most {V1_MAX_LINE})",
            data[:V1_MAX_LINE], 0)
    if data[term] == 0x0A:
        raise InvalidProxyHeader(
            Reason.V1_BAD_TERMINATOR, "a lone LF ends the line (CRLF required)",
            data[term : term + 1], term)
    if term + 1 == n:
        _note(notes, data, term, 1, "CRLF", "CR received, LF still to come", "incomplete")
        return None
    if data[term + 1] != 0x0A:
        raise InvalidProxyHeader(
            Reason.V1_BAD_TERMINATOR, "CR not followed by LF", data[term : term + 2], term)
    _note(notes, data, term, 2, "CRLF", "end of the v1 line")
    assert header is not None
    return header._with_size(term + 2)


def _v1_fields(data: bytes, line: bytes, complete: bool, notes: _Notes) -> ProxyHeader | None:
    """Validate the fields of a v1 *line* (without CRLF); *complete* says whether it has ended.

    Returns the header (with size 0) for a complete valid line, None for a valid prefix."""
    parts = line[6:].split(b" ")
    proto = parts[0]
    pos = 6
    if not proto and (len(parts) > 1 or complete):
        raise InvalidProxyHeader(
            Reason.V1_BAD_SEPARATOR, "two spaces in a row after 'PROXY'", line[5:16], 5)
    if len(parts) == 1 and not complete:
        if not any(p.startswith(proto) for p in _V1_PROTOCOLS):
            raise InvalidProxyHeader(
                Reason.V1_BAD_PROTOCOL, "protocol must be TCP4, TCP6 or UNKNOWN", proto, pos)
        _note(notes, data, pos, len(proto), "protocol", "protocol name so far", "incomplete")
        return None
    if proto not in _V1_PROTOCOLS:
        raise InvalidProxyHeader(
            Reason.V1_BAD_PROTOCOL, "protocol must be TCP4, TCP6 or UNKNOWN", proto, pos)
    if proto == b"UNKNOWN":
        _note(notes, data, pos, 7, "protocol", "UNKNOWN: use the real connection's addresses")
        rest = len(line) - pos - 7
        if rest:
            _note(notes, data, pos + 7, rest, "ignored", "after UNKNOWN, receivers ignore the rest",
                  "ignored")
        if not complete:
            return None
        return _tuple_new(ProxyHeader, (1, _PROXY, _UNSPEC, _TUNSPEC, None, None, (), 0, b"", None,
                                        None))
    v6 = proto == b"TCP6"
    _note(notes, data, pos, 4, "protocol", "TCP over IPv6" if v6 else "TCP over IPv4")
    pos += 5
    fields = parts[1:]
    names = ("source address", "destination address", "source port", "destination port")
    values: list[object] = []
    for idx, tok in enumerate(fields):
        partial = not complete and idx == len(fields) - 1
        if idx >= 4:
            raise InvalidProxyHeader(
                Reason.V1_BAD_SEPARATOR, "extra field or space after the destination port",
                line[pos - 1 : pos + 8], pos - 1)
        _note(notes, data, pos - 1, 1, "space", "separator")
        if not tok and not partial:
            raise InvalidProxyHeader(
                Reason.V1_BAD_SEPARATOR, f"empty {names[idx]} (two spaces in a row?)",
                line[max(pos - 1, 0) : pos + 8], pos - 1 if pos else pos)
        if idx < 2:
            if partial:
                ok = _v6_prefix_ok(tok) if v6 else _v4_prefix_ok(tok)
                if not ok:
                    raise InvalidProxyHeader(
                        Reason.V1_BAD_ADDRESS,
                        f"{names[idx]} cannot become an {'IPv6' if v6 else 'IPv4'} address",
                        tok, pos)
                _note(notes, data, pos, len(tok), names[idx], "address so far", "incomplete")
            else:
                text = tok.decode("ascii")
                num = ipv6_int(text) if v6 else ipv4_int(text)
                if num is None:
                    raise InvalidProxyHeader(
                        Reason.V1_BAD_ADDRESS,
                        f"{names[idx]} is not a valid {'IPv6' if v6 else 'IPv4'} address"
                        " (no leading zeros, no zone id, family must match the protocol)",
                        tok, pos)
                addr: IPv4Address | IPv6Address = IPv6Address(num) if v6 else IPv4Address(num)
                values.append(addr)
                _note(notes, data, pos, len(tok), names[idx], format_ip(addr))
        else:
            if partial:
                if not _port_prefix_ok(tok):
                    raise InvalidProxyHeader(
                        Reason.V1_BAD_PORT, f"{names[idx]} cannot become a port 0..65535", tok, pos)
                _note(notes, data, pos, len(tok), names[idx], "port so far", "incomplete")
            else:
                if not _port_prefix_ok(tok):
                    raise InvalidProxyHeader(
                        Reason.V1_BAD_PORT,
                        f"{names[idx]} must be decimal 0..65535 without leading zeros", tok, pos)
                values.append(int(tok))
                _note(notes, data, pos, len(tok), names[idx], f"port {int(tok)}")
        pos += len(tok) + 1
    if not complete:
        return None
    if len(values) < 4:
        raise InvalidProxyHeader(
            Reason.V1_BAD_SEPARATOR,
            f"the line ends after {len(values)} of 4 fields (src dst sport dport)", line, 0)
    s, d, sp, dp = values
    spelling = (fields[0].decode("ascii"), fields[1].decode("ascii")) if v6 else None
    return _tuple_new(ProxyHeader, (
        1, _PROXY, _INET6 if v6 else _INET, _STREAM,
        _tuple_new(Endpoint, (s, sp)), _tuple_new(Endpoint, (d, dp)), (), 0, b"", spelling, None))


# -- v2 -----------------------------------------------------------------------------------------


def _walk_v2(data: bytes, max_size: int, verify: bool, notes: _Notes) -> ProxyHeader | None:
    n = len(data)
    if n < 12:
        if V2_SIGNATURE.startswith(data):
            _note(notes, data, 0, n, "signature", "start of the v2 signature", "incomplete")
            return None
        raise InvalidProxyHeader(Reason.NOT_PROXY, "not the v2 signature", data[:12], 0)
    if data[:12] != V2_SIGNATURE:
        raise InvalidProxyHeader(Reason.NOT_PROXY, "not the v2 signature", data[:12], 0)
    _note(notes, data, 0, 12, "signature", "v2 (binary) signature \\r\\n\\r\\n\\0\\r\\nQUIT\\n")
    if n < 13:
        _note(notes, data, 12, 0, "version/command", "still to come", "incomplete")
        return None
    vc = data[12]
    if vc >> 4 != 2:
        raise InvalidProxyHeader(
            Reason.V2_BAD_VERSION, f"version nibble is {vc >> 4}, must be 2", data[12:13], 12)
    if vc & 0xF > 1:
        raise InvalidProxyHeader(
            Reason.V2_BAD_COMMAND, f"command nibble is {vc & 0xF} (0 LOCAL, 1 PROXY)",
            data[12:13], 12)
    command = Command(vc & 0xF)
    _note(notes, data, 12, 1, "version/command", f"version 2, command {command.name}"
          + (" (health check: use the real addresses)" if command is _LOCAL else ""))
    if n < 14:
        _note(notes, data, 13, 0, "family/transport", "still to come", "incomplete")
        return None
    ft = data[13]
    if command is _LOCAL and (ft not in VALID_FAMILY_TRANSPORT or (n >= 16 and
                              (data[14] << 8 | data[15]) < ADDRESS_BLOCK[Family(ft >> 4)]
                              and (data[14] << 8 | data[15]))):
        return _walk_v2_local_ignored(data, ft, max_size, notes)
    if ft >> 4 > 3:
        raise InvalidProxyHeader(
            Reason.V2_BAD_FAMILY, f"family nibble {ft >> 4} is undefined", data[13:14], 13)
    if ft & 0xF > 2:
        raise InvalidProxyHeader(
            Reason.V2_BAD_TRANSPORT, f"transport nibble {ft & 0xF} is undefined", data[13:14], 13)
    if ft not in VALID_FAMILY_TRANSPORT:
        raise InvalidProxyHeader(
            Reason.V2_BAD_FAMILY_TRANSPORT,
            f"family/transport byte 0x{ft:02X} mixes UNSPEC with a defined value",
            data[13:14], 13)
    family = Family(ft >> 4)
    transport = Transport(ft & 0xF)
    _note(notes, data, 13, 1, "family/transport", f"{family.name} over {transport.name}")
    length = _v2_length(data, max_size, notes)
    if length is None:
        return None
    end = V2_FIXED + length
    block = ADDRESS_BLOCK[family]
    if length < block and (command is _PROXY or length):
        raise InvalidProxyHeader(
            Reason.V2_ADDRESS_TRUNCATED,
            f"{family.name} needs a {block}-byte address block, length is {length}",
            data[14:16], 14)
    if n < end:
        _note(notes, data, 16, n - 16, "rest", f"{end - n} byte(s) still to come", "incomplete")
        return None
    src: Endpoint | None = None
    dst: Endpoint | None = None
    skipped = b""
    if command is _LOCAL:
        if block and length:
            skipped = data[16 : 16 + block]
            _note(notes, data, 16, block, "address block",
                  "ignored: LOCAL means the real connection's addresses count", "ignored")
        else:
            block = 0
    elif family is _INET:
        s, d, sp, dp = _unpack_v4(data, 16)
        src = _tuple_new(Endpoint, (IPv4Address(s), sp))
        dst = _tuple_new(Endpoint, (IPv4Address(d), dp))
    elif family is _INET6:
        s6, d6, sp, dp = _unpack_v6(data, 16)
        src = _tuple_new(Endpoint, (IPv6Address(s6), sp))
        dst = _tuple_new(Endpoint, (IPv6Address(d6), dp))
    elif family is _UNIX:
        src = _tuple_new(Endpoint, (_unix_path(data, 16), None))
        dst = _tuple_new(Endpoint, (_unix_path(data, 16 + UNIX_PATH_LEN), None))
    if src is not None and dst is not None and notes is not None:
        if family is _UNIX:
            _note(notes, data, 16, UNIX_PATH_LEN, "source path", repr(src.host))
            _note(notes, data, 16 + UNIX_PATH_LEN, UNIX_PATH_LEN, "destination path",
                  repr(dst.host))
        else:
            w = 4 if family is _INET else 16
            _note(notes, data, 16, w, "source address", format_ip(src.host))  # type: ignore[arg-type]
            _note(notes, data, 16 + w, w, "destination address",
                  format_ip(dst.host))  # type: ignore[arg-type]
            _note(notes, data, 16 + 2 * w, 2, "source port", f"port {src.port}")
            _note(notes, data, 18 + 2 * w, 2, "destination port", f"port {dst.port}")
    tlv_at = V2_FIXED + block
    tlvs = split_tlvs(data, tlv_at, end) if end > tlv_at else ()
    if notes is not None:
        _note_tlvs(data, tlvs, tlv_at, notes)
    check_tlvs(data[:end], tlvs, tlv_at, verify)
    if notes is not None:
        for i, f in enumerate(notes):
            if f.name == "CRC32C" and f.verdict == "ok":
                notes[i] = f._replace(meaning=f.meaning + (" — verified" if verify else
                                                           " — not verified (disabled)"))
    return _tuple_new(ProxyHeader, (2, command, family, transport, src, dst, tlvs, end, skipped,
                                    None, None))


def _v2_length(data: bytes, max_size: int, notes: _Notes) -> int | None:
    """The v2 length field (None while incomplete), checked against the size cap."""
    n = len(data)
    if n < 16:
        _note(notes, data, 14, n - 14, "length", "the 2-byte length is still incomplete",
              "incomplete")
        return None
    length = (data[14] << 8) | data[15]
    end = V2_FIXED + length
    if end > max_size:
        raise InvalidProxyHeader(
            Reason.V2_TOO_LARGE, f"header would be {end} bytes, the cap is {max_size}",
            data[14:16], 14)
    _note(notes, data, 14, 2, "length", f"{length} more bytes (header is {end} bytes)")
    return length


def _walk_v2_local_ignored(data: bytes, ft: int, max_size: int, notes: _Notes
                           ) -> ProxyHeader | None:
    """A LOCAL header whose family/transport byte is undefined, or whose body is shorter than
    that family's address block: spec §2.2 says the receiver ignores the family and the block
    and uses the real connection's addresses — only the length is honoured (so no TLVs are
    read from that body)."""
    n = len(data)
    _note(notes, data, 13, 1, "family/transport",
          f"0x{ft:02X}: ignored (LOCAL: the family and its address block do not count)",
          "ignored")
    length = _v2_length(data, max_size, notes)
    if length is None:
        return None
    end = V2_FIXED + length
    if n < end:
        _note(notes, data, 16, n - 16, "rest", f"{end - n} byte(s) still to come", "incomplete")
        return None
    if length:
        _note(notes, data, 16, length, "ignored body",
              "ignored: LOCAL means the real connection's addresses count", "ignored")
    return _tuple_new(ProxyHeader, (2, _LOCAL, _UNSPEC, _TUNSPEC, None, None, (), end,
                                    data[16:end], None, ft))


def _unix_path(data: bytes, at: int) -> str:
    raw = data[at : at + UNIX_PATH_LEN]
    if raw[:1] == b"\0":
        # Linux abstract socket: the name follows a leading NUL; trailing NULs are padding.
        name = raw[1:].rstrip(b"\0")
        return "\0" + name.decode("utf-8", "surrogateescape") if name else ""
    path, nul, pad = raw.partition(b"\0")
    if nul and pad.strip(b"\0"):
        raise InvalidProxyHeader(
            Reason.V2_BAD_UNIX_PATH, "bytes other than NUL after the NUL that ends the path",
            raw, at)
    return path.decode("utf-8", "surrogateescape")


def _tlv_meaning(t: int, v: bytes) -> str:
    if t == TLVType.CRC32C:
        return f"CRC32C 0x{v.hex().upper()}"
    if t == TLVType.AUTHORITY:
        return f"authority (SNI) {v.decode('utf-8', 'replace')!r}"
    if t == TLVType.ALPN:
        return f"ALPN {v.decode('ascii', 'replace')!r}"
    if t == TLVType.NOOP:
        return f"NOOP padding, {len(v)} byte(s)"
    if t == TLVType.UNIQUE_ID:
        return f"unique id, {len(v)} byte(s)"
    if t == TLVType.NETNS:
        return f"network namespace {v.decode('ascii', 'replace')!r}"
    if t == TLVType.AWS and v[:1] == b"\x01":
        return f"AWS VPC endpoint {v[1:].decode('ascii', 'replace')!r}"
    if t == TLVType.AZURE and len(v) == 5 and v[0] == 1:
        return f"Azure Private Link LINKID {int.from_bytes(v[1:], 'little')}"
    if t == TLVType.GCP and len(v) == 8:
        return f"GCP PSC connection id {int.from_bytes(v, 'big')}"
    return f"{tlv_range(t)} TLV type 0x{t:02X}, {len(v)} byte(s)"


def _note_tlvs(data: bytes, tlvs: tuple[TLV, ...], at: int, notes: list[Field]) -> None:
    for t, v in tlvs:
        name = TLV(t, v).name
        _note(notes, data, at, 3, f"{name} head", f"TLV type 0x{t:02X}, {len(v)} byte(s)")
        if t == TLVType.SSL and len(v) >= 5:
            client = SSLClient(v[0])
            flags = "|".join(f.name or "" for f in SSLClient if f in client) or "none"
            _note(notes, data, at + 3, 1, "SSL client", f"client flags {flags}")
            verify = int.from_bytes(v[1:5], "big")
            if not client & (SSLClient.CERT_CONN | SSLClient.CERT_SESS):
                # HAProxy leaves 0 when no certificate was presented (recorded with 2.6.12)
                meaning = f"verify {verify}: no client certificate, so it says nothing"
            elif verify == 0:
                meaning = "verify 0: the client certificate was verified"
            else:
                meaning = f"verify {verify}: the client certificate failed verification"
            _note(notes, data, at + 4, 4, "SSL verify", meaning)
            sub_at = at + 8
            try:
                subs = check_ssl(v, at + 3)
            except InvalidProxyHeader:
                subs = ()
            for st, sv in subs:
                try:
                    sname = SSLSubType(st).name
                except ValueError:
                    sname = f"0x{st:02X}"
                _note(notes, data, sub_at, 3 + len(sv), f"SSL {sname}",
                      sv.decode("utf-8", "replace") if st != SSLSubType.CLIENT_CERT
                      else f"certificate, {len(sv)} bytes DER")
                sub_at += 3 + len(sv)
        elif v or t != TLVType.NOOP:
            verdict = "ignored" if t == TLVType.NOOP else "ok"
            _note(notes, data, at + 3, len(v), name, _tlv_meaning(t, v), verdict)
        at += 3 + len(v)


# ----------------------------------------------------------------------------------------------
# annotate


def annotate(
    data: bytes | bytearray | memoryview,
    *,
    version: int | None = None,
    max_v2_size: int = V2_DEFAULT_MAX_SIZE,
    verify_crc32c: bool = True,
) -> list[Field]:
    """Explain *data* field by field, like Wireshark's bytes pane.

    Never raises for any input bytes: a malformed header ends with a field whose verdict is
    ``error`` (its meaning carries the reason), an incomplete one with ``incomplete``, and bytes
    after a complete header are one ``payload`` field.
    """
    buf = _as_bytes(data, V2_MAX_SIZE + 4096)
    notes: list[Field] = []
    try:
        header = _walk(buf, version, max_v2_size, verify_crc32c, notes)
    except InvalidProxyHeader as exc:
        at = exc.offset or 0
        # Fields at or after the offending bytes are superseded by the error field.
        notes[:] = [f for f in notes if f.offset < at and f.verdict != "incomplete"]
        length = max(1, len(exc.data)) if at < len(buf) else 0
        notes.append(Field(at, min(length, len(buf) - at), "error", buf[at : at + length],
                           f"{exc.reason.value}: {exc.detail}", "error"))
        return notes
    if header is not None and header.size < len(buf):
        notes.append(Field(header.size, len(buf) - header.size, "payload", buf[header.size :],
                           "application data after the header (not part of it)", "payload"))
    return notes


# ----------------------------------------------------------------------------------------------
# encode


def encode(header: ProxyHeader, *, fill_crc32c: bool = True) -> bytes:
    """Serialise *header*.

    Anything :func:`decode` accepted comes out byte for byte as it went in, except a v1
    ``UNKNOWN`` line, which is written in its short form ``PROXY UNKNOWN\\r\\n``.  A CRC32C TLV's
    value is computed last, over the whole header with the field zeroed (set *fill_crc32c* to
    False to keep the value given, e.g. to build a tampered header for a lesson).
    """
    if not isinstance(header, ProxyHeader):
        raise EncodeError(f"encode() needs a ProxyHeader, not {type(header).__name__}")
    if header.version == 1:
        return _encode_v1(header)
    return _encode_v2(header, fill_crc32c)


def _encode_v1(h: ProxyHeader) -> bytes:
    if h.family is _UNSPEC:
        return b"PROXY UNKNOWN\r\n"
    src, dst = h.source, h.destination
    assert src is not None and dst is not None
    texts = [format_ip(src.host), format_ip(dst.host)]  # type: ignore[arg-type]
    if h.v1_text is not None:
        # Keep the sender's spelling (e.g. "2001:0DB8::1") when it still means the same address.
        for i, (orig, ep) in enumerate(zip(h.v1_text, (src, dst), strict=True)):
            num = ipv6_int(orig) if h.family is _INET6 else ipv4_int(orig)
            if num is not None and num == int(ep.host):
                texts[i] = orig
    proto = "TCP4" if h.family is _INET else "TCP6"
    return f"PROXY {proto} {texts[0]} {texts[1]} {src.port} {dst.port}\r\n".encode("ascii")


def _encode_v2(h: ProxyHeader, fill_crc32c: bool) -> bytes:
    parts: list[bytes] = []
    if h.raw_family_transport is not None:  # an ignored family and body, as received
        return (V2_SIGNATURE + bytes((0x20 | h.command, h.raw_family_transport))
                + len(h.skipped).to_bytes(2, "big") + h.skipped)
    if h.command is _LOCAL:
        parts.append(h.skipped)
    elif h.family is _INET or h.family is _INET6:
        src, dst = h.source, h.destination
        assert src is not None and dst is not None
        parts.append(src.host.packed + dst.host.packed  # type: ignore[union-attr]
                     + struct.pack("!HH", src.port, dst.port))
    elif h.family is _UNIX:
        src, dst = h.source, h.destination
        assert src is not None and dst is not None
        for ep in (src, dst):
            raw = str(ep.host).encode("utf-8", "surrogateescape")
            parts.append(raw.ljust(UNIX_PATH_LEN, b"\0"))
    crc_at = -1
    offset = V2_FIXED + sum(len(p) for p in parts)
    for t, v in h.tlvs:
        if t == TLVType.CRC32C and fill_crc32c:
            if len(v) != 4:
                raise EncodeError(f"a CRC32C TLV holds 4 bytes, this one {len(v)}")
            if crc_at >= 0:
                raise EncodeError("two CRC32C TLVs: receivers reject that")
            crc_at = offset + 3
            v = b"\0\0\0\0"
        parts.append(bytes((t, len(v) >> 8, len(v) & 0xFF)) + v)
        offset += 3 + len(v)
    body = b"".join(parts)
    if len(body) > 0xFFFF:
        raise EncodeError(f"a v2 header holds at most 65535 bytes after the fixed part, not "
                          f"{len(body)}")
    out = (V2_SIGNATURE + bytes((0x20 | h.command, (h.family << 4) | h.transport))
           + len(body).to_bytes(2, "big") + body)
    if crc_at >= 0:
        out = out[:crc_at] + crc32c(out).to_bytes(4, "big") + out[crc_at + 4 :]
    return out
