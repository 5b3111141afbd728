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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ...errors import ConfigurationError
from ..base import Imported, ca_label
from ..relay import Relay
from .grammar import parse_version
from .hops import NginxHttp, NginxMap, NginxStream
from .variables import check_variables

Hop = NginxStream | NginxHttp

__all__ = ["NGINX_STREAM_MODULE", "from_nginx_conf", "main", "server_block"]

#: Where Debian's libnginx-mod-stream installs the stream module (a private nginx loads it by
#: absolute path).
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"




def _ngx_quote(value: str) -> str:
    """A directive argument in double quotes (variables still expand)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Where rendered configurations expect TLS files: ``<dir>/<hop>.crt`` / ``.key`` (the hop's
#: own certificate and key, ``.pem`` both in one file for HAProxy) and ``<dir>/<ca>.pem`` (a CA
#: by label); the live lab writes its run-time PKI with these names.
TLS_DIR = "/etc/realip/tls"


def _tls_lines(hop: Any, tls_dir: str) -> list[str]:
    lines: list[str] = []
    if getattr(hop, "listen_ssl", False):
        lines += [f"ssl_certificate {tls_dir}/{hop.name}.crt;",
                  f"ssl_certificate_key {tls_dir}/{hop.name}.key;"]
        if hop.ssl_protocols is not None:
            lines.append(f"ssl_protocols {' '.join(hop.ssl_protocols)};")
        if hop.ssl_verify_client != "off":
            lines += [f"ssl_verify_client {hop.ssl_verify_client};",
                      f"ssl_client_certificate {tls_dir}/{hop.ssl_client_certificate}.pem;"]
    if getattr(hop, "ssl_preread", False):
        lines.append("ssl_preread on;")
    return lines


def server_block(hop: Any, scenario: str, listen: str, own: str, upstream: str, *,
                 tls_dir: str = TLS_DIR) -> tuple[str, str]:
    """``("http" | "stream", server block)`` for nginx hop *hop* listening on *listen*, binding
    its upstream connections to *own* (``addr`` or ``addr:port``) and sending to *upstream*; a
    :class:`~realip.programs.relay.Relay` becomes a plain stream relay.  TLS files are named
    under *tls_dir* (see :data:`TLS_DIR`)."""
    hop_name = hop.name
    if isinstance(hop, Relay):  # a plain TCP relay is an nginx stream server without PROXY
        lines = [f"# {hop.name} ({scenario}): plain relay", f"listen {listen};",
                 f"proxy_pass {upstream};", f"proxy_bind {own};"]
        return "stream", _block("server", lines)
    if not isinstance(hop, NginxStream | NginxHttp):
        raise ConfigurationError(f"{hop_name} is not an nginx hop")
    ssl = " ssl" if hop.listen_ssl else ""
    pp = " proxy_protocol" if hop.listen_proxy_protocol else ""
    lines = [f"# {hop.name} ({scenario})", f"listen {listen}{ssl}{pp};"]
    lines += _tls_lines(hop, tls_dir)
    lines += [f"{rule};" for rule in hop.access]
    lines += [f"set_real_ip_from {e};" for e in hop.set_real_ip_from]
    if isinstance(hop, NginxStream):
        if hop.proxy_protocol == "v2" and parse_version(hop.version) < (1, 31, 4):
            raise ConfigurationError(f"{hop_name}: nginx {hop.version} has no "
                                     "'proxy_protocol v2' (1.31.4+)")
        routed = bool(hop.ssl_preread_routes or hop.ssl_preread_default)
        var = f"$realip_sni_{re.sub(r'[^A-Za-z0-9_]', '_', hop.name)}"
        lines += [f"proxy_pass {var if routed else upstream};", f"proxy_bind {own};",
                  f"proxy_protocol {hop.proxy_protocol};"]
        if hop.proxy_ssl:
            lines.append("proxy_ssl on;")
        if not routed:
            return "stream", _block("server", lines)
        # (the live lab maps the routes' addresses with the hosts': render.topology_on)
        entries = [f"{name} {target};" for name, target in hop.ssl_preread_routes]
        if hop.ssl_preread_default is not None:
            entries.append(f"default {hop.ssl_preread_default};")
        mapping = _block(f"map $ssl_preread_server_name {var}", entries)
        return "stream", "\n".join([mapping, _block("server", lines)])
    lines += [f"real_ip_header {hop.real_ip_header};",
              f"real_ip_recursive {'on' if hop.real_ip_recursive else 'off'};"]
    # map variables are global to nginx's http block: each hop's copy gets its own name (one
    # nginx runs every hop of a chain), the values it sends stay the same
    renames = {m.target: f"{m.target}_{re.sub(r'[^A-Za-z0-9_]', '_', hop.name)}"
               for m in hop.maps}

    def own_vars(value: str) -> str:
        for old, new in renames.items():
            value = re.sub(r"\$(\{?)" + re.escape(old) + r"\b", "$\\g<1>" + new, value)
        return value

    maps = [_block(f"map {own_vars(m.source)} ${renames[m.target]}",
                   [f"default {_ngx_quote(own_vars(m.default))};",
                    *(f"{_ngx_quote(k)} {_ngx_quote(own_vars(v))};" for k, v in m.entries)])
            for m in hop.maps]
    inner = [f"proxy_pass http://{upstream};", f"proxy_bind {own};",
             f"proxy_http_version {hop.proxy_http_version};"]
    inner += [f"proxy_set_header {k} {_ngx_quote(own_vars(v))};"
              for k, v in hop.proxy_set_header]
    lines.append(_block(f"location {hop.location}", inner))
    return "http", "\n".join([*maps, _block("server", lines)])


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
#
# What nginx -t would refuse is refused here with nginx's own words (checked against the real
# nginx 1.22.1 in tests/real/test_import_verdicts_real.py); what nginx accepts but the simulator
# does not model is named in the warnings.


# Directives that do not change any address or header the simulator follows.
_NGINX_HARMLESS = frozenset({
    "user", "worker_processes", "worker_connections", "pid", "error_log", "access_log",
    "events", "load_module", "server_name", "proxy_connect_timeout", "proxy_timeout",
    "proxy_read_timeout", "proxy_send_timeout", "keepalive_timeout", "sendfile", "tcp_nopush",
    "types", "default_type", "log_format", "proxy_buffering", "worker_rlimit_nofile",
    "proxy_protocol_timeout", "client_header_timeout", "resolver", "tcp_nodelay",
    "multi_accept", "use", "daemon", "master_process", "include",
})

_ON_OFF = ("real_ip_recursive", "ssl_preread", "proxy_ssl")

#: ``ssl_verify_client``'s values (ngx_http_ssl_module / ngx_stream_ssl_module)
_VERIFY_CLIENT = ("on", "off", "optional", "optional_no_ca")

#: TLS directives that change nothing the simulator shows (protocols, ciphers, sessions…)
_NGINX_TLS_HARMLESS = frozenset({
    "ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_session_cache",
    "ssl_session_timeout", "ssl_session_tickets", "ssl_handshake_timeout", "ssl_ecdh_curve",
    "ssl_dhparam", "ssl_verify_depth", "preread_timeout", "proxy_ssl_protocols",
    "proxy_ssl_ciphers", "proxy_ssl_session_reuse", "ssl_stapling", "ssl_stapling_verify",
    "ssl_trusted_certificate"})



def _parse_nginx(text: str | None, path: str | os.PathLike[str] | None,
                 files: Mapping[str, str] | None, filename: str) -> list[dict[str, Any]]:
    """crossplane's statements for the whole configuration, ``include`` files spliced in
    (each statement keeps its ``file`` and ``line``)."""
    import crossplane  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory(prefix="realip-nginx-") as tmp:
        if path is not None:
            main_path = os.fspath(path)
            shown = {os.path.dirname(os.path.abspath(main_path)) + os.sep: ""}
        else:
            # crossplane reads files: the text (and the files it includes, given as a mapping
            # of paths relative to it) go through a private temporary directory
            main_path = os.path.join(tmp, os.path.basename(filename) or "nginx.conf")
            for rel, body in {**(files or {}), os.path.basename(main_path): text or ""}.items():
                if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
                    raise ConfigurationError(f"files: {rel!r}: give include files as paths "
                                             "relative to the main file")
                target = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(body)
            shown = {tmp + os.sep: ""}

        def where(file: str) -> str:
            for prefix, repl in shown.items():
                if file.startswith(prefix):
                    return repl + file[len(prefix):]
            return file

        try:
            result = crossplane.parse(main_path, catch_errors=False, combine=True,
                                      check_ctx=True, check_args=True)
        except Exception as exc:  # crossplane's syntax/argument errors and a missing include
            raise ConfigurationError(_crossplane_message(exc, where)) from None
        errors = result.get("errors") or []
        if errors:  # argument and include errors are recorded, not raised
            first = errors[0]
            msg = re.sub(r" in \S+:\d+$", "", str(first.get("error", "")))
            if "No such file" in msg:
                missing = re.search(r"'([^']+)'", msg)
                msg = (f'open() "{where(missing.group(1)) if missing else "?"}" failed (2: No '
                       "such file or directory): the include names a file that is not there "
                       "(for pasted text, pass it in files=)")
            raise ConfigurationError(f"{where(first.get('file', ''))}:{first.get('line')}: "
                                     f"{msg} (nginx -t refuses this configuration)")
        parsed: list[dict[str, Any]] = result["config"][0]["parsed"]
        _mark_files(parsed, where)
        return parsed


def _crossplane_message(exc: Exception, where: Any) -> str:
    filename = getattr(exc, "filename", None)
    line = getattr(exc, "lineno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, FileNotFoundError) or "No such file" in text:
        missing = where(getattr(exc, "filename", "") or "")
        return (f'open() "{missing}" failed (2: No such file or directory): an include names '
                "a file that is not there (pass it in files= for pasted text)")
    at = f"{where(filename)}:{line}: " if filename and line else ""
    return f"{at}{text} (nginx -t refuses this configuration)"


def _mark_files(stmts: list[dict[str, Any]], where: Any) -> None:
    for st in stmts:
        st["file"] = where(st.get("file", ""))
        _mark_files(st.get("block", []), where)


def from_nginx_conf(text: str | None = None, *, path: str | os.PathLike[str] | None = None,
                    files: Mapping[str, str] | None = None, filename: str = "nginx.conf",
                    name: str = "lb", addr: str, public: str | None = None,
                    source_port: int = 40000, version: str = "1.22.1") -> Imported:
    """The hops of an ``nginx.conf`` — one per ``listen`` of each ``server`` block with a
    ``proxy_pass`` in its ``stream`` and ``http`` sections — for a host called *name* whose own
    address is *addr* (the file does not say).

    Give the configuration as *text* (``include`` files then come from *files*, a mapping of
    paths relative to it — globs work) or as a *path* on disk (includes are read beside it, as
    nginx reads them).  Syntax errors, unknown variables, invalid ``on``/``off`` values and
    ``proxy_pass`` to a name that is neither an ``upstream`` nor an address raise
    :class:`~realip.errors.ConfigurationError` with the file and line, in nginx's words."""
    if (text is None) == (path is None):
        raise ConfigurationError("from_nginx_conf: give the configuration as text or as path=")
    if path is not None:
        filename = os.path.basename(os.fspath(path))
    warnings: list[str] = []
    hops: list[Hop] = []
    upstreams: list[str] = []
    for top in _parse_nginx(text, path, files, filename):
        d = top["directive"]
        if d in ("stream", "http"):
            _nginx_block(top["block"], d, name, addr, public, source_port, version, hops,
                         upstreams, warnings)
        elif d not in _NGINX_HARMLESS:
            warnings.append(f"{_at(top)}: '{d}' is not modelled (ignored)")
    if not hops:
        raise ConfigurationError(f"{filename}: no stream or http server with proxy_pass (a "
                                 "hop forwards its clients with proxy_pass)")
    for i in range(1, len(hops)):
        hops[i] = replace(hops[i], name=f"{name}-{i + 1}")
    return Imported(tuple(hops), tuple(upstreams), tuple(warnings))


