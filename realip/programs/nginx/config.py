"""nginx's configuration files: the ``server`` blocks and the whole ``nginx.conf`` realip
writes for a hop (to run the real nginx beside the simulator), and the reader that turns a real
``nginx.conf`` into hops (parsed with NGINX's own Python parser, crossplane).

Nothing is dropped silently by the reader: every directive the simulator does not model is named
in :attr:`~realip.programs.base.Imported.warnings`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...errors import ConfigurationError
from ..base import Imported
from ..relay import Relay
from .grammar import parse_addr, parse_version
from .hops import NginxHttp, NginxStream

Hop = NginxStream | NginxHttp

__all__ = ["NGINX_STREAM_MODULE", "from_nginx_conf", "main", "server_block"]

#: Where Debian's libnginx-mod-stream installs the stream module (a private nginx loads it by
#: absolute path).
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"




def _ngx_quote(value: str) -> str:
    """A directive argument in double quotes (variables still expand)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def server_block(hop: Any, scenario: str, listen: str, own: str, upstream: str,
                 ) -> tuple[str, str]:
    """``("http" | "stream", server block)`` for nginx hop *hop* listening on *listen*, binding
    its upstream connections to *own* (``addr`` or ``addr:port``) and sending to *upstream*; a
    :class:`~realip.programs.relay.Relay` becomes a plain stream relay."""
    hop_name = hop.name
    if isinstance(hop, Relay):  # a plain TCP relay is an nginx stream server without PROXY
        lines = [f"# {hop.name} ({scenario}): plain relay", f"listen {listen};",
                 f"proxy_pass {upstream};", f"proxy_bind {own};"]
        return "stream", _block("server", lines)
    if not isinstance(hop, NginxStream | NginxHttp):
        raise ConfigurationError(f"{hop_name} is not an nginx hop")
    pp = " proxy_protocol" if hop.listen_proxy_protocol else ""
    lines = [f"# {hop.name} ({scenario})", f"listen {listen}{pp};"]
    lines += [f"set_real_ip_from {e};" for e in hop.set_real_ip_from]
    if isinstance(hop, NginxStream):
        if hop.proxy_protocol == "v2" and parse_version(hop.version) < (1, 31, 4):
            raise ConfigurationError(f"{hop_name}: nginx {hop.version} has no "
                                     "'proxy_protocol v2' (1.31.4+)")
        lines += [f"proxy_pass {upstream};", f"proxy_bind {own};",
                  f"proxy_protocol {hop.proxy_protocol};"]
        return "stream", _block("server", lines)
    lines += [f"real_ip_header {hop.real_ip_header};",
              f"real_ip_recursive {'on' if hop.real_ip_recursive else 'off'};"]
    inner = [f"proxy_pass http://{upstream};", f"proxy_bind {own};",
             f"proxy_http_version {hop.proxy_http_version};"]
    inner += [f"proxy_set_header {k} {_ngx_quote(v)};" for k, v in hop.proxy_set_header]
    lines.append(_block(f"location {hop.location}", inner))
    return "http", _block("server", lines)


def _block(head: str, lines: Sequence[str]) -> str:
    body = "\n".join("    " + ln for text in lines for ln in text.split("\n"))
    return f"{head} {{\n{body}\n}}"


