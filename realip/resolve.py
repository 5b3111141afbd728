"""Which address does each system believe is the client?  One function per system, each
reproducing it exactly, each result carrying a step-by-step trace (sans-IO).

* :func:`nginx_realip` — nginx's ``ngx_http_realip_module`` (``set_real_ip_from``,
  ``real_ip_header``, ``real_ip_recursive``) and the variables it sets.
* :func:`emqx_ws_peer` — EMQX's WebSocket listener (``proxy_address_header`` /
  ``proxy_port_header``; 6.4's ``proxy_address_allow``).
* :func:`haproxy_forwardfor`, :func:`haproxy_set_header`, :func:`haproxy_hdr_ip` — what HAProxy
  adds, replaces and reads.
* :func:`client_ip` — realip's own safe resolver, the one to use in your code.
* :func:`werkzeug_proxy_fix`, :func:`uvicorn_proxy_headers`, :func:`ipware_leftmost`,
  :func:`express_trust_proxy` — what popular libraries do, each with its known weakness.

The trace (:class:`Step` per examined entry) is complete enough to draw the right-to-left walk
without re-implementing any of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Any, NamedTuple

from . import erlang
from . import nginx as ngx
from ._addr import format_ip
from .decisions import Entry, Resolution, Step
from .errors import ConfigurationError
from .forwarded import (
    ForwardedSyntaxError,
    Node,
    header_lines,
    parse_forwarded,
    parse_node,
    parse_ports,
)
from .trust import Trust

__all__ = [
    "ClientIP",
    "Entry",
    "ProxyProtocolInfo",
    "Resolution",
    "Step",
    "client_ip",
    "emqx_ws_peer",
    "express_trust_proxy",
    "haproxy_forwardfor",
    "haproxy_hdr_ip",
    "haproxy_set_header",
    "ipware_leftmost",
    "nginx_interpolate",
    "nginx_realip",
    "uvicorn_proxy_headers",
    "werkzeug_proxy_fix",
]

Headers = Sequence[tuple[str, str]]
IP = IPv4Address | IPv6Address
_EMPTY: Mapping[str, str] = MappingProxyType({})


class ProxyProtocolInfo(NamedTuple):
    """What an nginx listener with ``proxy_protocol`` learnt from the header (its variables
    ``$proxy_protocol_addr`` …): address texts as received, ports as ints."""

    addr: str
    port: int
    server_addr: str = ""
    server_port: int = 0

    @classmethod
    def from_header(cls, header: Any) -> ProxyProtocolInfo | None:
        """From a decoded :class:`~realip.proxy_protocol.ProxyHeader` (None for LOCAL/UNKNOWN)."""
        src, dst = header.source, header.destination
        if src is None or dst is None or isinstance(src.host, str):
            return None
        if header.version == 1 and header.v1_text is not None:
            s_text, d_text = header.v1_text
        else:
            s_text, d_text = ngx.format_addr(src.host), ngx.format_addr(dst.host)
        return cls(s_text, src.port, d_text, dst.port)


def _split_spans(line: str, seps: str) -> list[tuple[int, int]]:
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


def _entries(lines: Sequence[str], seps: str) -> tuple[Entry, ...]:
    return tuple(Entry(li, s, e, line[s:e]) for li, line in enumerate(lines)
                 for s, e in _split_spans(line, seps))


def _index_of(entries: Sequence[Entry], line: int, end: int) -> int | None:
    for k, e in enumerate(entries):
        if e.line == line and e.start < end <= e.end:
            return k
    return None


# ==============================================================================================
# nginx


@lru_cache(maxsize=256)
def _nginx_trust(entries: tuple[str, ...]) -> tuple[tuple[ngx.NginxCIDR, ...], tuple[str, ...]]:
    cidrs, warnings = [], []
    for e in entries:
        cidr, warning = ngx.ptocidr(e)
        cidrs.append(cidr)
        if warning:
            warnings.append(warning)
    return tuple(cidrs), tuple(warnings)


def _nginx_match(cidrs: Sequence[ngx.NginxCIDR], ip: IP | str) -> str | None:
    """``ngx_cidr_match``: v4-mapped addresses are compared with IPv4 entries only."""
    if isinstance(ip, str):
        return next((c.text for c in cidrs if c.family == "unix"), None)
    family, value = (4, int(ip)) if isinstance(ip, IPv4Address) else (6, int(ip))
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        family, value = 4, int(ip.ipv4_mapped)
    for c in cidrs:
        if c.family == family and value & c.mask == c.network:
            return c.text
    return None


def _peer(peer: str) -> IP | str:
    if peer.startswith("unix:"):
        return peer
    try:
        return ip_address(peer)
    except ValueError:
        raise ConfigurationError(f"peer must be an IP address or 'unix:…', not {peer!r}") from None


def _ngx_text(ip: IP | str) -> str:
    return ip if isinstance(ip, str) else ngx.format_addr(ip)


_NGX_NAME = re.compile(r"[A-Za-z0-9-]+")
_NGX_NAME_US = re.compile(r"[A-Za-z0-9_-]+")
_NGX_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def nginx_interpolate(template: str, variables: Mapping[str, str]) -> str:
    """Expand ``$name`` / ``${name}`` in an nginx directive value (``proxy_set_header``); an
    unknown or empty variable expands to the empty string, as nginx does for ``$http_*``."""
    return _NGX_VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), template)


class _NginxVariables(Mapping[str, str]):
    """nginx's variables for one request: fixed ones plus ``$http_<name>`` on demand."""

    def __init__(self, fixed: dict[str, str], headers: Headers, version: tuple[int, int, int]):
        self._fixed = fixed
        self._headers = headers
        self._version = version

    def __getitem__(self, key: str) -> str:
        if key in self._fixed:
            return self._fixed[key]
        if key.startswith("http_"):
            name = key[5:].replace("_", "-")
            lines = header_lines(self._headers, name)
            if not lines:
                raise KeyError(key)
            # 1.22: X-Forwarded-For (and Cookie) are joined, other headers give their first line;
            # from 1.23.0 every repeated header is joined with ", " (Cookie with "; ").
            if name == "cookie":
                return "; ".join(lines)
            if name == "x-forwarded-for" or self._version >= (1, 23, 0):
                return ", ".join(lines)
            return lines[0]
        raise KeyError(key)

    def __iter__(self) -> Any:
        names = {f"http_{k.lower().replace('-', '_')}" for k, _ in self._headers}
        return iter([*self._fixed, *sorted(names)])

    def __len__(self) -> int:
        return len(list(iter(self)))


