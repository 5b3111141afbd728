"""HAProxy as a hop: ``frontend``/``backend`` in ``mode tcp`` or ``mode http``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

from ..._addr import format_ip
from ...decisions import Acceptance
from ...errors import ConfigurationError
from ...proxy_protocol import TLV, Endpoint, TLVType, build
from ...trust import Trust
from ...wire import Headers, parse_http, split_parts
from ..base import HopView, Host, Inbound, Outbound, TrustDecision, covers
from .http import haproxy_forwardfor
from .receive import RECEIVER
from .tls import ssl_tlv_for, terminate

__all__ = ["HAProxy", "reads_proxy_header", "step", "trust"]

IP = IPv4Address | IPv6Address




@dataclass(frozen=True, kw_only=True)
class HAProxy(Host):
    """HAProxy ``frontend``/``backend``: ``mode tcp|http``, ``bind … accept-proxy``,
    ``tcp-request connection expect-proxy layer4 if { src … }``, ``server … send-proxy |
    send-proxy-v2 proxy-v2-options …``, ``option forwardfor [except …] [if-none]``,
    ``http-request set-header|del-header``.

    In ``mode http`` (2.6, default keep-alive mode) every header name leaves in lower case; the
    ``close``/``keep-alive`` tokens of ``Connection`` are removed (an emptied line is dropped);
    an HTTP/1.0 request without an ``upgrade`` token gets ``connection: keep-alive`` last; the
    ``http-request`` rules run in order, then ``option forwardfor`` appends its line."""

    port: int = 1883
    mode: Literal["tcp", "http"] = "tcp"
    accept_proxy: bool = False
    expect_proxy_from: tuple[str, ...] = ()
    #: ``v2-ssl`` / ``v2-ssl-cn``: ``send-proxy-v2-ssl[-cn]`` (v2 with options ssl[,cert-cn])
    send_proxy: Literal["off", "v1", "v2", "v2-ssl", "v2-ssl-cn"] = "off"
    proxy_v2_options: tuple[str, ...] = ()
    #: ``bind … ssl crt …``: terminates TLS with a certificate whose key is ``ssl_key``;
    #: ``verify`` asks for client certificates checked against the CA (a label) in ``ca_file``;
    #: ``crt_ignore_err`` / ``ca_ignore_err`` (``crt-ignore-err all``, ``ca-ignore-err all``)
    #: let ones that fail at the leaf / in the chain through
    bind_ssl: bool = False
    ssl_key: str = "EC256"
    verify: Literal["none", "optional", "required"] = "none"
    ca_file: str = "clients-ca"
    crt_ignore_err: bool = False
    ca_ignore_err: bool = False
    #: ``bind … alpn …``: the protocols it negotiates (HAProxy's preference order)
    alpn: tuple[str, ...] = ()
    forwardfor: bool = False
    forwardfor_except: str | None = None
    forwardfor_if_none: bool = False
    forwardfor_header: str = "X-Forwarded-For"
    #: ``("set-header", name, value)`` / ``("del-header", name)`` in configuration order;
    #: values may use ``%[src]``, ``%[src_port]``, ``%[dst]``, ``%[dst_port]``
    http_request: tuple[tuple[str, ...], ...] = ()
    version: str = "2.6.12"




def _hap(node: HAProxy, conn: Inbound) -> Outbound:
    decisions: list[str] = []
    variables: dict[str, str] = {}
    src: Endpoint = conn.peer
    dst: Endpoint = conn.local
    data = conn.data
    expect = node.accept_proxy
    acc: Acceptance | None = None
    if node.expect_proxy_from:
        matched = Trust(node.expect_proxy_from)(conn.peer.host)
        expect = expect or matched
        decisions.append(f"tcp-request connection expect-proxy layer4 if {{ src "
                         f"{' '.join(node.expect_proxy_from)} }}: "
                         f"{'expects' if matched else 'does not expect'} a header from "
                         f"{format_ip(conn.peer.host)}")  # type: ignore[arg-type]
    kind = f"haproxy-{node.mode}"
    if expect:
        acc = RECEIVER.accepts(data, node.version)
        if not acc.accepted:
            decisions.append(f"accept-proxy: rejected — {acc.reason}")
            return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), False, acc.log_line or acc.reason,
                                acceptance=acc), ok=False)
        data = data[acc.consumed or 0 :]
        if acc.source is not None and acc.destination is not None:
            src, dst = acc.source, acc.destination
            decisions.append(f"accept-proxy: src/dst become {src} → {dst}")
        else:
            decisions.append("accept-proxy: header without addresses (LOCAL/UNKNOWN): real "
                             "addresses stay")
    variables.update(src=_hap_addr(src), src_port=str(src.port), dst=_hap_addr(dst),
                     dst_port=str(dst.port))
    result = None
    tls_state: str | None = None
    if node.bind_ssl:
        t = terminate(conn.tls, data, verify=node.verify, ca_file=node.ca_file,
                      key=node.ssl_key, crt_ignore_err=node.crt_ignore_err,
                      ca_ignore_err=node.ca_ignore_err)
        decisions += t.decisions
        if not t.ok:
            return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                    tuple(decisions), False, t.log, acceptance=acc), ok=False)
        variables.update(t.variables)
        assert conn.tls is not None
        data, result, tls_state = conn.tls.plaintext, t.result, "terminated"
    parts: list[tuple[str, bytes]] = []
    if node.send_proxy != "off":
        header = _hap_send(node, src, dst, result, conn.tls if node.bind_ssl else None)
        parts.append(("proxy", header))
        word = {"v1": "", "v2": "-v2", "v2-ssl": "-v2-ssl", "v2-ssl-cn": "-v2-ssl-cn"}
        decisions.append(f"server … send-proxy{word[node.send_proxy]}: relays {src} → {dst}"
                         + _tlv_words(node, result))
    if node.mode == "tcp":
        if data[:5] == b"PROXY" and not expect:
            decisions.append("mode tcp: the incoming PROXY header is relayed as data")
        parts += split_parts(data, "http" if data[:4] == b"GET " else "mqtt")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), acceptance=acc, tls=tls_state), tuple(parts))
    parsed = parse_http(data)
    if parsed is None:
        decisions.append("mode http: not an HTTP request: answers 400 Bad request and closes")
        # option httplog's line for it (" … " stands for timers and counters)
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, '<NOSRV> … 400 … PR-- … "<BADREQ>"', acceptance=acc), ok=False)
    request, headers, _ = parsed
    headers, upgrade = _hap_clean_connection(headers, decisions)
    for rule in node.http_request:
        if rule[0] == "set-header":
            value = _hap_fmt(rule[2], src, dst, variables)
            key = rule[1].lower()
            headers = [(k, v) for k, v in headers if k.lower() != key] + [(rule[1], value)]
            decisions.append(f"http-request set-header {rule[1]} {rule[2]} → {value!r}")
        elif rule[0] == "del-header":
            key = rule[1].lower()
            headers = [(k, v) for k, v in headers if k.lower() != key]
            decisions.append(f"http-request del-header {rule[1]}")
        else:
            raise ConfigurationError(f"unsupported http-request rule {rule!r}")
    if node.forwardfor:
        before = len(headers)
        headers = haproxy_forwardfor(headers, format_ip(src.host),  # type: ignore[arg-type]
                                     except_=node.forwardfor_except,
                                     if_none=node.forwardfor_if_none,
                                     header=node.forwardfor_header)
        if len(headers) > before:
            decisions.append(f"option forwardfor: adds a new line {node.forwardfor_header}: "
                             f"{headers[-1][1]} (client lines are kept)")
        else:
            decisions.append("option forwardfor: nothing added (except/if-none)")
    if request.endswith(" HTTP/1.0") and not upgrade:
        headers.append(("connection", "keep-alive"))
        decisions.append("HTTP/1.0 request, server side kept alive: adds connection: keep-alive "
                         "last")
    # HTX stores header names in lower case and the HTTP/1 mux writes them so (2.x without
    # h1-case-adjust): every name leaves in lower case, values as they are.
    head = request + "\r\n" + "".join(f"{k.lower()}: {v}\r\n" for k, v in headers) + "\r\n"
    parts.append(("http", head.encode("latin-1")))
    return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            acceptance=acc, tls=tls_state), tuple(parts))


def _negotiated_alpn(node: HAProxy, session: Any) -> str | None:
    """The protocol ``bind … alpn`` negotiates with the client (OpenSSL's
    SSL_select_next_proto: the first of the server's list the client offers), or None."""
    if session is None or not node.alpn or not session.alpn:
        return None
    return next((p for p in node.alpn if p in session.alpn), None)


def _tlv_words(node: HAProxy, result: object) -> str:
    opts = _v2_options(node)
    if "ssl" not in opts:
        return ""
    if result is None:
        return " (SSL TLV: the client did not use TLS here — client 0, verify 0)"
    return " (SSL TLV describes this hop's TLS session" + (
        ", with the client certificate's CN" if "cert-cn" in opts else "") + ")"


def _v2_options(node: HAProxy) -> set[str]:
    """The effective ``proxy-v2-options``: ``send-proxy-v2-ssl[-cn]`` add ``ssl[,cert-cn]``;
    every ``cert-*`` and ``ssl-cipher`` option implies ``ssl`` (srv_parse_proxy_v2_options)."""
    opts = set(node.proxy_v2_options)
    if node.send_proxy in ("v2-ssl", "v2-ssl-cn"):
        opts.add("ssl")
    if node.send_proxy == "v2-ssl-cn":
        opts.add("cert-cn")
    if opts & {"cert-cn", "cert-key", "cert-sig", "ssl-cipher"}:
        opts.add("ssl")
    return opts


def _hap_connection_pass(value: str) -> tuple[str, bool]:
    """One pass of ``h1_parse_connection_header`` with ``H1_MF_CLEAN_CONN_HDR``: words between
    commas (blanks trimmed) equal to ``close`` or ``keep-alive`` are removed; the value is copied
    verbatim up to the last word kept before the first removal, later words are appended trimmed
    after a bare comma; a comma in last position never starts a word.  Returns the new value
    and whether a word was ``upgrade``."""
    out = ""
    contiguous = True  # nothing removed yet: out is the input's prefix
    upgrade = False
    ptr = -1
    while True:
        ptr += 1  # steps over the comma that ended the previous word
        if ptr >= len(value):
            return out, upgrade
        if value[ptr] in " \t":
            continue
        end = value.find(",", ptr)
        end = len(value) if end < 0 else end
        word = value[ptr:end].rstrip(" \t")
        low = word.lower()
        if low in ("close", "keep-alive"):
            contiguous = False
        else:
            upgrade = upgrade or low == "upgrade"
            out = value[:end] if contiguous else out + ("," if out else "") + word
        ptr = end


def _hap_clean_connection(headers: Headers, decisions: list[str]) -> tuple[Headers, bool]:
    """What HAProxy 2.6 does to ``Connection`` lines on the way through: the request parser and
    the server-side HTTP/1 output each make one :func:`_hap_connection_pass` (the second one
    drops what the first left at the end: ``a,,`` → ``a,`` → ``a``), and a line left empty is
    dropped.  Returns the headers and whether a token was ``upgrade``."""
    out: Headers = []
    upgrade = False
    for name, value in headers:
        if name.lower() != "connection":
            out.append((name, value))
            continue
        kept, upg = _hap_connection_pass(value)
        kept, _ = _hap_connection_pass(kept)
        upgrade = upgrade or upg
        if kept != value:
            decisions.append(f"Connection: {value!r} is cleaned to "
                             f"{kept!r}{' (line dropped)' if not kept else ''}")
        if kept:
            out.append((name, kept))
    return out, upgrade


def _hap_addr(ep: Endpoint) -> str:
    return ep.host if isinstance(ep.host, str) else format_ip(ep.host)


def _hap_fmt(template: str, src: Endpoint, dst: Endpoint,
             fetched: dict[str, str] | None = None) -> str:
    values = {"src": _hap_addr(src), "src_port": str(src.port), "dst": _hap_addr(dst),
              "dst_port": str(dst.port)}
    values.update({k: v for k, v in (fetched or {}).items() if k.startswith("ssl_")})
    out = template
    for key, value in values.items():
        out = out.replace(f"%[{key}]", value)
    return out


def _hap_send(node: HAProxy, src: Endpoint, dst: Endpoint, result: Any = None,
              session: Any = None) -> bytes:
    """``make_proxy_line_v1/v2``: the frontend's src and dst; mixed families become v4-mapped;
    v2 TLVs in HAProxy's order (CRC32C, AUTHORITY, UNIQUE_ID, SSL) when asked for; the SSL TLV
    describes the frontend's own TLS session (*result*), if any."""
    if node.send_proxy == "v1":
        return build(src, dst, version=1, style="haproxy")
    opts = _v2_options(node)
    tlvs: list[TLV] = []
    alpn = _negotiated_alpn(node, session)
    if alpn is not None:
        # conn_get_alpn on the frontend connection: written whenever ALPN was negotiated,
        # with or without any proxy-v2-options
        tlvs.append(TLV(TLVType.ALPN, alpn.encode("ascii")))
    if "authority" in opts and session is not None and session.server_name:
        tlvs.append(TLV(TLVType.AUTHORITY, session.server_name.encode("ascii")))
    if "unique-id" in opts:
        tlvs.append(TLV(TLVType.UNIQUE_ID, b""))
    if "ssl" in opts:
        tlvs.append(ssl_tlv_for(opts, result, node.ssl_key))
    return build(src, dst, version=2, style="haproxy", tlvs=tlvs,
                 crc32c="first" if "crc32c" in opts else False)


#: The public step name (the registry maps the ``haproxy`` hop kind to it).
step = _hap


# ==============================================================================================
# Who the hop trusts, and what it reads


def trust(node: HAProxy, sender_addr: str) -> TrustDecision:
    """Whether a frontend takes the client address from what *sender_addr* sends."""
    if node.expect_proxy_from:
        ok = covers(node.expect_proxy_from, sender_addr)
        return TrustDecision(ok, f"expect-proxy if src {', '.join(node.expect_proxy_from)}")
    if node.accept_proxy:
        return TrustDecision(True, "accept-proxy: any sender's header")
    if node.mode == "http" and node.forwardfor:
        return TrustDecision(None, "option forwardfor (adds a line, reads none)")
    return TrustDecision(None, f"mode {node.mode}: uses the TCP peer")


@lru_cache(maxsize=64)
def _compiled(entries: tuple[str, ...]) -> Trust:
    # compiled once per configuration: a live relay asks for every connection
    return Trust(entries)


def reads_proxy_header(node: HAProxy, peer: Endpoint) -> bool:
    """``accept-proxy`` (every peer) or ``expect-proxy layer4 if { src … }`` (peers in the
    ranges)."""
    if node.accept_proxy:
        return True
    if node.expect_proxy_from and not isinstance(peer.host, str):
        return _compiled(tuple(node.expect_proxy_from))(peer.host)
    return False
