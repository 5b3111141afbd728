"""Strict address text <-> ``ipaddress`` objects, without the ``socket`` module.

The PROXY protocol's grammar (dotted quads without leading zeros, RFC 4291 IPv6 text without zone
ids) is stricter than :mod:`ipaddress` in some places and different in others, and
``ipaddress.ip_address(text)`` is slow, so the parsers here are written out.  The formatter prints
IPv6 like ``inet_ntop`` (what nginx and HAProxy write), which differs from ``str(IPv6Address)`` for
IPv4-mapped and IPv4-compatible addresses on Python < 3.13.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "format_ip", "format_ipv6", "inet_aton", "ipv4_int", "ipv6_int", "parse_ipv4", "parse_ipv6",
]

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_STR_RE = re.compile(r"\.".join([_OCTET] * 4))
_HEXCOLON_RE = re.compile(r"[0-9A-Fa-f:]+")


def ipv4_int(text: str) -> int | None:
    """Strict dotted quad (no leading zeros, each octet 0..255) → 32-bit int, or None."""
    m = _IPV4_STR_RE.fullmatch(text)
    if m is None:
        return None
    a, b, c, d = m.groups()
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def ipv6_int(text: str) -> int | None:
    """RFC 4291 IPv6 text (at most one ``::``, optional dotted IPv4 tail, no zone id) → int."""
    if not text or len(text) > 45:
        return None
    if "." in text:
        return _ipv6_int_dotted(text)
    return _ipv6_groups(text, 8)


def _ipv6_groups(text: str, ngroups: int) -> int | None:
    if "::" in text:
        left, _, right = text.partition("::")
        if "::" in right:
            return None
        lg = left.split(":") if left else []
        rg = right.split(":") if right else []
        missing = ngroups - len(lg) - len(rg)
        if missing < 1:
            return None
        groups = [*lg, *(["0"] * missing), *rg]
    else:
        groups = text.split(":")
        if len(groups) != ngroups:
            return None
    for g in groups:
        if not 0 < len(g) <= 4:
            return None
    if _HEXCOLON_RE.fullmatch(text) is None:
        return None
    return int("".join([g.zfill(4) for g in groups]), 16)


def _ipv6_int_dotted(text: str) -> int | None:
    # An embedded dotted quad stands for the last two groups.
    head, sep, quad = text.rpartition(":")
    if not sep:
        return None
    v4 = ipv4_int(quad)
    if v4 is None:
        return None
    prefix = head + ":"
    if prefix.endswith("::"):
        # "::" right before the quad: "x::1.2.3.4"; ":::" would be one colon too many.
        if prefix.endswith(":::"):
            return None
        head = prefix
    elif not head:
        return None
    high = _ipv6_groups(head, 6)
    if high is None:
        return None
    return (high << 32) | v4


def parse_ipv4(text: str) -> IPv4Address | None:
    """Strict dotted quad → :class:`IPv4Address`, or None."""
    v = ipv4_int(text)
    return None if v is None else IPv4Address(v)


def parse_ipv6(text: str) -> IPv6Address | None:
    """Strict IPv6 text → :class:`IPv6Address`, or None (zone ids are refused)."""
    v = ipv6_int(text)
    return None if v is None else IPv6Address(v)


def format_ipv6(addr: IPv6Address) -> str:
    """Print *addr* the way ``inet_ntop`` does (``::ffff:1.2.3.4``, ``::1.2.3.4``)."""
    value = int(addr)
    words = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    # Longest run of zero words (first one on ties); runs of one word stay uncompressed.
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base < 0:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
            if cur_len > best_len:
                best_base, best_len = cur_base, cur_len
        else:
            cur_base = -1
    if best_len < 2:
        best_base = -1
    embedded = best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF))
    out: list[str] = []
    i = 0
    while i < 8:
        if i == best_base:
            out.append(":" if i == 0 else "")
            i += best_len
            if i == 8:
                out.append("")
            continue
        if embedded and i == 6:
            out.append(str(IPv4Address(value & 0xFFFFFFFF)))
            break
        out.append(f"{words[i]:x}")
        i += 1
    return ":".join(out)


def format_ip(addr: IPv4Address | IPv6Address) -> str:
    """Print an address as nginx and HAProxy do."""
    if isinstance(addr, IPv4Address):
        return str(addr)
    return format_ipv6(addr)


def _fast_constructors() -> tuple[Callable[[int], IPv4Address], Callable[[int], IPv6Address]]:
    """Constructors from an already range-checked int that skip ``__init__``'s re-validation.

    ``ipaddress`` keeps the value in the ``_ip`` slot (and ``_scope_id`` for IPv6) on every
    supported Python; if a future version changes that layout, the self-check below fails and the
    public constructors are used instead.
    """
    new = object.__new__

    def v4(n: int) -> IPv4Address:
        obj = new(IPv4Address)
        obj._ip = n  # type: ignore[attr-defined]
        return obj

    def v6(n: int) -> IPv6Address:
        obj = new(IPv6Address)
        obj._ip = n  # type: ignore[attr-defined]
        obj._scope_id = None  # type: ignore[attr-defined]
        return obj

    try:
        probes = (0, 1, 0x7F000001, 0xFFFFFFFF)
        if all(v4(p) == IPv4Address(p) and str(v4(p)) == str(IPv4Address(p))
               and hash(v4(p)) == hash(IPv4Address(p)) for p in probes) and all(
            v6(p) == IPv6Address(p) and str(v6(p)) == str(IPv6Address(p))
            and hash(v6(p)) == hash(IPv6Address(p)) and v6(p).scope_id is None
            for p in (*probes, 1 << 127, (1 << 128) - 1)
        ):
            return v4, v6
    except Exception:  # pragma: no cover - layout changed
        pass
    return IPv4Address, IPv6Address  # pragma: no cover


#: Build address objects from ints the caller has range-checked (the decoders' hot path).
ipv4_from_int, ipv6_from_int = _fast_constructors()
#: Whether those skip ``__init__`` (the ``_ip`` slot layout checked out): a decoder's innermost
#: loop may then set the slot itself, saving a call per address.
FAST_ADDRESS_SLOTS: bool = ipv4_from_int is not IPv4Address


# -- the BSD inet_aton grammar (Erlang inet_parse, nginx getaddrinfo fallback) ----------------


class _AtonError(Exception):
    pass


_ATON_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}


def _aton_field(digits: str, base: int) -> int:
    # list_to_integer/2 on one field: signs are refused, empty or bad digits are badarg
    if not digits or any(c not in _ATON_DIGITS[base] for c in digits):
        raise _AtonError
    value = int(digits, base)
    if value > 0xFFFFFFFF:
        raise _AtonError
    return value


def _aton_fields(s: str) -> list[int]:
    fields: list[int] = []
    i = 0
    n = len(s)
    while True:
        if len(fields) == 4:
            raise _AtonError  # characters after the fourth field
        if s.startswith(("0x", "0X"), i):
            start, base, limit, prefix = i + 2, 16, 8, ""
        elif s.startswith("0", i):
            start, base, limit, prefix = i + 1, 8, 11, "0"
        elif i < n and "0" <= s[i] <= "9":
            start, base, limit, prefix = i, 10, 10, ""
        else:
            raise _AtonError
        end = s.find(".", start)
        if end < 0:
            end = n
        if end - start > limit:
            raise _AtonError
        fields.append(_aton_field(prefix + s[start:end], base))
        if end == n:
            return fields
        if end + 1 == n:
            raise _AtonError  # a dot must be followed by a field
        i = end + 1


def inet_aton(s: str) -> int | None:
    """The BSD ``inet_aton`` grammar as Erlang's ``inet_parse:ipv4_address/1`` reads it (and
    nginx's numeric ``getaddrinfo`` fallback): 1–4 fields, decimal/octal/hex, the last fills the
    rest."""
    try:
        f = _aton_fields(s)
    except _AtonError:
        return None
    if len(f) == 1:
        return f[0]
    if len(f) == 2 and f[0] <= 0xFF and f[1] <= 0xFFFFFF:
        return (f[0] << 24) | f[1]
    if len(f) == 3 and f[0] <= 0xFF and f[1] <= 0xFF and f[2] <= 0xFFFF:
        return (f[0] << 24) | (f[1] << 16) | f[2]
    if len(f) == 4 and all(x <= 0xFF for x in f):
        return (f[0] << 24) | (f[1] << 16) | (f[2] << 8) | f[3]
    return None
