"""nginx as a hop: ``stream`` and ``http`` servers, what each reads and writes, and its
variables."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from ..._addr import format_ip
from ...decisions import Acceptance
from ...errors import ConfigurationError
from ...proxy_protocol import Endpoint, build
from ...tls import TlsSession
from ...wire import parse_http, split_parts
from ..base import HopView, Host, Inbound, Outbound, TrustDecision, access_allowed, covers
from . import grammar as ngx
from .http_realip import (
    ProxyProtocolInfo,
    _nginx_match,
    _nginx_trust,
    nginx_interpolate,
    nginx_realip,
)
from .receive import RECEIVER, read_http_listener
from .tls import default_protocols, preread_variables, terminate
from .variables import check_variables

__all__ = [
    "NginxHttp",
    "NginxMap",
    "NginxStream",
    "reads_proxy_header",
    "step_http",
    "step_stream",
    "trust_http",
    "trust_stream",
]

IP = IPv4Address | IPv6Address




@dataclass(frozen=True, kw_only=True)
class NginxStream(Host):
    """nginx ``stream { server { listen … [proxy_protocol]; proxy_pass …; proxy_protocol on|v2;
    set_real_ip_from …; } }``.  Without ``listen_proxy_protocol`` and ``proxy_protocol`` it is a
    plain relay: a header from the previous hop passes through as data."""

    port: int = 1883
    listen_proxy_protocol: bool = False
    set_real_ip_from: tuple[str, ...] = ()
    proxy_protocol: Literal["off", "on", "v2"] = "off"
    #: ``listen … ssl``: terminates TLS (``ssl_certificate`` with a key of type ``ssl_key``)
    listen_ssl: bool = False
    ssl_verify_client: Literal["off", "on", "optional", "optional_no_ca"] = "off"
    #: the CA (a label) ``ssl_client_certificate`` holds
    ssl_client_certificate: str = "clients-ca"
    ssl_key: str = "EC256"
    #: ``ssl_protocols`` (None: the version's default — no TLSv1.3 before 1.23.4)
    ssl_protocols: tuple[str, ...] | None = None
    #: ``ssl_preread on``: reads the ClientHello's SNI and ALPN, passes TLS on unread
    ssl_preread: bool = False
    #: ``proxy_ssl on``: opens TLS to the upstream (after the PROXY header, in clear)
    proxy_ssl: bool = False
    #: ``allow`` / ``deny`` rules (ngx_stream_access_module) in order, on the TCP peer:
    #: ``"allow 172.16.0.0/24"``, ``"deny all"``
    access: tuple[str, ...] = ()
    #: routing by SNI: ``map $ssl_preread_server_name $up { NAME ADDR:PORT; … default
    #: ADDR:PORT; }`` + ``proxy_pass $up`` — the server names and where each goes, and the
    #: default (None: a name not listed reaches no upstream)
    ssl_preread_routes: tuple[tuple[str, str], ...] = ()
    ssl_preread_default: str | None = None
    version: str = "1.22.1"


@dataclass(frozen=True)
class NginxMap:
    """``map SOURCE $target { default D; KEY VALUE; … }`` (ngx_http_map_module): *target* is
    *source* (a value with variables, e.g. ``$http_upgrade``) looked up in *entries* — plain keys
    compared case-insensitively, ``~regex`` / ``~*regex`` tried in order after them — else
    *default*.  The idiom every WebSocket proxy needs is :meth:`connection_upgrade`."""

    source: str
    target: str
    entries: tuple[tuple[str, str], ...] = ()
    default: str = ""

    @classmethod
    def connection_upgrade(cls) -> NginxMap:
        """``map $http_upgrade $connection_upgrade { default upgrade; '' close; }``."""
        return cls("$http_upgrade", "connection_upgrade", (("", "close"),), "upgrade")

    def lookup(self, value: str) -> str:
        """The template *value* maps to (it may itself name variables)."""
        low = value.lower()
        for key, out in self.entries:
            if not key.startswith("~") and key.lower() == low:
                return out
        for key, out in self.entries:
            if key.startswith("~*") and re.search(key[2:], value, re.IGNORECASE):
                return out
            if key.startswith("~") and not key.startswith("~*") and re.search(key[1:], value):
                return out
        return self.default


def _as_map(value: Any, hop: str) -> NginxMap:
    if isinstance(value, NginxMap):
        return value
    if value == "connection_upgrade":
        return NginxMap.connection_upgrade()
    if isinstance(value, Mapping) and {"source", "target"} <= set(value) <= {
            "source", "target", "entries", "default"}:
        entries = value.get("entries", {})
        pairs = tuple(entries.items()) if isinstance(entries, Mapping) else tuple(
            tuple(e) for e in entries)
        return NginxMap(str(value["source"]), str(value["target"]).lstrip("$"),
                        pairs, str(value.get("default", "")))
    raise ConfigurationError(f"{hop}: maps: {value!r}: give 'connection_upgrade' or "
                             "{source: $var, target: name, entries: {key: value}, default: …}")


@dataclass(frozen=True, kw_only=True)
class NginxHttp(Host):
    """nginx ``http { server { listen … [proxy_protocol]; set_real_ip_from …; real_ip_header …;
    real_ip_recursive …; location … { proxy_pass …; proxy_http_version …; proxy_set_header …; }
    } }``.

    Upstream it writes the ``proxy_set_header`` lines in configuration order, then the defaults
    not overridden (``Host: $proxy_host`` — the next hop's ``addr:port`` —, ``Connection:
    close``), then the client's lines nobody set; a line whose value is empty is left out.
    Client lines with a name outside ``A-Z a-z 0-9 -`` (underscores) are ignored altogether."""

    port: int = 8083
    listen_proxy_protocol: bool = False
    set_real_ip_from: tuple[str, ...] = ()
    real_ip_header: str = "X-Real-IP"
    real_ip_recursive: bool = False
    location: str = "/mqtt"
    proxy_http_version: str = "1.0"
    proxy_set_header: tuple[tuple[str, str], ...] = ()
    #: the ``map`` blocks (``http`` level) whose variables the values above use
    maps: tuple[NginxMap, ...] = ()
    #: ``listen … ssl`` (wss): terminates TLS; ``ssl_verify_client`` checks client certificates
    #: against the CA (a label) in ``ssl_client_certificate``
    listen_ssl: bool = False
    ssl_verify_client: Literal["off", "on", "optional", "optional_no_ca"] = "off"
    ssl_client_certificate: str = "clients-ca"
    ssl_key: str = "EC256"
    ssl_protocols: tuple[str, ...] | None = None
    #: ``allow`` / ``deny`` rules (ngx_http_access_module) in order, on ``$remote_addr``
    access: tuple[str, ...] = ()
    version: str = "1.22.1"

    def __post_init__(self) -> None:
        # scenario files name the idiom (``maps: [connection_upgrade]``) or give a mapping
        maps = tuple(_as_map(m, self.name) for m in self.maps)
        object.__setattr__(self, "maps", maps)
        # nginx -t refuses a value naming a variable nobody defines ("unknown ... variable");
        # a simulator that expanded it to "" would predict a chain that never starts
        defined = [m.target for m in self.maps]
        for k, v in self.proxy_set_header:
            check_variables(v, defined, where=f"{self.name}: proxy_set_header {k}")
        for m in self.maps:
            check_variables(m.source, defined, where=f"{self.name}: map {m.source}")




def _ngx_pp(node: NginxStream | NginxHttp, conn: Inbound, decisions: list[str],
            variables: dict[str, str],
            ) -> tuple[bool, str | None, int, ProxyProtocolInfo | None, Acceptance | None]:
    """``listen … proxy_protocol``: read the header like nginx; returns (ok, log, consumed,
    info, the receiver's decision)."""
    if not node.listen_proxy_protocol:
        return True, None, 0, None, None
    if isinstance(node, NginxHttp):
        acc = read_http_listener(conn.data, node.version)
    else:
        acc = RECEIVER.accepts(conn.data, node.version)
    if not acc.accepted:
        decisions.append(f"listen … proxy_protocol: rejected — {acc.reason}")
        return False, acc.log_line or acc.reason, 0, None, acc
    consumed = acc.consumed or 0
    vars_ = dict(acc.variables) if acc.variables else {}
    addr = vars_.get("proxy_protocol_addr", "")
    if addr:
        info = ProxyProtocolInfo(addr, int(vars_.get("proxy_protocol_port") or 0),
                                 vars_.get("proxy_protocol_server_addr", ""),
                                 int(vars_.get("proxy_protocol_server_port") or 0))
        variables.update({k: v for k, v in vars_.items() if k.startswith("proxy_protocol")})
        decisions.append(f"listen … proxy_protocol: header read ({consumed} bytes), "
                         f"$proxy_protocol_addr = {addr}")
        return True, None, consumed, info, acc
    decisions.append(f"listen … proxy_protocol: header read ({consumed} bytes) without an "
                     "address (LOCAL/UNKNOWN): the real peer stays")
    return True, None, consumed, None, acc


def _plain_request_line(data: bytes) -> bool:
    """Whether *data* starts with a request line nginx parses (``GET /path HTTP/1.x``): only
    then does a plain request to a ``listen … ssl`` port get the "plain HTTP request" 400."""
    line = data.lstrip(b"\r\n").split(b"\r\n", 1)[0]
    return re.fullmatch(rb"[A-Z_-]+ /\S* HTTP/1\.[01]", line) is not None


def _ngx_bad_request(data: bytes) -> str:
    """The info-level message ``ngx_http_parse_request_line`` leads to for a request line that
    is not HTTP: leading CR/LF are skipped; a first byte that cannot start a method (``A-Z``,
    ``_``, ``-``; a v2 PROXY header's ``\\0``, an MQTT packet) is an invalid method; a method
    followed by something other than a URI (``PROXY TCP4 …``) an invalid request."""
    rest = data.lstrip(b"\r\n")
    if not rest or not (65 <= rest[0] <= 90 or rest[0] in b"_-"):
        return "client sent invalid method"
    return "client sent invalid request"


def _ngx_stream(node: NginxStream, conn: Inbound) -> Outbound:
    if node.proxy_protocol == "v2" and ngx.parse_version(node.version) < (1, 31, 4):
        raise ConfigurationError(f"{node.name}: nginx {node.version} refuses "
                                 "'proxy_protocol v2' (it must be on or off; v2 came in 1.31.4)")
    decisions: list[str] = []
    variables: dict[str, str] = {}
    if not _ngx_access(node, conn.peer, decisions):
        # the stream access module runs in the access phase, before the PROXY header and
        # the handshake are read: the connection is closed at once
        return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                                tuple(decisions), False, "access forbidden by rule"), ok=False)
    ok, log, consumed, info, acc = _ngx_pp(node, conn, decisions, variables)
    if not ok:
        return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                            tuple(decisions), False, log, acceptance=acc), ok=False)
    remote: IP = conn.peer.host  # type: ignore[assignment]
    remote_port = conn.peer.port or 0
    if info is not None and node.set_real_ip_from:
        rule = _ngx_rule(node.set_real_ip_from, remote)
        parsed = ngx.parse_addr(info.addr.encode("latin-1"))
        if rule is None:
            decisions.append(f"stream realip: the peer {format_ip(remote)} is not in "
                             "set_real_ip_from: $remote_addr stays the peer")
        elif parsed is None:
            decisions.append(f"stream realip: {info.addr!r} is not an address nginx can parse: "
                             "$remote_addr stays the peer")
        else:
            remote, remote_port = parsed, info.port
            decisions.append(f"stream realip: the peer is trusted ({rule}): $remote_addr = "
                             f"{ngx.format_addr(parsed)}")
    elif info is not None:
        decisions.append("no set_real_ip_from: the header is read but $remote_addr stays the "
                         "peer")
    variables.update(remote_addr=ngx.format_addr(remote), remote_port=_port_text(remote_port),
                     realip_remote_addr=ngx.format_addr(conn.peer.host),  # type: ignore[arg-type]
                     realip_remote_port=_port_text(conn.peer.port or 0),
                     server_addr=ngx.format_addr(conn.local.host),  # type: ignore[arg-type]
                     server_port=str(conn.local.port))
    payload = conn.data[consumed:]
    tls_state: str | None = None
    tls_out = None
    if node.listen_ssl:
        t = terminate(conn.tls, payload, verify_client=node.ssl_verify_client,
                      trusted_ca=node.ssl_client_certificate, key=node.ssl_key, http=False,
                      protocols=node.ssl_protocols or default_protocols(node.version))
        decisions += t.decisions
        variables.update(t.variables)
        if not t.ok:
            return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                                    tuple(decisions), False, t.log, acceptance=acc), ok=False)
        assert conn.tls is not None
        payload, tls_state = conn.tls.plaintext, "terminated"
    elif node.ssl_preread:
        found, sentence = preread_variables(conn.tls, payload)
        variables.update(found)
        decisions.append(sentence)
        if found and (node.ssl_preread_routes or node.ssl_preread_default):
            refused = _ngx_route(node, found.get("ssl_preread_server_name", ""), conn,
                                 decisions)
            if refused is not None:
                return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local,
                                        variables, tuple(decisions), False, refused,
                                        acceptance=acc), ok=False)
        if not found:
            # recorded on 1.22.1: preread_timeout expires, the connection is closed without
            # an upstream and without a log line ($status 200)
            closed = conn.tls is not None and conn.tls.then == "close"
            log = ("(the client closed during preread: no upstream reached; this ending was "
                   "not recorded from the real nginx)" if closed else
                   "(no log line: closed when preread_timeout expires, no upstream reached)")
            return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                                    tuple(decisions), False, log, acceptance=acc), ok=False)
        tls_out, tls_state = conn.tls, "preread"
    parts: list[tuple[str, bytes]] = []
    if node.proxy_protocol != "off":
        header = _ngx_send(node, remote, remote_port, conn.local)
        parts.append(("proxy", header))
        decisions.append(f"proxy_protocol {node.proxy_protocol}: sends a header with source "
                         f"{ngx.format_addr(remote)}:{remote_port} and its own address "
                         f"{ngx.format_addr(conn.local.host)}:{conn.local.port}")  # type: ignore
    elif not node.listen_proxy_protocol and payload[:5] == b"PROXY":
        decisions.append("plain relay: the incoming PROXY header is passed through as data")
    elif tls_state is None:
        decisions.append("plain relay: bytes are passed through unchanged")
    app_kind = "http" if payload[:4] == b"GET " else "mqtt"
    if node.proxy_ssl:
        if tls_state != "terminated":
            raise ConfigurationError(f"{node.name}: proxy_ssl on without listen … ssl would "
                                     "wrap the client's bytes in a second TLS connection; "
                                     "realip models proxy_ssl behind listen … ssl only")
        # ngx_stream_proxy_module: the PROXY header is written in clear, then the upstream
        # handshake (proxy_ssl_server_name off: no SNI; no proxy_ssl_certificate)
        tls_out = TlsSession(payload, app_kind, seed=node.name)
        decisions.append("proxy_ssl on: opens a new TLS connection to the upstream (no SNI, "
                         "no client certificate) and writes the plaintext into it")
    else:
        parts += split_parts(payload, app_kind)
    return Outbound(HopView(node.name, "nginx-stream", conn.peer, conn.local, variables,
                            tuple(decisions), acceptance=acc, tls=tls_state), tuple(parts),
                    tls=tls_out)