def _at(d: dict[str, Any]) -> str:
    return f"{d.get('file') or 'nginx.conf'}:{d['line']}"


def _args(d: dict[str, Any]) -> list[str]:
    return list(d.get("args", []))


def _nginx_block(block: list[dict[str, Any]], kind: str, name: str, addr: str,
                 public: str | None, source_port: int, version: str, hops: list[Hop],
                 upstreams: list[str], warnings: list[str]) -> None:
    pools: dict[str, str] = {}
    maps: dict[str, NginxMap] = {}
    outer: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": []}
    servers = []
    for d in block:
        if d["directive"] == "upstream":
            members = [_args(s)[0] for s in d.get("block", []) if s["directive"] == "server"]
            if not members:
                raise ConfigurationError(f'{_at(d)}: no servers are inside upstream '
                                         '(nginx -t: [emerg] no servers are inside upstream)')
            if len(members) > 1:
                warnings.append(f"{_at(d)}: upstream {_args(d)[0]} balances over "
                                f"{len(members)} servers; the simulation follows the first "
                                f"({members[0]})")
            pools[_args(d)[0]] = members[0]
        elif d["directive"] == "map" and (
                kind == "http" or _args(d)[:1] == ["$ssl_preread_server_name"]):
            m = _nginx_map(d, warnings)
            maps[m.target] = m
        elif d["directive"] == "server":
            servers.append(d)
        else:
            _nginx_setting(d, outer, warnings, kind)
    for server in servers:
        for hop, upstream in _nginx_server(server, kind, name, addr, public, source_port,
                                           version, pools, maps, outer, warnings):
            hops.append(hop)
            upstreams.append(upstream)


