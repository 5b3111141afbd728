"""Which peers are trusted proxies: one predicate compiled once (the proxy-addr model).

``Trust(["10.0.0.0/8", "loopback", "unix:"], hops=2)`` compiles its entries when it is built — a
bad entry raises :class:`~realip.ConfigurationError` naming it, then and not while serving — and
answers ``trust(addr)`` / ``trust.rule_for(addr)`` quickly afterwards.  IPv4-mapped IPv6 addresses
(``::ffff:10.0.0.1``) are matched against the IPv4 entries, as nginx and proxy-addr do.

Presets are explicit CIDR lists, never :attr:`ipaddress.IPv4Address.is_private` (which also covers
the documentation ranges that examples use as "public" clients).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import NamedTuple

from .errors import ConfigurationError

__all__ = ["PRESETS", "Rule", "Trust", "as_ip"]

#: Named groups of networks (as in proxy-addr), spelled out.
PRESETS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "linklocal": ("169.254.0.0/16", "fe80::/10"),
    "uniquelocal": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    # RFC 6598 shared address space, used by carrier-grade NAT and some cloud load balancers.
    "cgnat": ("100.64.0.0/10",),
}
PRESETS["private"] = PRESETS["loopback"] + PRESETS["linklocal"] + PRESETS["uniquelocal"]

IP = IPv4Address | IPv6Address


class Rule(NamedTuple):
    """One compiled entry: family (4, 6 or ``"unix"``), network and mask as ints, and the text
    (with the preset it came from, if any) that a trace quotes."""

    family: int | str
    network: int
    mask: int
    text: str


def as_ip(addr: IP | str) -> IP | str:
    """An ``ipaddress`` object for *addr*; ``"unix:…"`` peers stay strings."""
    if isinstance(addr, (IPv4Address, IPv6Address)):
        return addr
    if addr.startswith("unix:"):
        return addr
    try:
        return ip_address(addr)
    except ValueError:
        raise ConfigurationError(f"not an IP address: {addr!r}") from None


def _compile(entry: str, origin: str) -> Rule:
    if entry == "unix:":
        return Rule("unix", 0, 0, origin)
    try:
        net = ip_network(entry, strict=True)
    except ValueError as exc:
        raise ConfigurationError(f"trusted proxy entry {origin!r}: {exc}") from None
    bits = net.max_prefixlen
    mask = ((1 << bits) - 1) ^ ((1 << (bits - net.prefixlen)) - 1)
    return Rule(net.version, int(net.network_address), mask, origin)


class Trust:
    """A compiled trust predicate over CIDRs, single addresses, ``unix:`` and named presets,
    optionally combined with a hop count.

    ``trust(addr)`` is True when *addr* matches an entry.  With *hops*, ``trust(addr, index)``
    (``index`` counting hops from the socket peer, 0 = the peer itself) is True while
    ``index < hops`` — and when entries are given too, both must hold.
    """

    __slots__ = ("_unix", "_v4", "_v6", "hops", "rules")

    def __init__(self, entries: Iterable[str] | str = (), *, hops: int | None = None) -> None:
        if isinstance(entries, str):
            entries = [e.strip() for e in entries.split(",") if e.strip()]
        rules: list[Rule] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ConfigurationError(f"trusted proxy entry must be a string, not {entry!r}")
            if entry in PRESETS:
                rules += [_compile(e, f"{e} ({entry})") for e in PRESETS[entry]]
            else:
                rules.append(_compile(entry, entry))
        if hops is not None and (not isinstance(hops, int) or hops < 0):
            raise ConfigurationError(f"hops must be a non-negative int, not {hops!r}")
        self.rules = tuple(rules)
        self.hops = hops
        self._v4 = tuple((r.network, r.mask, r.text) for r in rules if r.family == 4)
        self._v6 = tuple((r.network, r.mask, r.text) for r in rules if r.family == 6)
        self._unix = next((r.text for r in rules if r.family == "unix"), None)

    @property
    def ipv4_ranges(self) -> tuple[tuple[int, int], ...]:
        """The IPv4 entries as ``(network, mask)`` integers: *value* matches one when
        ``value & mask == network`` (for callers that compile their own fast test)."""
        return tuple((net, mask) for net, mask, _ in self._v4)

    def __repr__(self) -> str:
        hops = "" if self.hops is None else f", hops={self.hops}"
        return f"Trust({[r.text for r in self.rules]!r}{hops})"

    def rule_for(self, addr: IP | str) -> str | None:
        """The text of the first entry *addr* matches, or None."""
        if isinstance(addr, str):
            if addr.startswith("unix:"):
                return self._unix
            addr = as_ip(addr)
        if isinstance(addr, IPv6Address):
            mapped = addr.ipv4_mapped
            if mapped is None:
                value = int(addr)
                for net, mask, text in self._v6:
                    if value & mask == net:
                        return text
                return None
            addr = mapped
        value = int(addr)
        for net, mask, text in self._v4:
            if value & mask == net:
                return text
        return None

    def __call__(self, addr: IP | str, index: int | None = None) -> bool:
        if self.hops is not None and index is not None and index >= self.hops:
            return False
        if not self.rules:
            return self.hops is not None and index is not None
        return self.rule_for(addr) is not None