def nginx_realip(
    peer: str,
    headers: Headers,
    *,
    set_real_ip_from: Sequence[str],
    real_ip_header: str = "X-Real-IP",
    recursive: bool = False,
    peer_port: int | None = None,
    proxy_protocol: ProxyProtocolInfo | None = None,
    version: str | tuple[int, ...] | None = None,
    underscores_in_headers: bool = False,
) -> Resolution:
    """What nginx's realip module makes of a request (``ngx_http_realip_handler``).

    *peer* is the TCP peer (``"unix:"`` for a UNIX socket), *headers* the request's header lines
    in arrival order (values as nginx stores them: surrounding spaces removed).  The three
    keywords of ``real_ip_header`` — ``X-Real-IP``, ``X-Forwarded-For``, ``proxy_protocol`` — are
    matched case-sensitively; any other value (``x-forwarded-for`` too) names a header whose
    **first** line is used.  *proxy_protocol* carries the listener's PROXY header (for
    ``real_ip_header proxy_protocol`` and the ``$proxy_protocol_*`` variables).  *version* picks
    the nginx release (default 1.22.1): ``[v6]`` without a port is a valid entry from 1.27.3.

    ``addr`` is ``$remote_addr`` exactly as nginx prints it, ``port`` is ``$remote_port`` as an
    int (None where nginx prints an empty string), and ``variables`` has the rest.  ``code`` is
    nginx's: ``OK``/``DONE`` (address replaced) or ``DECLINED`` (peer kept).

    Header lines whose names nginx considers invalid (anything but letters, digits and ``-``;
    ``_`` too unless *underscores_in_headers*) are dropped first, as ``ignore_invalid_headers``
    (on by default) does.
    """
    ver = ngx.parse_version(version)
    cidrs, warnings = _nginx_trust(tuple(set_real_ip_from))
    peer_ip = _peer(peer)
    valid = _NGX_NAME_US if underscores_in_headers else _NGX_NAME
    headers = [(k, v.strip(" ")) for k, v in headers if valid.fullmatch(k)]
    trace: list[Step] = []
    entries: tuple[Entry, ...] = ()
    lines: list[str] = []
    code = "DECLINED"
    reason = ""
    result: ngx.NginxAddr | None = None
    header_name = real_ip_header

    if not cidrs:
        reason = "no set_real_ip_from applies here: the realip module does nothing"
    else:
        if real_ip_header == "X-Forwarded-For":
            lines = header_lines(headers, "x-forwarded-for")
            multi = True
        elif real_ip_header == "proxy_protocol":
            lines = [proxy_protocol.addr] if proxy_protocol is not None else []
            multi = False
            header_name = "PROXY protocol source address"
        else:
            found = header_lines(headers, "x-real-ip" if real_ip_header == "X-Real-IP"
                                 else real_ip_header)
            lines = found[:1]
            multi = False
        if not lines:
            reason = ("the connection carried no PROXY protocol address"
                      if real_ip_header == "proxy_protocol"
                      else f"no {header_name} header in the request")
        else:
            entries = _entries(lines, " ,")
            code, result, reason = _nginx_walk(peer_ip, lines, multi, cidrs, recursive, ver,
                                               entries, trace)

    changed = code != "DECLINED" and result is not None
    if changed:
        assert result is not None
        addr_ip: IP | str = result.ip
        port = result.port
        if real_ip_header == "proxy_protocol" and proxy_protocol is not None:
            port = proxy_protocol.port
        out_port = port if 0 < port < 65536 else None
    else:
        addr_ip = peer_ip
        out_port = peer_port if peer_port and 0 < peer_port < 65536 else None
    addr_text = _ngx_text(addr_ip)
    xff_lines = header_lines(headers, "x-forwarded-for")
    paxff = "".join(v + ", " for v in xff_lines) + addr_text
    peer_text = _ngx_text(peer_ip)
    peer_port_text = str(peer_port) if peer_port and 0 < peer_port < 65536 else ""
    fixed = {
        "remote_addr": addr_text,
        "remote_port": "" if out_port is None else str(out_port),
        "realip_remote_addr": peer_text,
        "realip_remote_port": peer_port_text,
        "binary_remote_addr": "",
        "proxy_add_x_forwarded_for": paxff,
    }
    if proxy_protocol is not None:
        fixed.update(
            proxy_protocol_addr=proxy_protocol.addr,
            proxy_protocol_port=str(proxy_protocol.port) if 0 < proxy_protocol.port < 65536
            else "",
            proxy_protocol_server_addr=proxy_protocol.server_addr,
            proxy_protocol_server_port=str(proxy_protocol.server_port)
            if 0 < proxy_protocol.server_port < 65536 else "",
        )
    del fixed["binary_remote_addr"]
    return Resolution(
        addr=addr_text, port=out_port, mode="nginx", used_header=changed, code=code,
        reason=reason, trace=tuple(trace), entries=entries, header=header_name,
        realip_remote_addr=peer_text, realip_remote_port=peer_port if peer_port_text else None,
        proxy_add_x_forwarded_for=paxff, variables=_NginxVariables(fixed, headers, ver),
        warnings=warnings,
    )


