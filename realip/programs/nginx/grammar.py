"""nginx's own address grammar and printing, reproduced exactly (sans-IO).

nginx does not use ``inet_pton``: its parsers (``ngx_inet_addr``, ``ngx_inet6_addr``,
``ngx_parse_addr_port``, ``ngx_ptocidr``) accept and reject different strings than Python's
:mod:`ipaddress`, and its printer (``ngx_inet6_ntop``) spells some IPv6 addresses differently from
``inet_ntop``.  Where the realip module's result must match nginx byte for byte, these are the
functions to use.  Behaviour that changed between releases takes a *version* tuple; the default is
Debian 12's nginx 1.22.1, which is what this project's CI runs.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from ..._addr import inet_aton, ipv6_int
from ...errors import ConfigurationError

__all__ = [
    "DEFAULT_VERSION",
    "NginxAddr",
    "NginxCIDR",
    "format_addr",
    "format_ipv6",
    "inet6_addr",
    "inet_addr",
    "parse_addr",
    "parse_addr_port",
    "parse_version",
    "ptocidr",
]

#: The nginx release modelled when none is given (Debian 12 ships 1.22.1).
DEFAULT_VERSION: tuple[int, int, int] = (1, 22, 1)
#: ``[v6]`` without a port became a valid realip token in 1.27.3.
BRACKETS_WITHOUT_PORT = (1, 27, 3)

_INADDR_NONE = 0xFFFFFFFF


def parse_version(version: str | tuple[int, ...] | None) -> tuple[int, int, int]:
    """``"1.27.3"``, ``(1, 27)`` or None (→ :data:`DEFAULT_VERSION`) as a 3-tuple."""
    if version is None:
        return DEFAULT_VERSION
    parts = version.split(".") if isinstance(version, str) else list(version)
    try:
        nums = [int(p) for p in parts][:3]
    except ValueError:
        raise ConfigurationError(f"not an nginx version: {version!r}") from None
    while len(nums) < 3:
        nums.append(0)
    return (nums[0], nums[1], nums[2])


class NginxAddr(NamedTuple):
    """An address as nginx holds it after parsing: the ``ipaddress`` object and the port
    (0 when the text carried none — nginx then prints an empty ``$remote_port``)."""

    ip: IPv4Address | IPv6Address
    port: int = 0


def inet_addr(text: bytes) -> int | None:
    """``ngx_inet_addr``: dotted quad → int, or None.

    Exactly three dots; digits only; an octet over 255 fails; **leading zeros are decimal**
    (``010`` is 10) and **empty octets count as 0** (``1..2.3``); ``255.255.255.255`` fails because
    it equals ``INADDR_NONE``.
    """
    addr = octet = dots = 0
    for c in text:
        if 0x30 <= c <= 0x39:
            octet = octet * 10 + c - 0x30
            if octet > 255:
                return None
        elif c == 0x2E:
            addr = (addr << 8) + octet
            octet = 0
            dots += 1
        else:
            return None
    if dots != 3:
        return None
    addr = ((addr << 8) + octet) & 0xFFFFFFFF
    return None if addr == _INADDR_NONE else addr


def inet6_addr(text: bytes) -> int | None:
    """``ngx_inet6_addr``: IPv6 text → int, or None.

    Case-insensitive hex, one ``::``, a dotted IPv4 tail (parsed with :func:`inet_addr`'s rules),
    and one quirk: a single leading ``:`` is skipped, so ``:1:2:3:4:5:6:7:8`` is accepted.  Zone
    ids are not.
    """
    n_text = len(text)
    if n_text == 0:
        return None
    pos = 0
    if text[0] == 0x3A:
        pos = 1
    out: list[int] = []  # bytes written so far
    zero: int | None = None  # index in out where "::" stands
    digit: int | None = None  # start of the current group in text
    nibbles = word = 0
    n = 8
    while pos < n_text:
        c = text[pos]
        pos += 1
        if c == 0x3A:  # ':'
            if nibbles:
                digit = pos
                out += (word >> 8, word & 0xFF)
                n -= 1
                if n:
                    nibbles = word = 0
                    continue
            elif zero is None:
                digit = pos
                zero = len(out)
                continue
            return None
        if c == 0x2E and nibbles:  # '.' after hex digits: the group was an IPv4 tail
            if n < 2 or digit is None:
                return None
            v4 = inet_addr(text[digit:])
            if v4 is None:
                return None
            out += ((v4 >> 24) & 0xFF, (v4 >> 16) & 0xFF)
            n -= 1
            word = v4 & 0xFFFF
            break
        nibbles += 1
        if nibbles > 4:
            return None
        if 0x30 <= c <= 0x39:
            word = word * 16 + c - 0x30
            continue
        c |= 0x20
        if 0x61 <= c <= 0x66:
            word = word * 16 + c - 0x61 + 10
            continue
        return None
    else:
        if nibbles == 0 and zero is None:
            return None
    out += (word >> 8, word & 0xFF)
    n -= 1
    if n:
        if zero is None:
            return None
        out[zero:zero] = [0] * (2 * n)
    elif zero is not None:
        return None
    return int.from_bytes(bytes(out), "big")


def parse_addr(text: bytes) -> IPv4Address | IPv6Address | None:
    """``ngx_parse_addr``: IPv4 first, then IPv6; no port syntax."""
    v4 = inet_addr(text)
    if v4 is not None:
        return IPv4Address(v4)
    v6 = inet6_addr(text)
    return None if v6 is None else IPv6Address(v6)


def _atoi(text: bytes) -> int | None:
    if not text or not text.isdigit():
        return None
    return int(text)


def parse_addr_port(text: bytes, version: tuple[int, int, int] = DEFAULT_VERSION
                    ) -> NginxAddr | None:
    """``ngx_parse_addr_port``: the token grammar of realip (``X-Forwarded-For`` entries).

    A bare address (no port) first; then ``[addr]:port`` or ``addr:port`` split at the *first*
    colon; the port must be decimal 1..65535 (``:0`` makes the whole token unparsable).  ``[v6]``
    without a port is accepted from 1.27.3 on.  Brackets may hold an IPv4 address too.
    """
    ip = parse_addr(text)
    if ip is not None:
        return NginxAddr(ip, 0)
    if text[:1] == b"[":
        close = text.find(b"]")
        if close == len(text) - 1:
            if version < BRACKETS_WITHOUT_PORT:
                return None
            ip = parse_addr(text[1:-1])
            return None if ip is None else NginxAddr(ip, 0)
        if close < 0 or text[close + 1 : close + 2] != b":":
            return None
        host, port_text = text[1:close], text[close + 2 :]
    else:
        colon = text.find(b":")
        if colon < 0:
            return None
        host, port_text = text[:colon], text[colon + 1 :]
    port = _atoi(port_text)
    if port is None or not 1 <= port <= 65535:
        return None
    ip = parse_addr(host)
    return None if ip is None else NginxAddr(ip, port)


def format_ipv6(ip: IPv6Address) -> str:
    """``ngx_inet6_ntop``: how nginx prints an IPv6 address (``$remote_addr``).

    Like ``inet_ntop`` (longest run of two or more zero groups becomes ``::``, first run on ties,
    lower-case hex) but it prints a dotted IPv4 tail for ``::ffff:a.b.c.d``, ``::a.b.c.d`` (six
    leading zero groups) and — unlike ``inet_ntop`` — for seven leading zero groups when the last
    group is not ``0x00nn``-with-``nn``≠… precisely when its high byte is not 0 and its low byte is
    not 1 (``::0.0.1.2`` for ``::102``).
    """
    p = ip.packed
    zero = last = -1
    best = 1
    run = 0
    for i in range(0, 16, 2):
        if p[i] or p[i + 1]:
            if best < run:
                zero, best = last, run
            run = 0
            continue
        if run == 0:
            last = i
        run += 1
    if best < run:
        zero, best = last, run
    out = ""
    n = 16
    if zero == 0:
        if ((best == 5 and p[10] == 0xFF and p[11] == 0xFF) or best == 6
                or (best == 7 and p[14] != 0 and p[15] != 1)):
            n = 12
        out += ":"
    i = 0
    while i < n:
        if i == zero:
            out += ":"
            i += best * 2
            continue
        out += f"{p[i] * 256 + p[i + 1]:x}"
        if i < 14:
            out += ":"
        i += 2
    if n == 12:
        out += f"{p[12]}.{p[13]}.{p[14]}.{p[15]}"
    return out


def format_addr(ip: IPv4Address | IPv6Address) -> str:
    """How nginx prints an address without a port (``ngx_sock_ntop``)."""
    return str(ip) if isinstance(ip, IPv4Address) else format_ipv6(ip)


def _getaddrinfo_numeric(text: str) -> NginxCIDR | None:
    """What nginx's host-name fallback (``getaddrinfo``) makes of a *numeric* value that
    ``ngx_ptocidr`` refused: IPv4 in ``inet_aton`` form (``127.1``, ``0x7f.0.0.1``,
    ``2130706433``, ``255.255.255.255``) and IPv6 with a zone (``fe80::1%lo``, zone dropped)."""
    v4 = inet_aton(text)  # the BSD inet_aton grammar: 1-4 parts, 0x hex, 0 octal
    if v4 is not None:
        return NginxCIDR(4, v4, 0xFFFFFFFF, text)
    host, pct, zone = text.partition("%")
    v6 = ipv6_int(host) if pct and zone else None
    if v6 is not None:
        return NginxCIDR(6, v6, (1 << 128) - 1, text)
    return None


class NginxCIDR(NamedTuple):
    """One ``set_real_ip_from`` entry after ``ngx_ptocidr``: family ``4``, ``6`` or ``"unix"``,
    network and mask as ints, and the text it came from."""

    family: int | str
    network: int
    mask: int
    text: str


def ptocidr(text: str) -> tuple[NginxCIDR, str | None]:
    """Parse one ``set_real_ip_from`` value like nginx; returns the entry and a warning (nginx's
    "low address bits of … are meaningless", then masks them off) or None.

    ``unix:`` trusts every UNIX-socket peer.  A value that is neither an address nor a CIDR would be
    resolved as a host name when nginx loads its configuration; that needs DNS, which a sans-IO
    model cannot do, so it raises :class:`~realip.ConfigurationError` naming the entry.
    """
    if text == "unix:":
        return NginxCIDR("unix", 0, 0, text), None
    raw = text.encode("ascii", "replace")
    addr_text, slash, mask_text = raw.partition(b"/")
    v4 = inet_addr(addr_text)
    family: int
    if v4 is not None:
        family, value, bits = 4, v4, 32
    else:
        v6 = inet6_addr(addr_text)
        if v6 is None:
            if not slash:
                numeric = _getaddrinfo_numeric(text)
                if numeric is not None:
                    return numeric, None
            raise ConfigurationError(
                f"set_real_ip_from {text!r}: not an address or CIDR (nginx would try to resolve it"
                " as a host name at start-up; give the addresses instead)")
        family, value, bits = 6, v6, 128
    if not slash:
        return NginxCIDR(family, value, (1 << bits) - 1, text), None
    shift = _atoi(mask_text)
    if shift is None or shift > bits:
        raise ConfigurationError(f"set_real_ip_from {text!r}: invalid prefix length")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - shift)) - 1)
    warning = None
    if value & mask != value:
        warning = f'low address bits of {text} are meaningless'
        value &= mask
    return NginxCIDR(family, value, mask, text), warning
