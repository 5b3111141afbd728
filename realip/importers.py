"""Building simulator hops from real configuration files: ``nginx.conf`` (parsed with NGINX's own
Python parser, crossplane) and ``haproxy.cfg`` (the directives the simulator models).

Nothing is dropped silently: every directive the simulator does not model is named in
:attr:`Imported.warnings`, so a learner pasting a configuration sees what the prediction does
not take into account.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .errors import ConfigurationError
from .topology import Broker, Client, HAProxy, Hop, NginxHttp, NginxStream, Topology

__all__ = ["Imported", "chain", "from_haproxy_cfg", "from_nginx_conf"]


@dataclass(frozen=True)
class Imported:
    """Hops read from one configuration file, where each sends its traffic (``upstreams``:
    ``host:port`` per hop), and what was not understood."""

    hops: tuple[Hop, ...]
    upstreams: tuple[str, ...]
    warnings: tuple[str, ...]


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
    upstream = pools.get(target, target)
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

_HAP_HARMLESS = frozenset({"timeout", "log", "maxconn", "balance", "retries", "daemon",
                           "stats", "user", "group", "chroot", "pidfile", "nbthread"})


def from_haproxy_cfg(text: str, *, name: str = "lb", addr: str, public: str | None = None,
                     source_port: int = 40000, version: str = "2.6.12") -> Imported:
    """The hops of a ``haproxy.cfg`` — one per ``frontend`` (with its ``default_backend``) or
    ``listen`` section."""
    sections: list[tuple[str, str, list[tuple[int, list[str]]]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise ConfigurationError(f"haproxy.cfg line {lineno}: {exc}") from None
        if not words:
            continue
        if words[0] in ("global", "defaults", "frontend", "backend", "listen") and \
                not raw[:1].isspace():
            sections.append((words[0], words[1] if len(words) > 1 else "", []))
        elif sections:
            sections[-1][2].append((lineno, words))
    warnings: list[str] = []
    defaults: dict[str, Any] = {}
    backends: dict[str, dict[str, Any]] = {}
    fronts: list[dict[str, Any]] = []
    for kind, sname, lines in sections:
        conf = dict(defaults) if kind != "global" else {}
        conf.setdefault("http_request", [])
        conf["http_request"] = list(conf["http_request"])
        for lineno, words in lines:
            _hap_line(lineno, words, conf, warnings, kind)
        if kind == "defaults":
            defaults = {k: v for k, v in conf.items() if k in ("mode", "forwardfor")}
        elif kind == "backend":
            backends[sname] = conf
        elif kind in ("frontend", "listen"):
            conf["section"] = f"{kind} {sname}"
            fronts.append(conf)
    hops: list[Hop] = []
    upstreams: list[str] = []
    for front in fronts:
        back = backends.get(front.get("default_backend", ""), {}) if "server" not in front \
            else front
        if "server" not in back:
            warnings.append(f"{front['section']}: no server to send to (skipped)")
            continue
        server = back["server"]
        mode = back.get("mode", front.get("mode", "tcp"))
        send: Literal["off", "v1", "v2"] = "v2" if "send-proxy-v2" in server["options"] else (
            "v1" if "send-proxy" in server["options"] else "off")
        ff = front.get("forwardfor") or back.get("forwardfor")
        hops.append(HAProxy(
            name=name if not hops else f"{name}-{len(hops) + 1}", addr=addr, public=public,
            port=front.get("port", 80), source_port=source_port, mode=mode,
            accept_proxy=front.get("accept_proxy", False),
            expect_proxy_from=tuple(front.get("expect_proxy_from", ())),
            send_proxy=send, proxy_v2_options=tuple(server.get("v2_options", ())),
            forwardfor=ff is not None, forwardfor_except=(ff or {}).get("except"),
            forwardfor_if_none=bool((ff or {}).get("if-none")),
            forwardfor_header=(ff or {}).get("header", "X-Forwarded-For"),
            http_request=tuple(front["http_request"] + (back.get("http_request", [])
                                                        if back is not front else [])),
            version=version))
        upstreams.append(server["address"])
    if not hops:
        raise ConfigurationError("no frontend/listen section with a server in this haproxy.cfg")
    return Imported(tuple(hops), tuple(upstreams), tuple(warnings))


def _hap_line(lineno: int, words: list[str], conf: dict[str, Any], warnings: list[str],
              section: str) -> None:
    key = words[0]
    where = f"line {lineno}"
    if key == "mode":
        conf["mode"] = words[1]
    elif key == "bind":
        conf["port"] = int(words[1].rsplit(":", 1)[-1])
        conf["accept_proxy"] = "accept-proxy" in words[2:]
        other = [w for w in words[2:] if w != "accept-proxy"]
        if other:
            warnings.append(f"{where}: bind options {other} are not modelled")
    elif key == "default_backend" or key == "use_backend":
        conf["default_backend"] = words[1]
        if key == "use_backend":
            warnings.append(f"{where}: use_backend conditions are not evaluated")
    elif key == "server":
        opts = words[3:]
        v2opts: list[str] = []
        if "proxy-v2-options" in opts:
            v2opts = opts[opts.index("proxy-v2-options") + 1].split(",")
        if "server" in conf:
            warnings.append(f"{where}: more than one server; the simulation follows the first")
        else:
            conf["server"] = {"address": words[2], "options": opts, "v2_options": v2opts}
    elif key == "option" and len(words) > 1 and words[1] == "forwardfor":
        ff: dict[str, Any] = {}
        rest = words[2:]
        i = 0
        while i < len(rest):
            if rest[i] in ("except", "header"):
                ff[rest[i]] = rest[i + 1]
                i += 2
            else:
                ff[rest[i]] = True
                i += 1
        conf["forwardfor"] = ff
    elif key == "http-request" and len(words) > 1 and words[1] in ("set-header", "del-header"):
        conf["http_request"].append(tuple(words[1:4] if words[1] == "set-header"
                                          else words[1:3]))
        if len(words) > (4 if words[1] == "set-header" else 3):
            warnings.append(f"{where}: conditions on http-request rules are not evaluated")
    elif key == "tcp-request" and words[1:4] == ["connection", "expect-proxy", "layer4"]:
        m = re.search(r"\{\s*src\s+([^}]*)\}", " ".join(words))
        if m is None:
            warnings.append(f"{where}: expect-proxy without 'if {{ src … }}' is treated as "
                            "always expecting a header")
            conf["accept_proxy"] = True
        else:
            conf["expect_proxy_from"] = m.group(1).split()
    elif key in _HAP_HARMLESS:
        pass
    elif section != "global":
        warnings.append(f"{where}: '{' '.join(words)}' is not modelled (ignored)")


# ----------------------------------------------------------------------------------------------


def chain(client: Client, configs: Sequence[Imported], broker: Broker, *,
          name: str = "imported") -> Topology:
    """A topology from hops read from configuration files, in order.  Each hop after the first
    takes its address and port from where the previous one sends its traffic (the file's
    ``upstream``/``server`` line), and so does the broker."""
    hops: list[Hop] = []
    for k, imported in enumerate(configs):
        hop = imported.hops[0]
        if k > 0:
            host, _, port = configs[k - 1].upstreams[0].rpartition(":")
            hop = replace(hop, addr=host or hop.addr, port=int(port) if port else hop.port)
        hops.append(hop)
    if configs:
        host, _, port = configs[-1].upstreams[0].rpartition(":")
        broker = replace(broker, addr=host, port=int(port) if port else broker.port)
    return Topology(name=name, client=client, hops=tuple(hops), broker=broker)
