"""nginx's ``ngx_http_realip_module`` (``set_real_ip_from``, ``real_ip_header``,
``real_ip_recursive``) with the variables it sets, and what a ``proxy_protocol`` listener learnt."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, NamedTuple

from ..._headers import Headers, entries_of, index_of, parse_peer
from ...decisions import Entry, Resolution, Step
from ...forwarded import (
    header_lines,
)
from . import grammar as ngx

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


def _ngx_text(ip: IP | str) -> str:
    return ip if isinstance(ip, str) else ngx.format_addr(ip)


_NGX_NAME = re.compile(r"[A-Za-z0-9-]+")
_NGX_NAME_US = re.compile(r"[A-Za-z0-9_-]+")
_NGX_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def nginx_interpolate(template: str, variables: Mapping[str, str]) -> str:
    """Expand ``$name`` / ``${name}`` in an nginx directive value (``proxy_set_header``); an
    unknown or empty variable expands to the empty string, as nginx does for ``$http_*``."""
    # variable names are case-insensitive in nginx ($Host is $host)
    return _NGX_VAR.sub(lambda m: variables.get((m.group(1) or m.group(2)).lower(), ""),
                        template)


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
    peer_ip = parse_peer(peer)
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
            entries = entries_of(lines, " ,")
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
        idx = index_of(entries, li, end) if end else None
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


