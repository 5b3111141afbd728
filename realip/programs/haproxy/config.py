"""HAProxy's configuration file: the ``frontend``/``backend`` sections and the whole
``haproxy.cfg`` realip writes for a hop, and the reader that turns a real ``haproxy.cfg`` into
hops (the directives the simulator models; every other one is named in the warnings).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any, Literal

from ...errors import ConfigurationError
from ..base import Imported, ca_label
from .hops import HAProxy

__all__ = ["from_haproxy_cfg", "main", "sections"]




def _hap_arg(value: str) -> str:
    """One HAProxy configuration word: bare when safe, else single-quoted (no ``$`` or
    backslash interpretation inside single quotes)."""
    if value and all(c.isalnum() or c in "%[]()_.,:/-=+*@" for c in value):
        return value
    if "'" not in value:
        return f"'{value}'"
    return '"' + "".join("\\" + c if c in '\\"$#\'' else c for c in value) + '"'


def _hap_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:" else "_" for c in text)


def sections(hop: Any, scenario: str, listen: str, own: str, upstream: str, *,
             tag: str = "", tls_dir: str = "/etc/realip/tls") -> str:
    """The ``frontend``/``backend`` pair of HAProxy hop *hop* listening on *listen*, its server
    line sourced from *own* and sent to *upstream* (named ``<tag><hop>`` and
    ``<tag><hop>_next``; the bind line is named after the hop, so HAProxy's connection errors
    read ``ip:port [date] <tag><hop>/<hop>: message``)."""
    hop_name = hop.name
    if not isinstance(hop, HAProxy):
        raise ConfigurationError(f"{hop_name} is not an HAProxy hop")
    name = _hap_name(tag + hop.name)
    bind = f"bind {listen} name {_hap_name(hop.name)}"
    if hop.accept_proxy:
        bind += " accept-proxy"
    if hop.bind_ssl:
        # <hop>.pem: certificate and key in one file, as HAProxy's crt takes them
        bind += f" ssl crt {tls_dir}/{hop.name}.pem"
        if hop.alpn:
            bind += " alpn " + ",".join(hop.alpn)
        if hop.verify != "none":
            bind += f" ca-file {tls_dir}/{hop.ca_file}.pem verify {hop.verify}"
            if hop.crt_ignore_err:
                bind += " crt-ignore-err all"
            if hop.ca_ignore_err:
                bind += " ca-ignore-err all"
    # tcplog/httplog: without one HAProxy 2.6 logs no connection errors (a refused PROXY
    # header) at all, only "Connect from" lines
    front = [f"mode {hop.mode}", f"option {hop.mode}log", bind]
    if hop.expect_proxy_from:
        front.append("tcp-request connection expect-proxy layer4 if { src "
                     + " ".join(hop.expect_proxy_from) + " }")
    if hop.mode == "http":
        for rule in hop.http_request:
            if rule[0] == "set-header" and len(rule) == 3:
                front.append(f"http-request set-header {rule[1]} {_hap_arg(rule[2])}")
            elif rule[0] == "del-header" and len(rule) == 2:
                front.append(f"http-request del-header {rule[1]}")
            else:
                raise ConfigurationError(f"unsupported http-request rule {rule!r}")
        if hop.forwardfor:
            ff = "option forwardfor"
            if hop.forwardfor_except is not None:
                ff += f" except {hop.forwardfor_except}"
            if hop.forwardfor_header != "X-Forwarded-For":
                ff += f" header {hop.forwardfor_header}"
            if hop.forwardfor_if_none:
                ff += " if-none"
            front.append(ff)
    front.append(f"default_backend {name}_next")
    server = f"server next {upstream} source {own}"
    if hop.send_proxy == "v1":
        server += " send-proxy"
    elif hop.send_proxy in ("v2", "v2-ssl", "v2-ssl-cn"):
        server += {"v2": " send-proxy-v2", "v2-ssl": " send-proxy-v2-ssl",
                   "v2-ssl-cn": " send-proxy-v2-ssl-cn"}[hop.send_proxy]
        if hop.proxy_v2_options:
            server += " proxy-v2-options " + ",".join(hop.proxy_v2_options)
    back = [f"mode {hop.mode}", server]
    return (f"# {hop.name} ({scenario})\n" + _hap_section(f"frontend {name}", front)
            + _hap_section(f"backend {name}_next", back))


def _hap_section(head: str, lines: Sequence[str]) -> str:
    return head + "\n" + "".join(f"    {ln}\n" for ln in lines)


def main(prefix: str, sections: Sequence[str]) -> str:
    """A whole HAProxy configuration holding *sections* (frontends and backends of any number of
    hops): raw log lines on stdout, pid in ``PREFIX/haproxy.pid``, one thread."""
    head = ("global\n    log stdout format raw local0 info\n    nbthread 1\n"
            f"    pidfile {prefix}/haproxy.pid\n"
            "defaults\n    log global\n    timeout connect 5s\n    timeout client 30s\n"
            "    timeout server 30s\n")
    return head + "".join(sections)


# ==============================================================================================
# Reading a real haproxy.cfg
#
# What ``haproxy -c`` refuses is refused here in HAProxy's words (checked against the real
# HAProxy 2.6.12 in tests/real/test_import_verdicts_real.py); what it accepts but the simulator
# does not model is named in the warnings, and a condition the simulator cannot evaluate is
# refused rather than guessed.


_HAP_HARMLESS = frozenset({"timeout", "log", "maxconn", "balance", "retries", "daemon",
                           "stats", "user", "group", "chroot", "pidfile", "nbthread",
                           "option tcplog", "option httplog", "option dontlognull"})

_MODES = ("tcp", "http")


def from_haproxy_cfg(text: str, *, name: str = "lb", addr: str, public: str | None = None,
                     source_port: int = 40000, version: str = "2.6.12",
                     filename: str = "haproxy.cfg") -> Imported:
    """The hops of a ``haproxy.cfg`` — one per ``bind`` line of each ``frontend`` (with its
    ``default_backend``) or ``listen`` section.  Named ACLs on ``src`` (``acl NAME src CIDR…``,
    declared before use, as HAProxy requires) and anonymous ``{ src … }`` ones work in
    ``tcp-request connection expect-proxy layer4 if …``; a frontend whose mode differs from its
    backend's, an unknown ``mode``, a missing backend or ACL raise
    :class:`~realip.errors.ConfigurationError` with ``haproxy -c``'s words and the line."""
    sections: list[tuple[str, str, int, list[tuple[int, list[str]]]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise ConfigurationError(f"{filename}:{lineno}: {exc}") from None
        if not words:
            continue
        if words[0] in ("global", "defaults", "frontend", "backend", "listen") and \
                not raw[:1].isspace():
            sections.append((words[0], words[1] if len(words) > 1 else "", lineno, []))
        elif sections:
            sections[-1][3].append((lineno, words))
        else:
            raise ConfigurationError(f"{filename}:{lineno}: unknown keyword '{words[0]}' out "
                                     "of section")
    warnings: list[str] = []
    defaults: dict[str, Any] = {}
    backends: dict[str, dict[str, Any]] = {}
    fronts: list[dict[str, Any]] = []
    for kind, sname, at, lines in sections:
        conf: dict[str, Any] = dict(defaults) if kind != "global" else {}
        conf.update(http_request=list(conf.get("http_request", [])), acls={}, binds=[],
                    section=f"{kind} '{sname}'", at=f"{filename}:{at}")
        for lineno, words in lines:
            _hap_line(f"{filename}:{lineno}", words, conf, warnings, kind)
        if kind == "defaults":
            defaults = {k: v for k, v in conf.items() if k in ("mode", "forwardfor")}
        elif kind == "backend":
            backends[sname] = conf
        conf["name"] = sname
        if kind in ("frontend", "listen"):
            fronts.append(conf)
    hops: list[HAProxy] = []
    upstreams: list[str] = []
    for front in fronts:
        if "server" in front:
            back = front
        elif "default_backend" in front:
            bname = front["default_backend"]
            if bname not in backends:
                raise ConfigurationError(f"{front['at']}: Proxy '{front['name']}': unable to "
                                         f"find required default_backend: '{bname}'.")
            back = backends[bname]
        else:
            warnings.append(f"{front['at']}: {front['section']} has no default_backend or "
                            "server (skipped)")
            continue
        if "server" not in back:
            warnings.append(f"{back['at']}: {back['section']}: no server to send to (skipped)")
            continue
        fmode, bmode = front.get("mode", "tcp"), back.get("mode", "tcp")
        if back is not front and fmode != bmode:
            raise ConfigurationError(
                f"{front['at']}: {fmode} frontend '{front['name']}' tries to use incompatible "
                f"{bmode} backend '{back['name']}' ({back['at']}) as its default backend "
                "(see 'mode').")
        if not front["binds"]:
            warnings.append(f"{front['at']}: {front['section']} has no bind (skipped)")
            continue
        server = back["server"]
        sopts = server["options"]
        if "ssl" in sopts:
            warnings.append(f"{back['at']}: server … ssl: TLS from HAProxy to the server is not "
                            "modelled (the simulation sends the plaintext)")
        send: Literal["off", "v1", "v2", "v2-ssl", "v2-ssl-cn"] = (
            "v2-ssl-cn" if "send-proxy-v2-ssl-cn" in sopts else
            "v2-ssl" if "send-proxy-v2-ssl" in sopts else
            "v2" if "send-proxy-v2" in sopts else "v1" if "send-proxy" in sopts else "off")
        ff = front.get("forwardfor") or back.get("forwardfor")
        for port, accept_proxy, tls in front["binds"]:
            hops.append(HAProxy(
                **tls,
                name=name if not hops else f"{name}-{len(hops) + 1}", addr=addr, public=public,
                port=port, source_port=source_port, mode=fmode,
                accept_proxy=accept_proxy or front.get("expect_always", False),
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
        raise ConfigurationError(f"{filename}: no frontend/listen section with a bind and a "
                                 "server to send to")
    return Imported(tuple(hops), tuple(upstreams), tuple(warnings))


def _hap_acl_values(where: str, name: str, values: list[str]) -> list[str]:
    import ipaddress

    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ConfigurationError(f"{where}: error detected while parsing ACL '{name}' : "
                                     f"'{v}' is not a valid IPv4 or IPv6 address.") from None
    return values


def _hap_condition(where: str, words: list[str], acls: dict[str, list[str] | None]
                   ) -> list[str] | None:
    """The sources an ``if``/``unless`` condition of ``expect-proxy`` matches, as CIDRs — or
    None when it always matches.  Only what the simulator can evaluate exactly is accepted:
    ``if`` with src ACLs (named or ``{ src … }``) joined by ``or``/``||``."""
    if not words:
        return None
    what = " ".join(words)
    if words[0] != "if":
        raise ConfigurationError(f"{where}: expect-proxy {what}: only 'if' conditions on src "
                                 "ACLs are modelled ('unless' is not) — realip will not guess")
    cidrs: list[str] = []
    tokens = re.findall(r"\{[^}]*\}|\S+", " ".join(words[1:]))
    groups: list[list[str]] = [[]]
    for tok in tokens:
        if tok in ("or", "||"):
            groups.append([])
        else:
            groups[-1].append(tok)
    for group in groups:
        if len(group) != 1:
            raise ConfigurationError(f"{where}: expect-proxy {what}: ACLs joined by AND are not "
                                     "modelled — realip will not guess")
        term = group[0]
        if term.startswith("{"):
            inner = term[1:-1].split()
            if not inner or inner[0] != "src":
                raise ConfigurationError(f"{where}: expect-proxy {what}: only src ACLs are "
                                         "modelled — realip will not guess")
            cidrs += _hap_acl_values(where, "anonymous", inner[1:])
            continue
        if term.startswith("!"):
            raise ConfigurationError(f"{where}: expect-proxy {what}: a negated ACL ({term}) is "
                                     "not modelled — realip will not guess")
        if term not in acls:
            raise ConfigurationError(
                f"{where}: 'tcp-request connection expect-proxy' : error detected while parsing "
                f"'if' condition : no such ACL : '{term}' (ACLs are declared before use)")
        values = acls[term]
        if values is None:
            raise ConfigurationError(f"{where}: expect-proxy {what}: ACL '{term}' tests "
                                     "something other than src (not modelled)")
        cidrs += values
    return cidrs


def _hap_line(where: str, words: list[str], conf: dict[str, Any], warnings: list[str],
              section: str) -> None:
    key = words[0]
    if key == "mode":
        if len(words) < 2 or words[1] not in _MODES:
            raise ConfigurationError(f"{where}: unknown proxy mode '{words[1:2] and words[1]}'."
                                     " (allowed: tcp, http)")
        conf["mode"] = words[1]
    elif key == "bind":
        tail = words[1].rsplit(":", 1)[-1] if len(words) > 1 else ""
        if not tail.isdigit():
            raise ConfigurationError(f"{where}: bind {' '.join(words[1:])}: missing port")
        opts = words[2:]
        tls: dict[str, Any] = {}
        other: list[str] = []
        i = 0
        while i < len(opts):
            w = opts[i]
            value = opts[i + 1] if i + 1 < len(opts) else None
            if w in ("accept-proxy",):
                i += 1
            elif w == "ssl":
                tls["bind_ssl"] = True
                i += 1
            elif w in ("crt", "ca-file", "verify", "alpn", "crt-ignore-err", "ca-ignore-err",
                       "name", "ssl-min-ver", "ssl-max-ver", "ciphers", "ciphersuites"):
                if value is None:
                    raise ConfigurationError(f"{where}: bind: '{w}' expects an argument")
                if w == "crt":
                    tls["crt"] = value
                elif w == "ca-file":
                    tls["ca_file"] = ca_label(value)
                elif w == "verify":
                    if value not in ("none", "optional", "required"):
                        raise ConfigurationError(f"{where}: bind: verify: unknown verify "
                                                 f"setting '{value}' (allowed: none, optional,"
                                                 " required)")
                    tls["verify"] = value
                elif w == "alpn":
                    tls["alpn"] = tuple(value.split(","))
                elif w in ("crt-ignore-err", "ca-ignore-err"):
                    if value != "all":
                        warnings.append(f"{where}: bind {w} {value}: only 'all' is modelled "
                                        "(a list of error ids is read as all)")
                    tls[w.replace("-", "_")] = True
                i += 2
            else:
                other.append(w)
                i += 1
        if tls.get("bind_ssl") and "crt" not in tls:
            raise ConfigurationError(f"{where}: bind {words[1]}: 'ssl' needs a certificate "
                                     "('crt'); haproxy -c: no certificate specified")
        if tls.get("verify", "none") != "none" and "ca_file" not in tls:
            raise ConfigurationError(f"{where}: bind {words[1]}: verify {tls['verify']} needs "
                                     "a 'ca-file' (haproxy -c: verify is enabled but no CA "
                                     "file specified)")
        tls.pop("crt", None)
        conf["binds"].append((int(tail), "accept-proxy" in opts, tls))
        if other:
            warnings.append(f"{where}: bind options {other} are not modelled")
    elif key == "acl" and len(words) >= 3:
        if words[2] == "src":
            prev = conf["acls"].get(words[1], [])
            conf["acls"][words[1]] = None if prev is None else \
                prev + _hap_acl_values(where, words[1], words[3:])
        else:
            conf["acls"][words[1]] = None
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
        cidrs = _hap_condition(where, words[4:], conf["acls"])
        if cidrs is None:
            conf["expect_always"] = True
        else:
            conf["expect_proxy_from"] = cidrs
    elif key in _HAP_HARMLESS or " ".join(words[:2]) in _HAP_HARMLESS:
        pass
    elif section != "global":
        warnings.append(f"{where}: '{' '.join(words)}' is not modelled (ignored)")
