"""The settings a scenario gives an ``nginx-stream`` or ``nginx-http`` hop, in nginx's words.

Flags are nginx's ``on``/``off`` (YAML booleans too); ``set_real_ip_from`` entries are read with
nginx's own ``ngx_ptocidr`` (:func:`realip.programs.nginx.grammar.ptocidr`), including its
warning for a CIDR with host bits set; ``proxy_protocol v2`` needs nginx 1.31.4, as ``nginx -t``
says.  Imported only when a scenario is validated (see :mod:`realip.programs.settings`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from ...errors import ConfigurationError
from ..settings import (
    Allowed,
    CaLabel,
    HeaderLines,
    HostSettings,
    KeyAlg,
    Port,
    Version,
    Warn,
    bool_words,
    error,
    header_name,
    one_or_many,
)
from . import grammar
from .hops import NginxMap, _as_map
from .variables import check_variables

__all__ = ["NginxHttpSettings", "NginxStreamSettings"]

_flag = bool_words(("on",), ("off",), "an nginx flag")

#: ``on`` / ``off`` (nginx's ``ngx_conf_set_flag_slot``; it compares without case).
Flag = Annotated[bool, BeforeValidator(_flag), Allowed("on | off")]


def _cidrs(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("cidr", f"{value!r} is not a list of addresses or CIDRs")
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise error("cidr", f"item {i}: {entry!r} is not text")
        try:
            grammar.ptocidr(entry)
        except ConfigurationError as exc:
            raise error("cidr", str(exc)) from None
    return tuple(value)


def _cidr_warnings(value: tuple[str, ...]) -> Iterable[tuple[int | None, str]]:
    for i, entry in enumerate(value):
        _, warning = grammar.ptocidr(entry)
        if warning:
            yield i, warning


#: ``set_real_ip_from`` values: addresses, CIDRs, ``unix:`` (one string is one entry).
CIDRs = Annotated[tuple[str, ...], BeforeValidator(_cidrs), Warn(_cidr_warnings),
                  Allowed("addresses or CIDRs as nginx reads them (ngx_ptocidr), or unix:")]


def _proxy_protocol(value: Any) -> str:
    if isinstance(value, bool):  # YAML reads an unquoted on/off as a boolean
        return "on" if value else "off"
    if isinstance(value, str) and value.strip().lower() in ("on", "off", "v2"):
        return value.strip().lower()
    raise error("proxy_protocol", f"{value!r} is not a proxy_protocol value")


def _http_version(value: Any) -> str:
    if isinstance(value, float) and value in (1.0, 1.1):
        return f"{value:.1f}"
    if value in ("1.0", "1.1"):
        return str(value)
    raise error("proxy_http_version", f"{value!r} is not an HTTP version nginx sends")


def _location(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise error("location", f"{value!r} is not a location prefix (it starts with /)")
    return value


def _maps(value: Any) -> tuple[NginxMap, ...]:
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("maps", f"{value!r} is not a list of maps")
    out = []
    for i, m in enumerate(value):
        try:
            out.append(_as_map(m, f"map {i}"))
        except ConfigurationError as exc:
            raise error("maps", str(exc)) from None
        try:
            check_variables(out[-1].source, [x.target for x in out], where=f"map {i}")
        except ConfigurationError as exc:
            raise error("maps", str(exc)) from None
    return tuple(out)


_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _protocols(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    value = one_or_many(value)
    if isinstance(value, str):
        value = value.split()
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not value:
        raise error("ssl_protocols", f"{value!r} is not a list of protocols")
    for v in value:
        if v not in _PROTOCOLS:
            raise error("ssl_protocols", f'invalid value "{v}" in "ssl_protocols" directive')
    return tuple(value)


def _route_target(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d+",
                                                      value.strip()):
        raise error("route", f"{value!r} is not an upstream address (addr:port)")
    return value.strip()


def _routes(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        value = list(value.items())
    if not isinstance(value, (list, tuple)):
        raise error("routes", f"{value!r} is not a mapping of server names to addr:port")
    out = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise error("routes", f"{item!r} is not a [server name, addr:port] pair")
        target = _route_target(item[1])
        assert target is not None
        out.append((item[0], target))
    return tuple(out)


def _access(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("access", f"{value!r} is not a list of allow/deny rules")
    for i, rule in enumerate(value):
        verb, _, target = rule.strip().partition(" ") if isinstance(rule, str) else ("", "", "")
        target = target.strip()
        if verb not in ("allow", "deny") or not target:
            raise error("access", f'rule {i}: {rule!r} is not "allow ADDRESS|CIDR|all" or '
                        '"deny ADDRESS|CIDR|all"')
        if target != "all":
            try:
                grammar.ptocidr(target)
            except ConfigurationError as exc:
                raise error("access", f"rule {i}: {exc}") from None
    return tuple(v.strip() for v in value)


class _Nginx(HostSettings):
    listen_proxy_protocol: Flag = Field(False, description="`listen … proxy_protocol`: read "
                                        "a PROXY header from every peer")
    set_real_ip_from: CIDRs = Field((), description="realip: the trusted peers whose address "
                                    "claim replaces $remote_addr")
    listen_ssl: Flag = Field(False, description="`listen … ssl`: terminate TLS (with "
                             "`ssl_certificate`)")
    ssl_verify_client: Annotated[
        Literal["off", "on", "optional", "optional_no_ca"],
        BeforeValidator(lambda v: {True: "on", False: "off"}.get(v, v) if isinstance(v, bool)
                        else v),
        Allowed("off | on | optional | optional_no_ca")] = Field(
        "off", description="`ssl_verify_client`: ask for (and check) a client certificate")
    ssl_client_certificate: CaLabel = Field("clients-ca", description="the CA (a label) in "
                                            "`ssl_client_certificate`")
    ssl_key: KeyAlg = Field("EC256", description="the key type of nginx's own certificate")
    access: Annotated[tuple[str, ...], BeforeValidator(_access),
                      Allowed('"allow CIDR" | "deny CIDR" | "allow all" | "deny all", in order')
                      ] = Field((), description="`allow` / `deny` rules in order (stream: on "
                                "the TCP peer; http: on $remote_addr after realip)")
    ssl_protocols: Annotated[tuple[str, ...] | None, BeforeValidator(_protocols),
                             Allowed("TLSv1 | TLSv1.1 | TLSv1.2 | TLSv1.3, or null")] = Field(
        None, description="`ssl_protocols` (null: the version's default; TLSv1.3 joined it "
        "in 1.23.4)")
    version: Version = Field("1.22.1", description="the nginx version modelled")


class NginxStreamSettings(_Nginx):
    """nginx ``stream { server { … } }``."""

    port: Port = Field(1883, description="`listen` port")
    proxy_protocol: Annotated[Literal["off", "on", "v2"], BeforeValidator(_proxy_protocol),
                              Allowed("off | on | v2 (v2: nginx 1.31.4 and later)")] = Field(
        "off", description="send a PROXY header upstream (`proxy_protocol on`)")
    ssl_preread: Flag = Field(False, description="`ssl_preread on`: read the ClientHello's "
                              "SNI and ALPN and pass TLS on unread")
    ssl_preread_routes: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_routes),
                                  Allowed("{server name: addr:port, …}")] = Field(
        (), description="routing by SNI: `map $ssl_preread_server_name $up { name addr:port; }` "
        "with `proxy_pass $up`")
    ssl_preread_default: Annotated[str | None, BeforeValidator(_route_target),
                                   Allowed("addr:port, or null")] = Field(
        None, description="the map's `default` (null: a name not listed reaches no upstream)")
    proxy_ssl: Flag = Field(False, description="`proxy_ssl on`: open TLS to the upstream "
                            "(after `listen … ssl`)")

    @field_validator("proxy_ssl")
    @classmethod
    def _proxy_ssl_after_listen_ssl(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("listen_ssl", False):
            raise error("proxy_ssl", "proxy_ssl on without listen … ssl would wrap the "
                        "client's bytes in a second TLS connection: realip models it behind "
                        "`listen … ssl` only")
        return value

    @field_validator("proxy_protocol")
    @classmethod
    def _v2_needs_a_new_nginx(cls, value: str, info: ValidationInfo) -> str:
        version = info.data.get("version", "1.22.1")
        if value == "v2" and grammar.parse_version(version) < (1, 31, 4):
            raise error("proxy_protocol", f'nginx {version}: invalid value "v2" in '
                        '"proxy_protocol" directive, it must be "on" or "off" (v2 came in '
                        '1.31.4)')
        return value


class NginxHttpSettings(_Nginx):
    """nginx ``http { server { … location … { proxy_pass …; } } }``."""

    port: Port = Field(8083, description="`listen` port")
    real_ip_header: Annotated[str, BeforeValidator(
        lambda v: v if v == "proxy_protocol" else header_name(v)),
        Allowed("a header name, or proxy_protocol")] = Field(
        "X-Real-IP", description="realip: the header (or proxy_protocol) holding the address")
    real_ip_recursive: Flag = Field(False, description="realip: walk the header right to left "
                                    "past trusted addresses")
    location: Annotated[str, BeforeValidator(_location), Allowed("a URI prefix, e.g. /mqtt")] \
        = Field("/mqtt", description="the location holding proxy_pass")
    proxy_http_version: Annotated[str, BeforeValidator(_http_version),
                                  Allowed("1.0 | 1.1")] = Field(
        "1.0", description="HTTP version upstream (1.1 for WebSocket)")
    maps: Annotated[tuple[Any, ...], BeforeValidator(_maps),
                    Allowed("connection_upgrade, or {source: $var, target: name, entries: "
                            "{key: value}, default: value}")] = Field(
        (), description="`map` blocks (http level) whose variables the values use")
    proxy_set_header: HeaderLines = Field((), description="`proxy_set_header name value;` in "
                                          "order (values may use nginx variables)")

    @field_validator("proxy_set_header")
    @classmethod
    def _known_variables(cls, value: tuple[tuple[str, str], ...], info: ValidationInfo
                         ) -> tuple[tuple[str, str], ...]:
        # nginx -t refuses a value naming a variable nobody defines (unknown "…" variable)
        if "maps" not in info.data:  # the maps themselves are wrong (reported there)
            return value
        defined = [m.target for m in info.data["maps"]]
        for name, text in value:
            try:
                check_variables(text, defined, where=f"proxy_set_header {name}")
            except ConfigurationError as exc:
                raise error("variable", str(exc)) from None
        return value