def main(prefix: str, *, http: Sequence[str] = (), stream: Sequence[str] = (),
               stream_module: str | None = NGINX_STREAM_MODULE, error_level: str = "info",
               ) -> str:
    """A whole ``nginx.conf`` for a private foreground nginx in the existing directory *prefix*
    (pid, error log ``prefix/error.log``, the five temp paths ``prefix/*_temp``, which nginx
    creates) holding the given ``server`` blocks.  *stream_module* is loaded when there are
    stream servers (None: built in)."""
    head = []
    if stream and stream_module:
        head.append(f"load_module {stream_module};")
    head += ["daemon off;", "master_process off;", "worker_processes 1;",
             f"pid {prefix}/nginx.pid;", f"error_log {prefix}/error.log {error_level};",
             "events { worker_connections 1024; }"]
    parts = ["\n".join(head)]
    if http:
        temps = [f"{d}_temp_path {prefix}/{d}_temp;"
                 for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
        parts.append(_block("http", ["access_log off;", *temps, *http]))
    if stream:
        parts.append(_block("stream", list(stream)))
    return "\n".join(parts) + "\n"


# ==============================================================================================
# Reading a real nginx.conf


# Directives that do not change any address or header the simulator follows.
_NGINX_HARMLESS = frozenset({
    "user", "worker_processes", "worker_connections", "pid", "error_log", "access_log",
    "events", "load_module", "server_name", "proxy_connect_timeout", "proxy_timeout",
    "proxy_read_timeout", "proxy_send_timeout", "keepalive_timeout", "sendfile", "tcp_nopush",
    "types", "default_type", "include", "log_format", "proxy_buffering",
    "proxy_protocol_timeout", "client_header_timeout", "resolver",
})


def _parse_nginx(text: str) -> list[dict[str, Any]]:
    import crossplane  # type: ignore[import-untyped]

    # crossplane reads files; the text goes through a private temporary file.
    fd, path = tempfile.mkstemp(suffix=".conf", prefix="realip-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        result = crossplane.parse(path, single=True, check_ctx=False, check_args=False,
                                  catch_errors=False)
    except Exception as exc:  # crossplane raises its own syntax errors
        raise ConfigurationError(f"nginx.conf does not parse: {exc}") from None
    finally:
        os.unlink(path)
    parsed: list[dict[str, Any]] = result["config"][0]["parsed"]
    return parsed


def from_nginx_conf(text: str, *, name: str = "lb", addr: str, public: str | None = None,
                    source_port: int = 40000, version: str = "1.22.1") -> Imported:
    """The hops of an ``nginx.conf`` — one per ``server`` block of its ``stream`` and ``http``
    sections — for a host called *name* whose own address is *addr* (the file does not say)."""
    warnings: list[str] = []
    hops: list[Hop] = []
    upstreams: list[str] = []
    for top in _parse_nginx(text):
        d = top["directive"]
        if d in ("stream", "http"):
            _nginx_block(top["block"], d, name, addr, public, source_port, version, hops,
                         upstreams, warnings)
        elif d not in _NGINX_HARMLESS:
            warnings.append(f"line {top['line']}: '{d}' is not modelled (ignored)")
    if not hops:
        raise ConfigurationError("no stream or http server with proxy_pass in this nginx.conf")
    for i in range(1, len(hops)):
        hops[i] = replace(hops[i], name=f"{name}-{i + 1}")
    return Imported(tuple(hops), tuple(upstreams), tuple(warnings))


def _args(d: dict[str, Any]) -> list[str]:
    return list(d.get("args", []))


def _nginx_block(block: list[dict[str, Any]], kind: str, name: str, addr: str,
                 public: str | None, source_port: int, version: str, hops: list[Hop],
                 upstreams: list[str], warnings: list[str]) -> None:
    pools: dict[str, str] = {}
    outer: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": []}
    servers = []
    for d in block:
        if d["directive"] == "upstream":
            members = [_args(s)[0] for s in d.get("block", []) if s["directive"] == "server"]
            if not members:
                warnings.append(f"line {d['line']}: upstream {_args(d)[0]} has no server")
                continue
            if len(members) > 1:
                warnings.append(f"line {d['line']}: upstream {_args(d)[0]} balances over "
                                f"{len(members)} servers; the simulation follows the first")
            pools[_args(d)[0]] = members[0]
        elif d["directive"] == "server":
            servers.append(d)
        else:
            _nginx_setting(d, outer, warnings, kind)
    for server in servers:
        hop, upstream = _nginx_server(server, kind, name, addr, public, source_port, version,
                                      pools, outer, warnings)
        if hop is not None:
            hops.append(hop)
            upstreams.append(upstream)


def _nginx_setting(d: dict[str, Any], into: dict[str, Any], warnings: list[str],
                   kind: str) -> None:
    name, args = d["directive"], _args(d)
    if name == "set_real_ip_from":
        into.setdefault("set_real_ip_from", []).append(args[0])
    elif name == "real_ip_header":
        into["real_ip_header"] = args[0]
    elif name == "real_ip_recursive":
        into["real_ip_recursive"] = args[0] == "on"
    elif name == "proxy_set_header":
        into.setdefault("proxy_set_header", []).append((args[0], args[1] if len(args) > 1
                                                         else ""))
    elif name == "proxy_http_version":
        into["proxy_http_version"] = args[0]
    elif name == "proxy_protocol":
        into["proxy_protocol"] = args[0]
    elif name == "proxy_pass":
        into["proxy_pass"] = args[0]
    elif name == "proxy_bind":
        into["proxy_bind"] = args[0]
    elif name not in _NGINX_HARMLESS:
        warnings.append(f"line {d['line']}: '{name} {' '.join(args)}' is not modelled "
                        f"(ignored) in the {kind} simulation")


def _direct_upstream(target: str, kind: str, server: dict[str, Any]) -> str:
    """``proxy_pass`` to an address rather than an ``upstream`` block: what ``nginx -t`` says
    of a name no block defines (it would look it up in DNS, which a sans-IO model cannot) and
    of a stream target without a port (http's default is 80)."""
    host, colon, port = target.rpartition(":")
    if not colon or not port.isdigit() or host.endswith(":"):  # no port (or a bare IPv6)
        host, port = target, ""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if parse_addr(bare.encode("latin-1", "replace")) is None:
        raise ConfigurationError(
            f'line {server["line"]}: host not found in upstream "{target}" (no upstream block '
            "of that name; name an upstream defined in this file, or give address:port)")
    if not port:
        if kind == "stream":
            raise ConfigurationError(f'line {server["line"]}: no port in upstream "{target}"')
        port = "80"
    return f"{host}:{port}"


def _nginx_server(server: dict[str, Any], kind: str, name: str, addr: str, public: str | None,
                  source_port: int, version: str, pools: dict[str, str],
                  outer: dict[str, Any], warnings: list[str]) -> tuple[Hop | None, str]:
    conf: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": []}
    port = 1883 if kind == "stream" else 80
    listen_pp = False
    location: dict[str, Any] | None = None
    path = "/"
    for d in server.get("block", []):
        if d["directive"] == "listen":
            args = _args(d)
            port = int(args[0].rsplit(":", 1)[-1]) if args[0].rsplit(":", 1)[-1].isdigit() \
                else port
            listen_pp = "proxy_protocol" in args[1:]
            extra = [a for a in args[1:] if a not in ("proxy_protocol", "default_server")]
            if extra:
                warnings.append(f"line {d['line']}: listen options {extra} are not modelled")
        elif d["directive"] == "location":
            loc: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": []}
            for inner in d.get("block", []):
                _nginx_setting(inner, loc, warnings, kind)
            if "proxy_pass" in loc and location is None:
                location, path = loc, _args(d)[-1]
            elif "proxy_pass" in loc:
                warnings.append(f"line {d['line']}: a second location with proxy_pass; the "
                                "simulation follows the first")
        else:
            _nginx_setting(d, conf, warnings, kind)
    # nginx inherits list directives (set_real_ip_from, proxy_set_header) only when the inner
    # level defines none; single-value ones when unset.
    merged: dict[str, Any] = {}
    for level in (outer, conf, location or {}):
        for key, value in level.items():
            if isinstance(value, list):
                if value:
                    merged[key] = value
            else:
                merged[key] = value
    target = merged.get("proxy_pass")
    if target is None:
        warnings.append(f"line {server['line']}: server without proxy_pass (skipped)")
        return None, ""
    target = re.sub(r"^https?://", "", target).rstrip("/")
    upstream = pools.get(target) or _direct_upstream(target, kind, server)
    if merged.get("proxy_bind"):
        warnings.append(f"proxy_bind {merged['proxy_bind']}: the simulation uses the host's "
                        "address as the source")
    common: dict[str, Any] = {"name": name, "addr": addr, "public": public, "port": port,
              "source_port": source_port, "listen_proxy_protocol": listen_pp,
              "set_real_ip_from": tuple(merged.get("set_real_ip_from", ())), "version": version}
    hop: Hop
    if kind == "stream":
        pp = merged.get("proxy_protocol", "off")
        if pp not in ("on", "off", "v2"):
            raise ConfigurationError(f"proxy_protocol {pp!r}: on, off or v2")
        hop = NginxStream(proxy_protocol=pp, **common)
    else:
        for key in ("proxy_protocol",):
            if key in merged:
                warnings.append("proxy_protocol has no effect in http")
        hop = NginxHttp(real_ip_header=merged.get("real_ip_header", "X-Real-IP"),
                        real_ip_recursive=bool(merged.get("real_ip_recursive", False)),
                        location=path,
                        proxy_http_version=merged.get("proxy_http_version", "1.0"),
                        proxy_set_header=tuple(merged.get("proxy_set_header", ())), **common)
    return hop, upstream


# ----------------------------------------------------------------------------------------------
# HAProxy