def _nginx_walk(
    peer: IP | str, lines: list[str], multi: bool, cidrs: Sequence[ngx.NginxCIDR],
    recursive: bool, ver: tuple[int, int, int], entries: Sequence[Entry], trace: list[Step],
) -> tuple[str, ngx.NginxAddr | None, str]:
    """``ngx_http_get_forwarded_addr``: header lines from the last to the first."""
    # The address whose trust is checked next, and the trace step it came from (None = peer).
    state: dict[str, Any] = {"addr": peer, "step": None, "last": None}
    if not multi:
        rc, reason = _nginx_line(state, lines[0], 0, cidrs, recursive, ver, entries, trace)
        return rc, state["last"], reason
    rc, reason, found = "DECLINED", "", False
    for li in range(len(lines) - 1, -1, -1):
        rc, reason = _nginx_line(state, lines[li], li, cidrs, recursive, ver, entries, trace)
        if not recursive:
            if len(lines) > 1:
                reason += (f" (real_ip_recursive off: only the last of the {len(lines)}"
                           " X-Forwarded-For lines is read)")
            break
        if rc == "DECLINED" and found:
            rc = "DONE"
            break
        if rc != "OK":
            break
        found = True
    return rc, state["last"], reason


def _check(state: dict[str, Any], cidrs: Sequence[ngx.NginxCIDR], trace: list[Step]) -> str | None:
    """Trust check of the current address; completes the step that produced it."""
    addr = state["addr"]
    rule = _nginx_match(cidrs, addr.ip if isinstance(addr, ngx.NginxAddr) else addr)
    k = state["step"]
    if k is None:
        text = _ngx_text(addr)
        if rule is not None:
            why = f"the TCP peer {text} is trusted (set_real_ip_from {rule}): read the header"
            trace.append(Step(None, text, text, None, None, True, rule, "peer", why))
        else:
            why = (f"the TCP peer {text} is not in set_real_ip_from: the header is ignored and "
                   f"{text} stays the client")
            trace.append(Step(None, text, text, None, None, False, None, "peer", why))
    else:
        s = trace[k]
        if rule is not None:
            why = f"{s.address} is trusted (set_real_ip_from {rule}): keep walking left"
            trace[k] = s._replace(trusted=True, rule=rule, verdict="skip", why=why)
        else:
            why = f"{s.address} is not trusted: it is the client"
            trace[k] = s._replace(trusted=False, verdict="client", why=why)
    return rule


