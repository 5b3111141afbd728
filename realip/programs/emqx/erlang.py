"""Erlang/OTP's address grammar, as EMQX meets it (``inet:parse_address/1`` on a string).

EMQX parses ``X-Forwarded-For`` tokens with ``inet:parse_address``, whose IPv4 reader is the
permissive BSD one: ``127.1`` is 127.0.0.1, ``010.0.0.1`` is **octal** (8.0.0.1), ``0x7f.1`` is hex,
and one to four fields fill the address from the right.  Its IPv6 reader accepts a zone suffix
(``%eth0`` is ignored, a numeric one is folded into ``fe80::``/``ff02::`` addresses) and, like
nginx's, skips one leading colon.  Port of ``lib/kernel/src/inet_parse.erl`` (list path).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from ..._addr import inet_aton, ipv4_int

__all__ = [
    "format_binary",
    "list_to_integer",
    "ntoa",
    "parse_address",
    "parse_address_bytes",
    "parse_ipv4",
    "parse_ipv4strict",
    "parse_ipv6",
]


class _Error(Exception):
    pass


def parse_ipv4(s: str) -> int | None:
    """``inet_parse:ipv4_address/1``: 1–4 fields, decimal/octal/hex, the last fills the rest
    (the BSD ``inet_aton`` grammar, shared: :func:`realip._addr.inet_aton`)."""
    return inet_aton(s)


def _isdec(t: str) -> bool:
    # str.isdigit() also accepts "²" and other Unicode digits; Erlang takes only $0..$9
    return bool(t) and all("0" <= c <= "9" for c in t)


def _strict_octet(t: str) -> int:
    if len(t) == 1 and _isdec(t):
        return int(t)
    if len(t) == 2 and t[0] in "123456789" and _isdec(t[1]):
        return int(t)
    if len(t) == 3 and _isdec(t) and t[0] in "12" and int(t) <= 255:
        return int(t)
    raise _Error


_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_field(t: str) -> int:
    if not 1 <= len(t) <= 4 or any(c not in _HEX for c in t):
        raise _Error
    return int(t, 16)


def _fill(n: int, before: list[int], after: list[int], compressed: bool) -> list[int]:
    if not compressed:
        if n != 8:
            raise _Error
        return before
    if n > 8:
        raise _Error
    return before + [0] * (8 - n) + after


def _scope(suffix: str, words: list[int]) -> list[int]:
    if not suffix:
        raise _Error  # a zone id cannot be empty
    if not _isdec(suffix[0]):
        return words  # a named zone (eth0) is ignored
    scope = 0
    for c in suffix:
        if not _isdec(c):
            return words  # digits then letters: ignored as well
        scope = scope * 10 + int(c)
        if scope > 0xFFFF:
            raise _Error
    # FreeBSD-style: a numeric zone rides in the second word of link-local/multicast addresses.
    if words[0] in (0xFE80, 0xFF02) and words[1] == 0:
        return [words[0], scope, *words[2:]]
    raise _Error


def parse_ipv6(s: str) -> int | None:
    """``inet_parse:ipv6strict_address/1`` (RFC 4291 text, zone suffix handled as OTP does)."""
    try:
        return _ipv6(s)
    except _Error:
        return None


def _ipv6(s: str) -> int:
    if not s:
        raise _Error
    if s == "::":
        return 0
    if s[0] == ":":
        s = s[1:]
    before: list[int] = []
    after: list[int] = []
    cur = before
    compressed = False
    n = 0
    i = 0
    while True:
        if n >= 8:
            raise _Error
        rest = s[i:]
        if rest.startswith(":"):
            if compressed:
                raise _Error  # a second "::" or ":::"
            compressed = True
            tail = rest[1:]
            if not tail:
                words = _fill(n, before, after, True)
                return _join(words)
            if tail[0] == "%":
                cur = after
                after.append(0)
                words = _fill(n + 1, before, after, True)
                return _join(_scope(tail[1:], words))
            before.append(0)
            cur = after
            n += 1
            i += 1
            continue
        if not rest or rest[0] in "%.":
            raise _Error
        j = 0
        while j < len(rest) and rest[j] not in ":%.":
            j += 1
        field, sep = rest[:j], rest[j : j + 1]
        if sep == ".":
            if n > 6 or len(field) > 3:
                raise _Error
            a = _strict_octet(field)
            tail = rest[j + 1 :]
            quad, pct, zone = tail.partition("%")
            parts = quad.split(".")
            if len(parts) != 3:
                raise _Error
            b, c, d = (_strict_octet(p) for p in parts)
            cur += [(a << 8) | b, (c << 8) | d]
            words = _fill(n + 2, before, after, compressed)
            return _join(_scope(zone, words) if pct else words)
        x = _hex_field(field)
        if not sep:
            cur.append(x)
            return _join(_fill(n + 1, before, after, compressed))
        if sep == "%":
            cur.append(x)
            words = _fill(n + 1, before, after, compressed)
            return _join(_scope(rest[j + 1 :], words))
        if j + 1 == len(rest):
            raise _Error  # truncated after ':'
        cur.append(x)
        n += 1
        i += j + 1


def _join(words: list[int]) -> int:
    value = 0
    for w in words:
        value = (value << 16) | w
    return value


def parse_address(s: str) -> IPv4Address | IPv6Address | None:
    """``inet:parse_address/1`` on a string: the lenient IPv4 reader, then IPv6."""
    v4 = parse_ipv4(s)
    if v4 is not None:
        return IPv4Address(v4)
    v6 = parse_ipv6(s)
    return None if v6 is None else IPv6Address(v6)


def ntoa(ip: IPv4Address | IPv6Address) -> str:
    """``inet:ntoa/1``: how EMQX prints an address (``emqx ctl clients show`` peername)."""
    if isinstance(ip, IPv4Address):
        return str(ip)
    w = [(int(ip) >> (112 - 16 * i)) & 0xFFFF for i in range(8)]

    def dec(x: int) -> str:
        return f"{(x >> 8) & 0xFF}.{x & 0xFF}"

    if w == [0] * 8:
        return "::"
    if w == [0] * 7 + [1]:
        return "::1"
    if w[:6] == [0] * 6:
        return "::" + dec(w[6]) + "." + dec(w[7])
    if w[:5] == [0] * 5 and w[5] == 0xFFFF:
        return "::ffff:" + dec(w[6]) + "." + dec(w[7])
    suffix = ""
    if w[0] in (0xFE80, 0xFF02) and w[1] != 0:
        suffix = f"%{w[1]}"
        w = [w[0], 0, *w[2:]]
    # Longest run of at least two zero words becomes "::" (the first one on ties).
    best, best_len, i = -1, 1, 0
    while i < 8:
        if w[i] == 0:
            j = i
            while j < 8 and w[j] == 0:
                j += 1
            if j - i > best_len:
                best, best_len = i, j - i
            i = j
        else:
            i += 1
    hexes = [f"{x:x}" for x in w]
    if best < 0:
        return ":".join(hexes) + suffix
    return ":".join(hexes[:best]) + "::" + ":".join(hexes[best + best_len :]) + suffix


# -- the other readers esockd and ranch call ----------------------------------------------------

_INT_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def list_to_integer(text: str, base: int = 10) -> int | None:
    """``erlang:list_to_integer/2``: optional sign, digits of *base*, nothing else (None where
    Erlang raises ``badarg``)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or any(c not in _INT_DIGITS[base] for c in body):
        return None
    value = int(body, base)
    return -value if text[:1] == "-" else value


