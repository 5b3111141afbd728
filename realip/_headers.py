"""Header-walk helpers every resolver shares: element spans for drawing, and the peer argument."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from .decisions import Entry
from .errors import ConfigurationError

__all__ = ["Headers", "entries_of", "index_of", "parse_peer", "split_spans"]

Headers = Sequence[tuple[str, str]]
IP = IPv4Address | IPv6Address


def split_spans(line: str, seps: str) -> list[tuple[int, int]]:
    spans = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in seps:
            i += 1
        j = i
        while j < n and line[j] not in seps:
            j += 1
        if j > i:
            spans.append((i, j))
        i = j
    return spans


def entries_of(lines: Sequence[str], seps: str) -> tuple[Entry, ...]:
    return tuple(Entry(li, s, e, line[s:e]) for li, line in enumerate(lines)
                 for s, e in split_spans(line, seps))


def index_of(entries: Sequence[Entry], line: int, end: int) -> int | None:
    for k, e in enumerate(entries):
        if e.line == line and e.start < end <= e.end:
            return k
    return None


def parse_peer(peer: str) -> IP | str:
    if peer.startswith("unix:"):
        return peer
    try:
        return ip_address(peer)
    except ValueError:
        raise ConfigurationError(f"peer must be an IP address or 'unix:…', not {peer!r}") from None