def _nginx_line(
    state: dict[str, Any], line: str, li: int, cidrs: Sequence[ngx.NginxCIDR], recursive: bool,
    ver: tuple[int, int, int], entries: Sequence[Entry], trace: list[Step],
) -> tuple[str, str]:
    """``ngx_http_get_forwarded_addr_internal`` on one header line, right to left."""
    buf = line.encode("latin-1", "replace")
    found = False
    xfflen = len(buf)
    while True:
        if _check(state, cidrs, trace) is None:
            if found:
                return "DONE", f"{_ngx_text(state['last'].ip)} is the first untrusted address"
            if state["step"] is None:
                return "DECLINED", "the peer is not a trusted proxy"
            return "DONE", f"{trace[state['step']].address} is the first untrusted address"
        # Trailing separators are skipped; byte 0 is never examined (nginx's loops stop at it).
        p = xfflen - 1
        while p > 0 and buf[p] in b" ,":
            p -= 1
            xfflen -= 1
        while p > 0:
            if buf[p] in b" ,":
                p += 1
                break
            p -= 1
        if xfflen <= 0:
            token, start, end = b"", 0, 0
        else:
            start, end = max(p, 0), xfflen
            token = buf[start:end]
        text = token.decode("latin-1")
        parsed = ngx.parse_addr_port(token, ver) if token else None
        idx = _index_of(entries, li, end) if end else None
        if parsed is None:
            err = "empty value" if not token else "not an address nginx can parse"
            if state["step"] is not None:
                why = (f"{text!r} cannot be parsed: the walk stops and the last good address,"
                       f" {_ngx_text(state['last'].ip)}, is kept")
            else:
                why = f"{text!r} cannot be parsed: the header is ignored, the peer is kept"
            trace.append(Step(idx, text, None, None, err, None, None, "unparsable", why,
                              li, start, end))
            # DECLINED when nothing was parsed on this line; the caller turns that into DONE
            # when a later-received line had already produced an address.
            return ("DONE" if found else "DECLINED"), why
        found = True
        addr_text = ngx.format_addr(parsed.ip)
        state["addr"] = parsed
        state["last"] = parsed
        port = parsed.port or None
        if not recursive:
            why = (f"real_ip_recursive off: the rightmost entry, {addr_text}, is used without a"
                   " trust check")
            trace.append(Step(idx, text, addr_text, port, None, None, None, "rightmost", why,
                              li, start, end))
            return "OK", why
        trace.append(Step(idx, text, addr_text, port, None, None, None, "parsed", "", li,
                          start, end))
        state["step"] = len(trace) - 1
        xfflen = p - 1
        if p <= 0:
            break
    # The leftmost entry of this line was reached with everything to its right trusted.
    k = state["step"]
    s = trace[k]
    if li == 0:
        why = (f"{s.address} is the leftmost entry and everything to its right was trusted: it"
               " is used without a trust check")
        trace[k] = s._replace(verdict="leftmost", why=why)
    return "OK", why if li == 0 else "line consumed"


# ==============================================================================================
# EMQX


def _cowboy_header(headers: Headers, name: str) -> str:
    # cowboy lower-cases names and joins repeated lines with ", "
    if not name:
        return ""
    return ", ".join(header_lines(headers, name))


def _erl_tokens(value: str) -> list[tuple[int, int]]:
    # string:tokens(V, ", "): split on either character, drop empty tokens
    return _split_spans(value, ", ")


def _erl_port(text: str) -> int | None:
    # list_to_integer/1: optional sign, decimal digits, any size
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    return int(text)