def _nginx_map(d: dict[str, Any], warnings: list[str]) -> NginxMap:
    args = _args(d)
    source, target = args[0], args[1].lstrip("$")
    entries: list[tuple[str, str]] = []
    default = ""
    for inner in d.get("block", []):
        key, rest = inner["directive"], _args(inner)
        if key == "default":
            default = rest[0] if rest else ""
        elif key in ("hostnames", "volatile", "include"):
            warnings.append(f"{_at(inner)}: map {args[1]}: '{key}' is not modelled")
        else:
            entries.append((key, rest[0] if rest else ""))
    return NginxMap(source, target, tuple(entries), default)


def _nginx_setting(d: dict[str, Any], into: dict[str, Any], warnings: list[str],
                   kind: str) -> None:
    name, args = d["directive"], _args(d)
    if name in _ON_OFF and args[0].lower() not in ("on", "off"):
        raise ConfigurationError(f'{_at(d)}: invalid value "{args[0]}" in "{name}" directive, '
                                 'it must be "on" or "off"')
    if name == "set_real_ip_from":
        into.setdefault("set_real_ip_from", []).append(args[0])
    elif name == "real_ip_header":
        into["real_ip_header"] = args[0]
    elif name == "real_ip_recursive":
        into["real_ip_recursive"] = args[0].lower() == "on"  # ngx_conf_set_flag_slot: any case
    elif name == "proxy_set_header":
        into.setdefault("proxy_set_header", []).append(
            (args[0], args[1] if len(args) > 1 else "", _at(d)))
    elif name == "proxy_http_version":
        if args[0] not in ("1.0", "1.1"):
            raise ConfigurationError(f'{_at(d)}: invalid value "{args[0]}" in '
                                     '"proxy_http_version" directive, it must be "1.0" or "1.1"')
        into["proxy_http_version"] = args[0]
    elif name == "proxy_protocol":
        if kind == "stream" and args[0] not in ("on", "off"):
            raise ConfigurationError(f'{_at(d)}: invalid value "{args[0]}" in "proxy_protocol"'
                                     ' directive, it must be "on" or "off"')
        into["proxy_protocol"] = args[0]
    elif name == "proxy_pass":
        into["proxy_pass"] = (args[0], _at(d))
    elif name == "proxy_bind":
        into["proxy_bind"] = args[0]
    elif name in ("ssl_certificate", "ssl_certificate_key"):
        into[name] = args[0]
    elif name == "ssl_verify_client":
        if args[0] not in _VERIFY_CLIENT:
            raise ConfigurationError(f'{_at(d)}: invalid value "{args[0]}" in '
                                     '"ssl_verify_client" directive, it must be "on", "off", '
                                     '"optional" or "optional_no_ca"')
        into["ssl_verify_client"] = args[0]
    elif name in ("allow", "deny"):
        into.setdefault("access", []).append(f"{name} {args[0]}")
    elif name == "ssl_protocols":
        bad = [a for a in args if a not in ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2",
                                            "TLSv1.3")]
        if bad:
            raise ConfigurationError(f'{_at(d)}: invalid value "{bad[0]}" in "ssl_protocols" '
                                     "directive")
        into["ssl_protocols"] = tuple(args)
    elif name == "ssl_client_certificate":
        into["ssl_client_certificate"] = ca_label(args[0])
    elif name == "ssl_preread":
        if kind != "stream":
            raise ConfigurationError(f'{_at(d)}: "ssl_preread" directive is not allowed here '
                                     "(it belongs to stream servers)")
        into["ssl_preread"] = args[0].lower() == "on"
    elif name == "proxy_ssl":
        into["proxy_ssl"] = args[0].lower() == "on"
    elif name in _NGINX_TLS_HARMLESS:
        pass
    elif name not in _NGINX_HARMLESS:
        warnings.append(f"{_at(d)}: '{name} {' '.join(args)}' is not modelled "
                        f"(ignored) in the {kind} simulation")