def _ngx_route(node: NginxStream, name: str, conn: Inbound, decisions: list[str]
               ) -> str | None:
    """The map on ``$ssl_preread_server_name`` (hostnames compare without case): where this
    connection goes; a sentence (the connection leaves this chain) when that is not the
    chain's next hop, None when it is."""
    chosen = next((up for key, up in node.ssl_preread_routes if key.lower() == name.lower()),
                  node.ssl_preread_default)
    shown = name or '""'
    if chosen is None:
        decisions.append(f"map $ssl_preread_server_name: {shown} has no entry and no default: "
                         "proxy_pass's variable is empty, nginx has no upstream to connect to")
        # what the real 1.22.1 logs ([error], ngx_stream_proxy_eval: the empty value does
        # not parse as an address) — seen live in tests/real/test_tls_lab_real.py
        return 'no host in upstream ""'
    decisions.append(f"map $ssl_preread_server_name: {shown} → proxy_pass {chosen}")
    nxt = conn.upstream
    if nxt is not None:
        host, _, port = chosen.rpartition(":")
        here = f"{ngx.format_addr(nxt.host)}:{nxt.port}"  # type: ignore[arg-type]
        if chosen != here and f"{host.strip('[]')}:{port}" != here:
            return (f"(routed by SNI {shown} to {chosen}, not to this chain's next hop "
                    f"{here})")
    return None