def emqx_ws_peer(
    peer: str,
    peer_port: int,
    headers: Headers,
    *,
    proxy_address_header: str = "x-forwarded-for",
    proxy_port_header: str = "x-forwarded-port",
    proxy_address_allow: Sequence[str] | None = None,
    proxy_protocol: Any = None,
) -> Resolution:
    """The peername EMQX's WebSocket listener records (``emqx_ws_connection:get_peer_info``).

    Without *proxy_address_allow* (EMQX 5.x – 6.2, and 6.3 with its empty default header names):
    the **leftmost** token of the address header (tokens split on ``,`` or space) is parsed with
    Erlang's ``inet:parse_address`` — no trust check at all; an absent or unparsable value gives
    the TCP peer.  The port comes independently from the leftmost token of the port header
    (``list_to_integer``: no range check), else the TCP peer's port.

    With *proxy_address_allow* (6.4): headers count only when the TCP peer is in the list; the
    tokens are walked right to left skipping listed addresses; the first unlisted one wins, the
    leftmost if all are listed, and **any unparsable token gives the TCP peer**.

    *proxy_protocol* (a decoded ``ProxyHeader``) wins over the headers when it carries a source.
    """
    peer_ip = _peer(peer)
    if isinstance(peer_ip, str):
        raise ConfigurationError("EMQX WebSocket peers are TCP peers")
    trace: list[Step] = []
    peer_text = erlang.ntoa(peer_ip)
    if proxy_protocol is not None and getattr(proxy_protocol, "source", None) is not None \
            and not isinstance(proxy_protocol.source.host, str):
        src = proxy_protocol.source
        text = erlang.ntoa(src.host)
        why = "proxy_protocol is on and the PROXY header carried a source: headers are ignored"
        trace.append(Step(None, str(src), text, src.port, None, None, None, "proxy_protocol", why))
        return Resolution(text, src.port, "emqx-ws", False, "proxy_protocol", why, tuple(trace))
    value = _cowboy_header(headers, proxy_address_header)
    spans = _erl_tokens(value)
    entries = tuple(Entry(0, s, e, value[s:e]) for s, e in spans)
    addr: IP = peer_ip
    used = False
    if proxy_address_allow is None:
        trace.append(Step(None, peer_text, peer_text, peer_port, None, None, None, "peer",
                          "EMQX checks no trusted proxies: the header is read whoever sent it"))
        if not proxy_address_header:
            reason = "proxy_address_header is empty: headers are ignored"
        elif not spans:
            reason = f"no {proxy_address_header} value: the TCP peer is used"
        else:
            s, e = spans[0]
            tok = value[s:e]
            parsed = erlang.parse_address(tok)
            if parsed is None:
                reason = f"leftmost token {tok!r} is not an address: the TCP peer is used"
                trace.append(Step(0, tok, None, None, "inet:parse_address failed", None, None,
                                  "unparsable", reason, 0, s, e))
            else:
                addr, used = parsed, True
                reason = f"the leftmost token, {erlang.ntoa(parsed)}, is taken as the client"
                trace.append(Step(0, tok, erlang.ntoa(parsed), None, None, None, None,
                                  "leftmost", reason, 0, s, e))
    else:
        allow = Trust(proxy_address_allow)
        rule = allow.rule_for(peer_ip)
        if rule is None:
            reason = f"the TCP peer {peer_text} is not in proxy_address_allow: headers ignored"
            trace.append(Step(None, peer_text, peer_text, peer_port, None, False, None, "peer",
                              reason))
        else:
            trace.append(Step(None, peer_text, peer_text, peer_port, None, True, rule, "peer",
                              f"the TCP peer is allowed ({rule}): read the header"))
            reason = f"no {proxy_address_header} value: the TCP peer is used"
            for k in range(len(spans) - 1, -1, -1):
                s, e = spans[k]
                tok = value[s:e]
                parsed = erlang.parse_address(tok)
                if parsed is None:
                    reason = f"{tok!r} is not an address: the TCP peer is used"
                    trace.append(Step(k, tok, None, None, "inet:parse_address failed", None, None,
                                      "unparsable", reason, 0, s, e))
                    addr, used = peer_ip, False
                    break
                text = erlang.ntoa(parsed)
                r = allow.rule_for(parsed)
                addr, used = parsed, True
                if r is None:
                    reason = f"{text} is not in proxy_address_allow: it is the client"
                    trace.append(Step(k, tok, text, None, None, False, None, "client", reason,
                                      0, s, e))
                    break
                if k == 0:
                    reason = f"{text} is the leftmost entry and all were allowed: it is used"
                    trace.append(Step(k, tok, text, None, None, True, r, "leftmost", reason,
                                      0, s, e))
                    break
                trace.append(Step(k, tok, text, None, None, True, r, "skip",
                                  f"{text} is allowed ({r}): keep walking left", 0, s, e))
    port: int = peer_port
    # 6.4: a peer outside proxy_address_allow has both headers ignored.
    peer_allowed = proxy_address_allow is None or Trust(proxy_address_allow)(peer_ip)
    pvalue = _cowboy_header(headers, proxy_port_header) if peer_allowed else ""
    pspans = _erl_tokens(pvalue)
    if pspans:
        s, e = pspans[0]
        got = _erl_port(pvalue[s:e])
        if got is not None:
            port = got
            reason += f"; port {got} from the leftmost {proxy_port_header} token"
        else:
            reason += f"; {proxy_port_header} {pvalue[s:e]!r} is not an integer: TCP peer port"
    return Resolution(erlang.ntoa(addr), port, "emqx-ws", used, "header" if used else "peer",
                      reason, tuple(trace), entries, proxy_address_header)


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


# ==============================================================================================
# realip's safe resolver