def parse_address_bytes(t: bytes) -> IPv4Address | IPv6Address | None:
    """:func:`parse_address` of bytes read off the wire (latin-1, as Erlang lists of bytes)."""
    return parse_address(t.decode("latin-1"))


def parse_ipv4strict(s: str) -> int | None:
    """``inet:parse_ipv4strict_address``: dotted quad, decimal, no leading zeros."""
    return ipv4_int(s)


# -- how Erlang prints what its readers return ---------------------------------------------------

# io_lib:printable_latin1_list/1 (the default printable range): these bytes keep a binary a string
_PRINTABLE = frozenset(range(32, 127)) | frozenset(range(160, 256)) | frozenset(b"\n\r\t\v\b\f\x1b")
_ESCAPES = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v", 0x08: "\\b", 0x0C: "\\f",
            0x1B: "\\e", 0x22: '\\"', 0x5C: "\\\\"}


def format_binary(data: bytes) -> str:
    """A binary as ``io_lib:format("~0p", [Bin])`` prints it (latin-1 printable range):
    ``<<"PROXY\\r\\n">>`` when every byte is printable, else ``<<13,10,0>>``."""
    if data and all(b in _PRINTABLE for b in data):
        return '<<"' + "".join(_ESCAPES.get(b, chr(b)) for b in data) + '">>'
    return "<<" + ",".join(str(b) for b in data) + ">>"