def _ngx_access(node: NginxStream | NginxHttp, peer: Endpoint, decisions: list[str],
                addr: Any = None) -> bool:
    """``allow`` / ``deny`` in order, the first that matches decides; none matching allows
    (ngx_stream_access_module / ngx_http_access_module)."""
    if not node.access:
        return True
    ip = addr if addr is not None else peer.host
    if isinstance(ip, str):
        return True  # a UNIX peer: the modules match unix: rules only
    allowed = access_allowed(node.access, ip)
    decisions.append(f"{'; '.join(node.access)}: {format_ip(ip)} is "
                     f"{'allowed' if allowed else 'denied'}")
    return allowed


def _ngx_send(node: NginxStream, src: IP, sport: int, local: Endpoint) -> bytes:
    """What ``ngx_proxy_protocol_write`` writes: family from the source alone (v1), the local
    address as destination; v2 (1.31.4+) promotes to INET6 and appends a CRC32C."""
    dst: IP = local.host  # type: ignore[assignment]
    if node.proxy_protocol == "v2":
        return build((src, sport), (dst, local.port), version=2, style="nginx", crc32c="last")
    proto = "TCP4" if isinstance(src, IPv4Address) else "TCP6"
    return (f"PROXY {proto} {ngx.format_addr(src)} {ngx.format_addr(dst)} {sport} "
            f"{local.port}\r\n").encode("ascii")