class ClientIP:
    """The safe resolver with its trust compiled once: ``ClientIP(trusted=[...], hops=N)`` then
    ``resolver(peer, headers)`` — what :func:`client_ip` does, without re-reading the
    configuration on every request.  Bad configuration raises
    :class:`~realip.ConfigurationError` here."""

    __slots__ = ("_cache", "_peers", "_raw", "_rules", "hops", "trust")

    def __init__(self, trusted: Sequence[str] = (), *, hops: int | None = None) -> None:
        if not trusted and hops is None:
            raise ConfigurationError("client_ip needs trusted ranges, a hop count, or both")
        self.trust = Trust(tuple(trusted), hops=hops)
        self.hops = hops
        # token text → (parsed node, matching rule); bounded, so junk cannot grow it forever
        self._cache: dict[str, tuple[Node | None, str | None, str | None]] = {}
        self._peers: dict[str, bool] = {}
        # raw list element (spaces included) → (address text, port, rule) for the fast path
        self._raw: dict[str, tuple[str | None, int | None, str | None]] = {}
        self._rules = bool(self.trust.rules)

    def judge(self, text: str, forwarded: bool = False) -> tuple[Node | None, str | None]:
        """Parse *text* and find the trust rule it matches (memoised)."""
        node, rule, _ = self._judge(text, forwarded)
        return node, rule

    def _judge(self, text: str, forwarded: bool) -> tuple[Node | None, str | None, str | None]:
        key = text if not forwarded else "\0" + text
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        node = parse_node(text, forwarded=forwarded)
        rule = None if node is None or node.ip is None else self.trust.rule_for(node.ip)
        shown = None if node is None or node.ip is None else format_ip(node.ip)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[key] = hit = (node, rule, shown)
        return hit

    def __call__(self, peer: str, headers: Headers, *, peer_port: int | None = None,
                 max_entries: int = 32, max_bytes: int = 8192) -> Resolution:
        """Resolve one request (see :func:`client_ip`)."""
        return self._resolve(peer, headers, peer_port, max_entries, max_bytes)

    def _resolve(self, peer: str, headers: Headers, peer_port: int | None, max_entries: int,
                 max_bytes: int) -> Resolution:
        # Fast path for the common case (X-Forwarded-For lines, nothing unusual): no trace is
        # built.  Everything else, and every explanation (reason, trace), comes from the traced
        # walk, on demand; a property test holds the two paths to the same answers.
        xff = None
        for name, value in headers:
            size = len(name)
            if size == 15 and name.lower() == "x-forwarded-for":
                xff = value if xff is None else f"{xff}, {value}"
            elif (size == 9 or size == 16) and name.lower() in ("forwarded", "x-forwarded-port"):
                return _client_ip(self, peer, headers, peer_port, max_entries, max_bytes)
        peer_ok = self._peers.get(peer)
        if peer_ok is None:
            try:
                pip: IP | str = _peer(peer)
            except ConfigurationError:
                return _client_ip(self, peer, headers, peer_port, max_entries, max_bytes)
            peer_ok = self.trust(pip, 0)
            if len(self._peers) >= 4096:
                self._peers.clear()
            self._peers[peer] = peer_ok
        if not peer_ok or xff is None or len(xff) > max_bytes:
            return _client_ip(self, peer, headers, peer_port, max_entries, max_bytes)
        # C-level splits from the right: first just a few entries (the boundary is usually near
        # the right end), the rest only if the walk gets that far; never more than max_entries.
        # Entries are looked up in the memo as they are (spaces included): nothing is copied.
        cache = self._raw
        hops = self.hops
        limit = 4 if max_entries > 4 else max_entries
        parts = xff.rsplit(",", limit)
        while True:
            n = len(parts)
            truncated = n > limit
            stop = 1 if truncated else 0
            for k in range(n - 1, stop - 1, -1):
                hit = cache.get(parts[k])
                if hit is None:
                    hit = self._judge_raw(parts[k])
                shown, port, rule = hit
                if shown is None:
                    return _client_ip(self, peer, headers, peer_port, max_entries, max_bytes)
                if hops is None:
                    trusted = rule is not None
                else:
                    trusted = (rule is not None or not self._rules) and n - k < hops
                if trusted and (k or truncated):
                    continue

                return _tuple_new(Resolution, (shown, port, "realip", True, "HEADER", "", (),
                                               (), "X-Forwarded-For", "", None, "", _EMPTY, (),
                                               (_client_ip, self, peer, headers, peer_port,
                                                max_entries, max_bytes)))
            if not truncated or limit >= max_entries:
                return _client_ip(self, peer, headers, peer_port, max_entries, max_bytes)
            limit = max_entries
            parts = xff.rsplit(",", limit)

    def _judge_raw(self, raw: str) -> tuple[str | None, int | None, str | None]:
        node, rule, shown = self._judge(raw.strip(" \t"), False)
        hit = (shown, None if node is None else node.port, rule)
        if len(self._raw) >= 4096:
            self._raw.clear()
        self._raw[raw] = hit
        return hit


_tuple_new = tuple.__new__


_COMPILED: dict[tuple[tuple[str, ...], int | None], ClientIP] = {}
_LAST: list[Any] = [None, None, None, None]


def _compiled(trusted: tuple[str, ...], hops: int | None) -> ClientIP:
    comp = _COMPILED.get((trusted, hops))
    if comp is None:
        comp = ClientIP(trusted, hops=hops)
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        _COMPILED[(trusted, hops)] = comp
    return comp


def client_ip(
    peer: str,
    headers: Headers,
    *,
    trusted: Sequence[str] = (),
    hops: int | None = None,
    peer_port: int | None = None,
    max_entries: int = 32,
    max_bytes: int = 8192,
) -> Resolution:
    """The client address, the safe way — the resolver realip recommends.

    1. The TCP *peer* must be trusted first (in *trusted*, and within *hops* if given);
       otherwise the headers are ignored, whatever they say.
    2. ``X-Forwarded-For`` (all lines, as one list) or ``Forwarded`` (``for=``) is walked right
       to left; an entry is skipped while it is trusted (CIDR match, and hop index < *hops* when
       a hop count is given); the first untrusted entry is the client.  If every entry is
       trusted, the leftmost is used.
    3. It **fails closed** (``addr`` None) on a malformed entry at or before the boundary, when
       both ``Forwarded`` and ``X-Forwarded-For`` are present (they would disagree), and when the
       walk would need more than *max_entries* entries or *max_bytes* bytes.
    4. The port comes from the chosen ``ip:port`` entry, else from the ``X-Forwarded-Port`` element
       aligned with it (when that list has as many elements as the address list).

    Peer data never raises; a bad configuration raises :class:`~realip.ConfigurationError`.
    The configuration is compiled once and cached; :class:`ClientIP` does the same explicitly.
    """
    # The same configuration object as last time (the usual case: a module-level list) skips
    # even the dictionary lookup; the copy comparison catches a list changed in place.
    last = _LAST
    comp: ClientIP
    if trusted is last[0] and hops == last[1] and trusted == last[2]:
        comp = last[3]
    else:
        if isinstance(trusted, str):  # "10.0.0.0/8, ::1" as a convenience
            trusted = tuple(t.strip() for t in trusted.split(",") if t.strip())
        comp = _compiled(trusted if type(trusted) is tuple else tuple(trusted), hops)
        _LAST[:] = [trusted, hops, trusted if type(trusted) is tuple else list(trusted), comp]
    return comp._resolve(peer, headers, peer_port, max_entries, max_bytes)


