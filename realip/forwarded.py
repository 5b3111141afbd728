"""Parsing the headers that carry a client's address: X-Forwarded-For, X-Real-IP, RFC 7239
``Forwarded``, X-Forwarded-Port — sans-IO, never raising on peer data.

These are realip's own, strict grammars (used by the safe resolver).  The systems realip reproduces
read the same headers with their own grammars: see :mod:`realip.nginx` and :mod:`realip.erlang`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from ._addr import ipv4_from_int, ipv4_int, ipv6_from_int, ipv6_int

__all__ = [
    "ForwardedElement",
    "Node",
    "header_lines",
    "join_lines",
    "parse_forwarded",
    "parse_node",
    "parse_ports",
    "split_list",
]

Headers = Iterable[tuple[str, str]]


def header_lines(headers: Headers, name: str) -> list[str]:
    """Every value of header *name* (case-insensitive), in arrival order."""
    key = name.lower()
    return [v for k, v in headers if k.lower() == key]


def join_lines(lines: Sequence[str]) -> str:
    """Several lines of a list-valued header are one list, joined with ``", "`` (RFC 9110 §5.3)."""
    return ", ".join(lines)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header list, trimming optional whitespace around each element."""
    return [part.strip(" \t") for part in value.split(",")]


class Node(NamedTuple):
    """One hop of a forwarding chain: ``ip`` (None for ``unknown`` or an obfuscated identifier),
    ``port`` (None if absent or obfuscated), and the text as written."""

    ip: IPv4Address | IPv6Address | None
    port: int | None
    text: str
    obfuscated: bool = False


def _port(text: str) -> int | None:
    if not text or len(text) > 5 or not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if value <= 65535 else None


def parse_node(text: str, *, forwarded: bool = False) -> Node | None:
    """Parse an address as a hop writes it: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``,
    ``[2001:db8::1]:443`` (and, with *forwarded*, RFC 7239's ``unknown``, ``_hidden`` and
    ``[v6]``/``"[v6]:port"`` forms).  Returns None when the text is not one of them.

    IPv4 must be strict dotted decimal; IPv6 must not carry a zone id; ports are 0..65535.
    """
    if forwarded:
        if text == "unknown":
            return Node(None, None, text)
        if text.startswith("_") and _is_obfuscated(text[1:]):
            return Node(None, None, text, True)
    v4 = ipv4_int(text)
    if v4 is not None:
        return Node(ipv4_from_int(v4), None, text)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        v6 = ipv6_int(text[1:close])
        if v6 is None:
            return None
        rest = text[close + 1 :]
        if not rest:
            return Node(ipv6_from_int(v6), None, text)
        if not rest.startswith(":"):
            return None
        port_text = rest[1:]
        if forwarded and port_text.startswith("_") and _is_obfuscated(port_text[1:]):
            return Node(ipv6_from_int(v6), None, text, True)
        port = _port(port_text)
        return None if port is None else Node(ipv6_from_int(v6), port, text)
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        v4 = ipv4_int(host)
        if v4 is None:
            return None
        if forwarded and port_text.startswith("_") and _is_obfuscated(port_text[1:]):
            return Node(ipv4_from_int(v4), None, text, True)
        port = _port(port_text)
        return None if port is None else Node(ipv4_from_int(v4), port, text)
    if forwarded:
        return None  # RFC 7239 requires brackets around IPv6
    v6 = ipv6_int(text)
    return None if v6 is None else Node(ipv6_from_int(v6), None, text)


def _is_obfuscated(rest: str) -> bool:
    return bool(rest) and all(c.isascii() and (c.isalnum() or c in "._-") for c in rest)


class ForwardedElement(NamedTuple):
    """One comma-separated element of a ``Forwarded`` header: its parameters, lower-cased names
    mapping to unquoted values, and the raw text."""

    params: dict[str, str]
    text: str

    @property
    def for_(self) -> str | None:
        """The ``for=`` value (the client or previous hop)."""
        return self.params.get("for")

    @property
    def by(self) -> str | None:
        """The ``by=`` value (the interface the request came in on)."""
        return self.params.get("by")

    @property
    def proto(self) -> str | None:
        """The ``proto=`` value."""
        return self.params.get("proto")

    @property
    def host(self) -> str | None:
        """The ``host=`` value."""
        return self.params.get("host")


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class ForwardedSyntaxError(ValueError):
    """A ``Forwarded`` header that does not follow RFC 7239's grammar (position and reason)."""


def parse_forwarded(value: str) -> list[ForwardedElement]:
    """Parse an RFC 7239 ``Forwarded`` value (several lines joined with ``", "``) into elements.

    Grammar: elements separated by ``,``; each a ``;``-separated list of ``name=value`` pairs
    where the value is a token or a quoted string (with ``\\`` escapes); names are
    case-insensitive and may appear once per element.  Raises :class:`ForwardedSyntaxError` on
    anything else — callers decide whether that fails closed.
    """
    elements: list[ForwardedElement] = []
    i, n = 0, len(value)
    while True:
        start = i
        params: dict[str, str] = {}
        while True:
            while i < n and value[i] in " \t":
                i += 1
            j = i
            while j < n and value[j] in _TCHAR and value[j] != "=":
                j += 1
            name = value[i:j].lower()
            if not name:
                if j >= n and not params and not elements and not value.strip(" \t"):
                    return []
                raise ForwardedSyntaxError(f"expected a parameter name at {j}: {value[j:j+20]!r}")
            if j >= n or value[j] != "=":
                raise ForwardedSyntaxError(f"expected '=' after {name!r} at {j}")
            j += 1
            if j < n and value[j] == '"':
                j += 1
                chars: list[str] = []
                while True:
                    if j >= n:
                        raise ForwardedSyntaxError("unterminated quoted string")
                    c = value[j]
                    if c == "\\":
                        if j + 1 >= n:
                            raise ForwardedSyntaxError("backslash at the end of the value")
                        chars.append(value[j + 1])
                        j += 2
                        continue
                    if c == '"':
                        j += 1
                        break
                    chars.append(c)
                    j += 1
                pvalue = "".join(chars)
            else:
                k = j
                while k < n and value[k] in _TCHAR:
                    k += 1
                if k == j:
                    raise ForwardedSyntaxError(f"empty value for {name!r} at {j}")
                pvalue = value[j:k]
                j = k
            if name in params:
                raise ForwardedSyntaxError(f"parameter {name!r} twice in one element")
            params[name] = pvalue
            i = j
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == ";":
                i += 1
                continue
            break
        elements.append(ForwardedElement(params, value[start:i].strip(" \t")))
        if i >= n:
            return elements
        if value[i] != ",":
            raise ForwardedSyntaxError(f"expected ',' or ';' at {i}: {value[i:i+20]!r}")
        i += 1


def parse_ports(value: str) -> list[int | None]:
    """An ``X-Forwarded-Port`` list: each element a port 0..65535, or None where it is empty or
    not a port (``", 51234"`` — the article's method 2 — gives ``[None, 51234]``)."""
    return [_port(p) for p in split_list(value)]