def _ngx_rule(entries: Sequence[str], ip: IP) -> str | None:
    cidrs, _ = _nginx_trust(tuple(entries))
    return _nginx_match(cidrs, ip)


def _port_text(port: int) -> str:
    return str(port) if 0 < port < 65536 else ""


class _Chain(Mapping[str, str]):
    """Variables from *first*, else from *second* (nginx's own mapping with ``$http_*``)."""

    def __init__(self, first: Mapping[str, str], second: Mapping[str, str]) -> None:
        self._first = first
        self._second = second

    def __getitem__(self, key: str) -> str:
        if key in self._first:
            return self._first[key]
        return self._second[key]

    def __iter__(self) -> Any:
        return iter({*self._first, *self._second})

    def __len__(self) -> int:
        return len({*self._first, *self._second})


_NGX_NAME = re.compile(r"[A-Za-z0-9-]+")


def _ngx_host(value: str) -> str:
    """``$host`` from a Host header (ngx_http_validate_host): lower case, without the port —
    an IPv6 literal keeps its brackets — and without a trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host = value[: end + 1] if end >= 0 else value
    else:
        host = value.split(":", 1)[0]
    return host.rstrip(".") if host != "." else host


def _ngx_proxy_host(upstream: Endpoint | None) -> str:
    """``$proxy_host``: the host and port of ``proxy_pass http://…`` (the port only when it is
    not 80)."""
    if upstream is None:
        return "upstream"
    host = ngx.format_addr(upstream.host)  # type: ignore[arg-type]
    if isinstance(upstream.host, IPv6Address):
        host = f"[{host}]"
    return host if upstream.port == 80 else f"{host}:{upstream.port}"


# Headers nginx's proxy module sets by default (ngx_http_proxy_headers): an empty value means the
# client's header is not passed on.
_NGX_DEFAULT_HEADERS = (("Host", "$proxy_host"), ("Connection", "close"),
                        ("Content-Length", "$proxy_internal_body_length"),
                        ("Transfer-Encoding", "$proxy_internal_chunked"), ("TE", ""),
                        ("Keep-Alive", ""), ("Expect", ""), ("Upgrade", ""))


def _ngx_http(node: NginxHttp, conn: Inbound) -> Outbound:
    decisions: list[str] = []
    variables: dict[str, str] = {}
    ok, log, consumed, info, acc = _ngx_pp(node, conn, decisions, variables)
    kind = "nginx-http"
    if not ok:
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, log, acceptance=acc), ok=False)
    body = conn.data[consumed:]
    tls_state: str | None = None
    plain = node.listen_ssl and body[:1] not in (b"", b"\x16", b"\x80")
    if plain and not _plain_request_line(body):
        # ngx_http_ssl_handshake: not a handshake, so nginx reads plain HTTP; the "plain HTTP
        # request to HTTPS port" page comes only after a request line that parses — anything
        # else (a PROXY line in front of the ClientHello) is refused as a bad request line,
        # as the real 1.22.1 logs it
        decisions.append("listen … ssl: the first byte is not a TLS handshake: nginx reads "
                         "the bytes as plain HTTP")
    elif node.listen_ssl:
        t = terminate(conn.tls, body, verify_client=node.ssl_verify_client,
                      trusted_ca=node.ssl_client_certificate, key=node.ssl_key, http=True,
                      protocols=node.ssl_protocols or default_protocols(node.version))
        decisions += t.decisions
        variables.update(t.variables)
        if not t.ok:
            if t.page:
                decisions.append(f"answers {t.page} and closes")
            return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                    tuple(decisions), False, t.log, acceptance=acc), ok=False)
        assert conn.tls is not None
        body, tls_state = conn.tls.plaintext, "terminated"
    ssl_vars = {k: v for k, v in variables.items() if k.startswith("ssl_")}
    parsed = parse_http(body)
    if parsed is None or not parsed[0].startswith("GET "):
        text = body[:40]
        what = _ngx_bad_request(body)
        decisions.append(f"the request is not HTTP ({text!r}…): {what}; answers 400 Bad "
                         "Request and closes")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            False, f"{what} while reading client request line",
                            acceptance=acc), ok=False)
    request, headers, _ = parsed
    # ignore_invalid_headers on, underscores_in_headers off (the defaults): a name with any
    # byte other than A-Z a-z 0-9 "-" is skipped ("client sent invalid header line", info) —
    # invisible to realip and $http_*, and not passed on
    dropped = [k for k, _ in headers if not _NGX_NAME.fullmatch(k)]
    if dropped:
        headers = [(k, v) for k, v in headers if _NGX_NAME.fullmatch(k)]
        decisions.append(f"ignores the header line(s) {', '.join(dropped)} (invalid name: "
                         "underscores_in_headers off)")
    peer_ip: IP = conn.peer.host  # type: ignore[assignment]
    r = nginx_realip(format_ip(peer_ip), headers, set_real_ip_from=node.set_real_ip_from,
                     real_ip_header=node.real_ip_header, recursive=node.real_ip_recursive,
                     peer_port=conn.peer.port, proxy_protocol=info, version=node.version)
    if node.set_real_ip_from:
        decisions.append(f"realip ({node.real_ip_header}, recursive "
                         f"{'on' if node.real_ip_recursive else 'off'}): {r.reason}")
    variables.update(dict(r.variables))
    # the access phase comes after realip's post-read phase: the rules see $remote_addr
    remote = r.variables.get("remote_addr", "")
    try:
        remote_ip: Any = ip_address(remote)
    except ValueError:
        remote_ip = conn.peer.host
    if not _ngx_access(node, conn.peer, decisions, remote_ip):
        decisions.append("answers 403 Forbidden and closes")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), False, "access forbidden by rule",
                                acceptance=acc, resolution=r), ok=False)
    host_header = next((v for k, v in headers if k.lower() == "host"), "")
    local_ip: IP = conn.local.host  # type: ignore[assignment]
    extra = {
        **ssl_vars,
        "host": _ngx_host(host_header) if host_header else ngx.format_addr(local_ip),
        "server_addr": ngx.format_addr(local_ip), "server_port": str(conn.local.port),
        "request_uri": request.split(" ")[1], "proxy_host": _ngx_proxy_host(conn.upstream),
    }

    allvars = _Chain(extra, r.variables)
    for m in node.maps:  # http-level maps, evaluated (lazily in nginx) against this request
        extra[m.target] = nginx_interpolate(m.lookup(nginx_interpolate(m.source, allvars)),
                                            allvars)
    variables.update(extra)
    # proxy_set_header entries first (configuration order), then nginx's defaults that were
    # not overridden, then the client's headers nobody set.
    configured = [(k, v) for k, v in node.proxy_set_header]
    names = {k.lower() for k, _ in configured}
    for k, v in _NGX_DEFAULT_HEADERS:
        if k.lower() not in names:
            configured.append((k, v))
            names.add(k.lower())
    out_lines = []
    for k, template in configured:
        value = nginx_interpolate(template, allvars)
        if value:
            out_lines.append(f"{k}: {value}")
            if template != value:
                decisions.append(f"proxy_set_header {k} {template!r} → {value!r}")
    for k, v in headers:
        if k.lower() not in names:
            out_lines.append(f"{k}: {v}")
    path = request.split(" ")[1]
    head = f"GET {path} HTTP/{node.proxy_http_version}\r\n" + "".join(
        line + "\r\n" for line in out_lines) + "\r\n"
    return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            acceptance=acc, resolution=r, tls=tls_state),
                (("http", head.encode("latin-1")),))


#: The public step names (the registry maps hop kinds to them).
step_stream = _ngx_stream
step_http = _ngx_http


# ==============================================================================================
# Who the hops trust (from the configuration: the ranges tested against the sender's address)


def trust_stream(node: NginxStream, sender_addr: str) -> TrustDecision:
    """Whether a stream server takes the client address from what *sender_addr* sends."""
    if not node.listen_proxy_protocol:
        return TrustDecision(None, "reads no PROXY header (relays bytes)")
    if not node.set_real_ip_from:
        return TrustDecision(False, "listen … proxy_protocol without set_real_ip_from")
    ok = covers(node.set_real_ip_from, sender_addr)
    return TrustDecision(ok, f"set_real_ip_from {', '.join(node.set_real_ip_from)}")


def trust_http(node: NginxHttp, sender_addr: str) -> TrustDecision:
    """Whether an http server takes the client address from what *sender_addr* sends."""
    if not node.set_real_ip_from:
        return TrustDecision(None, "no realip: $remote_addr is the TCP peer")
    ok = covers(node.set_real_ip_from, sender_addr)
    rec = "on" if node.real_ip_recursive else "off"
    return TrustDecision(ok, f"set_real_ip_from {', '.join(node.set_real_ip_from)}; "
                             f"{node.real_ip_header}, recursive {rec}")


def reads_proxy_header(node: NginxStream | NginxHttp, peer: Endpoint) -> bool:
    """``listen … proxy_protocol``: a header is read from every peer."""
    return node.listen_proxy_protocol