def _fail(peer: str, peer_port: int | None, reason: str, steps: list[Step],
          entries: tuple[Entry, ...] = (), header: str = "") -> Resolution:
    return Resolution(None, None, "realip", False, "FAIL", reason, tuple(steps), entries, header)


def _client_ip(comp: ClientIP, peer: str, headers: Headers, peer_port: int | None,
               max_entries: int, max_bytes: int) -> Resolution:
    trust = comp.trust
    xff: list[str] = []
    fwd: list[str] = []
    xfp: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == "x-forwarded-for":
            xff.append(value)
        elif lname == "forwarded":
            fwd.append(value)
        elif lname == "x-forwarded-port":
            xfp.append(value)
    steps: list[Step] = []
    try:
        peer_ip: IP | str = _peer(peer)
    except ConfigurationError:
        return _fail(peer, peer_port, f"the peer {peer!r} is not an address", steps)
    peer_text = peer if isinstance(peer_ip, str) else format_ip(peer_ip)
    peer_rule = trust.rule_for(peer_ip) if trust.rules else "hop count"
    peer_ok = trust(peer_ip, 0)
    if not peer_ok:
        why = (f"the peer {peer_text} is not a trusted proxy: headers ignored, the peer is the"
               " client")
        steps.append(Step(None, peer_text, peer_text, peer_port, None, False, None, "peer", why))
        return Resolution(peer_text, peer_port, "realip", False, "PEER", why, tuple(steps))
    steps.append(Step(None, peer_text, peer_text, peer_port, None, True, peer_rule, "peer",
                      f"the peer {peer_text} is a trusted proxy ({peer_rule}): read the header"))
    if xff and fwd:
        return _fail(peer, peer_port, "both Forwarded and X-Forwarded-For are present: refusing"
                     " to guess which one the proxies maintain", steps)
    forwarded = bool(fwd)
    if not xff and not fwd:
        why = "no forwarding header: the trusted peer itself is the client"
        return Resolution(peer_text, peer_port, "realip", False, "PEER", why, tuple(steps))
    joined = ", ".join(fwd if forwarded else xff)
    header = "Forwarded" if forwarded else "X-Forwarded-For"
    # Only the tail that the walk can need is split (a 1 MB header costs no more than the bound).
    tail = joined[-max_bytes:] if len(joined) > max_bytes else joined
    truncated = len(tail) < len(joined)
    if forwarded:
        try:
            elements = parse_forwarded(tail if not truncated else tail[tail.find(",") + 1 :])
        except ForwardedSyntaxError as exc:
            return _fail(peer, peer_port, f"malformed Forwarded header: {exc}", steps,
                         header=header)
        tokens = [(e.for_ or "", e.text) for e in elements]
        if truncated:
            tokens = tokens[1:] if tokens else tokens
    else:
        parts = tail.rsplit(",", max_entries)
        if len(parts) > max_entries or truncated:
            parts = parts[1:]  # the first piece may be cut in the middle
            truncated = True
        tokens = [(p.strip(" \t"), p.strip(" \t")) for p in parts]
    if len(tokens) > max_entries:
        tokens = tokens[-max_entries:]
        truncated = True
    entries = tuple(Entry(0, 0, 0, t[1]) for t in tokens)
    ports: list[int | None] = []
    if xfp:
        ports = parse_ports(", ".join(xfp))
    n = len(tokens)
    for k in range(n - 1, -1, -1):
        text = tokens[k][0]
        hop = n - k
        node, rule = comp.judge(text, forwarded)
        if node is None:
            return _fail(peer, peer_port,
                         f"entry {text!r} is malformed: refusing to guess the client", steps,
                         entries, header)
        if node.ip is None:
            kind = "obfuscated" if node.obfuscated else "unknown"
            return _fail(peer, peer_port, f"entry {text!r} hides the address ({kind}): no client"
                         " can be named", steps, entries, header)
        addr_text = format_ip(node.ip)
        is_trusted = (rule is not None if trust.rules else True) and trust(node.ip, hop) \
            if trust.hops is not None else rule is not None
        if is_trusted and k > 0:
            steps.append(Step(k, text, addr_text, node.port, None, True, rule or "hop count",
                              "skip", f"{addr_text} is trusted ({rule or f'hop {hop}'}): keep "
                              "walking left"))
            continue
        port = node.port
        if port is None and ports and len(ports) == n and not truncated:
            port = ports[k]
        if is_trusted:
            if truncated:
                return _fail(peer, peer_port, f"more than {max_entries} entries or {max_bytes}"
                             " bytes would have to be read: refusing", steps, entries, header)
            why = f"{addr_text} is the leftmost entry and all were trusted: it is used"
            steps.append(Step(k, text, addr_text, port, None, True, rule, "leftmost", why))
            return Resolution(addr_text, port, "realip", True, "HEADER", why, tuple(steps),
                              entries, header)
        why = f"{addr_text} is not trusted: it is the client"
        steps.append(Step(k, text, addr_text, port, None, False, None, "client", why))
        return Resolution(addr_text, port, "realip", True, "HEADER", why, tuple(steps), entries,
                          header)
    return _fail(peer, peer_port, "the header is empty", steps, entries, header)


