"""What HAProxy does with forwarded headers: ``option forwardfor``, ``http-request
set-header``, ``hdr_ip()``."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from ..._addr import format_ip
from ..._headers import Headers
from ...forwarded import (
    header_lines,
    parse_node,
)
from ...trust import Trust

IP = IPv4Address | IPv6Address


# ==============================================================================================
# HAProxy


def haproxy_forwardfor(
    headers: Headers,
    src: str,
    *,
    except_: str | None = None,
    if_none: bool = False,
    header: str = "X-Forwarded-For",
) -> list[tuple[str, str]]:
    """``option forwardfor [except <net>] [header <name>] [if-none]``: HAProxy appends a **new**
    header line carrying the client's address (no port); it never edits or removes the lines the
    client sent.  ``except`` skips it for sources in that network; ``if-none`` only when the header
    is already present."""
    out = list(headers)
    try:
        ip = ip_address(src)
    except ValueError:
        return out  # a UNIX-socket source adds nothing
    if except_ is not None and Trust([except_])(ip):
        return out
    if if_none and header_lines(out, header):
        return out
    out.append((header, format_ip(ip)))
    return out


def haproxy_set_header(headers: Headers, name: str, value: str) -> list[tuple[str, str]]:
    """``http-request set-header <name> <value>``: every line of *name* is replaced by one."""
    key = name.lower()
    return [(k, v) for k, v in headers if k.lower() != key] + [(name, value)]


def haproxy_hdr_ip(headers: Headers, name: str = "X-Forwarded-For", occ: int = -1) -> str | None:
    """``req.hdr_ip(<name>,<occ>)``: the *occ*-th value (negative counts from the last) of the
    comma-separated list over all lines, as an IP; an IPv4 value may carry ``:port`` (dropped).
    None when that value is not an address."""
    values = [v.strip(" \t") for line in header_lines(headers, name) for v in line.split(",")]
    if not values or occ == 0 or abs(occ) > len(values):
        return None
    text = values[occ] if occ < 0 else values[occ - 1]
    node = parse_node(text)
    if node is None or node.ip is None:
        return None
    if isinstance(node.ip, IPv6Address) and text.startswith("["):
        return None  # hdr_ip reads bare IPv6 only
    return format_ip(node.ip)