_ADDR_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[0-9.]+|unix:.*)(?::\d+)?$")


def _nginx_server(server: dict[str, Any], kind: str, name: str, addr: str, public: str | None,
                  source_port: int, version: str, pools: dict[str, str],
                  maps: Mapping[str, NginxMap], outer: dict[str, Any],
                  warnings: list[str]) -> list[tuple[Hop, str]]:
    conf: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": [], "access": []}
    listens: list[tuple[int, bool, bool]] = []
    location: dict[str, Any] | None = None
    path = "/"
    for d in server.get("block", []):
        if d["directive"] == "listen":
            args = _args(d)
            tail = args[0].rsplit(":", 1)[-1] if not args[0].startswith("unix:") else ""
            if not tail.isdigit():
                warnings.append(f"{_at(d)}: listen {args[0]}: no port; nginx's default "
                                f"{80 if kind == 'http' else 'is none'} is assumed")
            port = int(tail) if tail.isdigit() else 80
            extra = [a for a in args[1:] if a not in ("proxy_protocol", "default_server",
                                                      "ssl")]
            if extra:
                warnings.append(f"{_at(d)}: listen options {extra} are not modelled")
            listens.append((port, "proxy_protocol" in args[1:], "ssl" in args[1:]))
        elif d["directive"] == "location":
            loc: dict[str, Any] = {"set_real_ip_from": [], "proxy_set_header": []}
            for inner in d.get("block", []):
                _nginx_setting(inner, loc, warnings, kind)
            if "proxy_pass" in loc and location is None:
                location, path = loc, _args(d)[-1]
            elif "proxy_pass" in loc:
                warnings.append(f"{_at(d)}: a second location with proxy_pass; the "
                                "simulation follows the first")
        else:
            _nginx_setting(d, conf, warnings, kind)
    if not listens:
        listens = [(80 if kind == "http" else 1883, False, False)]
        warnings.append(f"{_at(server)}: server without listen: port {listens[0][0]} assumed")
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
    if merged.get("proxy_pass") is None:
        warnings.append(f"{_at(server)}: server without proxy_pass (skipped)")
        return []
    target, target_at = merged["proxy_pass"]
    if target.startswith("https://"):
        raise ConfigurationError(f"{target_at}: proxy_pass {target}: TLS to the upstream of "
                                 "an http server is not modelled (realip models proxy_ssl in "
                                 "stream servers)")
    target = re.sub(r"^https?://", "", target).rstrip("/")
    routes: tuple[tuple[str, str], ...] = ()
    default_route: str | None = None
    if target.startswith("$") and kind == "stream" and target[1:] in maps and \
            maps[target[1:]].source == "$ssl_preread_server_name":
        m = maps[target[1:]]

        def resolve(value: str) -> str:
            if value in pools:
                return pools[value]
            if _ADDR_PORT.match(value):
                return value
            raise ConfigurationError(f'{target_at}: map {m.source} ${m.target}: "{value}" is '
                                     "neither an upstream block nor an addr:port")
        routes = tuple((k, resolve(v)) for k, v in m.entries)
        default_route = resolve(m.default) if m.default else None
        follow = default_route if default_route is not None else (routes[0][1] if routes
                                                                   else None)
        if follow is None:
            raise ConfigurationError(f"{target_at}: map {m.source} ${m.target} has no entry")
        if len({t for _, t in routes} | ({default_route} if default_route else set())) > 1:
            warnings.append(f"{target_at}: proxy_pass {target} routes by SNI to several "
                            f"upstreams: the chain follows "
                            f"{'the default' if default_route else 'the first'} route "
                            f"({follow}); give the scenario's client that server name, or "
                            "edit the route")
        target = follow
    if target.startswith("$"):
        raise ConfigurationError(
            f"{target_at}: proxy_pass {target}: the upstream is chosen per connection (by a "
            "map, e.g. on $ssl_preread_server_name); the importer follows one chain — give the "
            "address this chain continues to, or an upstream { server ADDR:PORT; } block")
    if target in pools:
        upstream = pools[target]
    elif _ADDR_PORT.match(target):
        upstream = target
    else:
        raise ConfigurationError(
            f'{target_at}: host not found in upstream "{target}": it is neither an upstream '
            "block in this file nor an address (nginx -t resolves names by DNS when it starts; "
            "give the address, or an upstream { server ADDR:PORT; } block)")
    if merged.get("proxy_bind"):
        warnings.append(f"proxy_bind {merged['proxy_bind']}: the simulation uses the host's "
                        "address as the source")
    out: list[tuple[Hop, str]] = []
    for port, listen_pp, listen_ssl in listens:
        if listen_ssl and "ssl_certificate" not in merged:
            raise ConfigurationError(f'{_at(server)}: no "ssl_certificate" is defined for the '
                                     f'"listen ... ssl" directive (port {port})')
        common: dict[str, Any] = {"name": name, "addr": addr, "public": public, "port": port,
                                  "source_port": source_port, "listen_proxy_protocol": listen_pp,
                                  "set_real_ip_from": tuple(merged.get("set_real_ip_from", ())),
                                  "listen_ssl": listen_ssl,
                                  "ssl_verify_client": merged.get("ssl_verify_client", "off"),
                                  "ssl_client_certificate": merged.get(
                                      "ssl_client_certificate", "clients-ca"),
                                  "ssl_protocols": merged.get("ssl_protocols"),
                                  "access": tuple(merged.get("access", ())),
                                  "version": version}
        if common["ssl_verify_client"] != "off" and "ssl_client_certificate" not in merged \
                and listen_ssl:
            raise ConfigurationError(f'{_at(server)}: no ssl_client_certificate for '
                                     'ssl_verify_client')
        hop: Hop
        if kind == "stream":
            hop = NginxStream(proxy_protocol=merged.get("proxy_protocol", "off"),
                              ssl_preread=bool(merged.get("ssl_preread", False)),
                              ssl_preread_routes=routes, ssl_preread_default=default_route,
                              proxy_ssl=bool(merged.get("proxy_ssl", False)), **common)
        else:
            if "proxy_protocol" in merged:
                warnings.append("proxy_protocol has no effect in http")
            headers = [(k, v) for k, v, _ in merged.get("proxy_set_header", ())]
            used = _maps_used([v for _, v in headers], maps)
            for k, v, at in merged.get("proxy_set_header", ()):
                check_variables(v, maps, where=f"{at}: proxy_set_header {k}")
            hop = NginxHttp(real_ip_header=merged.get("real_ip_header", "X-Real-IP"),
                            real_ip_recursive=bool(merged.get("real_ip_recursive", False)),
                            location=path,
                            proxy_http_version=merged.get("proxy_http_version", "1.0"),
                            proxy_set_header=tuple(headers), maps=tuple(used), **common)
        out.append((hop, upstream))
    return out


def _maps_used(values: Sequence[str], maps: Mapping[str, NginxMap]) -> list[NginxMap]:
    """The maps the values name, and the maps those maps' sources name (in dependency order)."""
    order: list[NginxMap] = []
    todo = list(values)
    while todo:
        for name in re.findall(r"\$\{?([A-Za-z0-9_]+)", todo.pop(0)):
            m = maps.get(name.lower()) or maps.get(name)
            if m is not None and m not in order:
                order.insert(0, m)
                todo.append(m.source)
    return order