# ==============================================================================================
# What popular libraries do (for contrast in the notebooks)


def werkzeug_proxy_fix(peer: str, headers: Headers, *, x_for: int = 1) -> Resolution:
    """Werkzeug ``ProxyFix(x_for=N)``: the N-th value from the right of X-Forwarded-For, copied
    as it is.  Weakness: the TCP peer is never checked, and the value is not validated."""
    values = [v.strip() for v in ",".join(header_lines(headers, "x-forwarded-for")).split(",")]
    values = [v for v in values if v] if any(values) else []
    if x_for < 1 or len(values) < x_for:
        why = f"fewer than {x_for} X-Forwarded-For values: REMOTE_ADDR unchanged"
        return Resolution(peer, None, "werkzeug", False, "PEER", why, ())
    value = values[-x_for]
    why = (f"values[-{x_for}] = {value!r} is taken verbatim (no peer check, no validation)")
    step = Step(len(values) - x_for, value, value, None, None, None, None, "rightmost", why)
    return Resolution(value, None, "werkzeug", True, "HEADER", why, (step,))


def uvicorn_proxy_headers(peer: str, headers: Headers, *,
                          forwarded_allow_ips: Sequence[str] | str = ("127.0.0.1", "::1")
                          ) -> Resolution:
    """uvicorn ``ProxyHeadersMiddleware``: if the peer is in *forwarded_allow_ips*, walk
    X-Forwarded-For right to left skipping trusted hosts; ``"*"`` returns the leftmost.
    Weaknesses: ``*`` is spoofable, junk entries are returned as the client."""
    allow = [forwarded_allow_ips] if isinstance(forwarded_allow_ips, str) else \
        list(forwarded_allow_ips)
    allow = [a.strip() for item in allow for a in item.split(",")]
    everyone = "*" in allow
    nets = Trust([a for a in allow if a != "*" and _is_net(a)]) if not everyone else None

    def trusted(host: str) -> bool:
        if everyone:
            return True
        assert nets is not None
        try:
            return nets(ip_address(host))
        except ValueError:
            return host in allow  # uvicorn keeps unparsable entries as literal strings
    if not trusted(peer):
        return Resolution(peer, None, "uvicorn", False, "PEER", "peer not in forwarded_allow_ips",
                          ())
    lines = header_lines(headers, "x-forwarded-for")
    if not lines:
        return Resolution(peer, None, "uvicorn", False, "PEER", "no X-Forwarded-For", ())
    hosts = [h.strip() for h in ",".join(lines).split(",")]
    if everyone:
        why = "forwarded_allow_ips='*': the leftmost entry is the client"
        return Resolution(hosts[0], None, "uvicorn", True, "HEADER", why, ())
    for h in reversed(hosts):
        if not trusted(h):
            return Resolution(h, None, "uvicorn", True, "HEADER",
                              f"{h!r} is the first untrusted entry (returned as it is)", ())
    return Resolution(hosts[0], None, "uvicorn", True, "HEADER", "all trusted: leftmost", ())


def _is_net(text: str) -> bool:
    try:
        Trust([text])
    except ConfigurationError:
        return False
    return True


def ipware_leftmost(peer: str, headers: Headers) -> Resolution:
    """python-ipware's default (``leftmost``): the first public address of X-Forwarded-For.
    Weakness: the client writes that entry itself, and the peer is never checked."""
    for line in header_lines(headers, "x-forwarded-for"):
        for raw in line.split(","):
            node = parse_node(raw.strip())
            if node is not None and node.ip is not None and node.ip.is_global:
                why = f"{format_ip(node.ip)} is the leftmost public entry (client-supplied!)"
                return Resolution(format_ip(node.ip), None, "ipware", True, "HEADER", why, ())
    return Resolution(peer, None, "ipware", False, "PEER", "no public entry: the peer", ())


def express_trust_proxy(peer: str, headers: Headers, *, hops: int) -> Resolution:
    """Express ``app.set('trust proxy', N)``: the peer plus N-1 entries are trusted by position,
    so the N-th address from the right is the client.  Weakness: a hop count goes stale when
    the chain changes, and entries are not validated."""
    values = [v.strip() for v in ",".join(header_lines(headers, "x-forwarded-for")).split(",")
              if v.strip()]
    chain = [*values, peer]
    k = max(len(chain) - 1 - hops, 0)
    why = f"trust proxy {hops}: position {len(chain) - 1 - k} from the right is the client"
    return Resolution(chain[k], None, "express", k < len(values), "HEADER", why, ())


