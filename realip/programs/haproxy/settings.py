"""The settings a scenario gives a ``haproxy`` hop, in HAProxy's keywords.

``send_proxy`` is ``off``, ``v1`` (``send-proxy``) or ``v2`` (``send-proxy-v2``);
``proxy_v2_options`` are HAProxy's option names; ``expect_proxy_from`` and
``forwardfor_except`` are networks as an ACL on ``src`` reads them.  Imported only when a
scenario is validated (see :mod:`realip.programs.settings`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from ...errors import ConfigurationError
from ...trust import Trust
from ..settings import (
    Allowed,
    AlpnNames,
    CaLabel,
    HeaderName,
    HostSettings,
    KeyAlg,
    Port,
    Version,
    bool_words,
    error,
    one_or_many,
)

__all__ = ["HAProxySettings"]

_flag = bool_words(("true",), ("false",), "a boolean")

#: A keyword that is present (true) or absent (false).
Keyword = Annotated[bool, BeforeValidator(_flag), Allowed("true | false")]

#: HAProxy 2.6's ``proxy-v2-options`` names.
V2_OPTIONS = ("ssl", "ssl-cipher", "cert-sig", "cert-key", "cert-cn", "authority", "crc32c",
              "unique-id")


def _send_proxy(value: Any) -> str:
    if value is False:
        return "off"
    words = {"off": "off", "v1": "v1", "send-proxy": "v1", "v2": "v2", "send-proxy-v2": "v2",
             "v2-ssl": "v2-ssl", "send-proxy-v2-ssl": "v2-ssl", "v2-ssl-cn": "v2-ssl-cn",
             "send-proxy-v2-ssl-cn": "v2-ssl-cn"}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise error("send_proxy", f"{value!r} is not a PROXY version HAProxy sends")


def _network(value: Any) -> str:
    if not isinstance(value, str):
        raise error("network", f"{value!r} is not an address or network")
    try:
        Trust([value])
    except ConfigurationError as exc:
        raise error("network", str(exc)) from None
    return value


def _networks(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("network", f"{value!r} is not a list of networks")
    return tuple(_network(v) for v in value)


def _options(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)):
        raise error("proxy_v2_options", f"{value!r} is not a list of options")
    out = []
    for v in value:
        words = v.replace(",", " ").split() if isinstance(v, str) else [v]
        for w in words:
            if w not in V2_OPTIONS:
                raise error("proxy_v2_options", f"'{w}' : unknown option (HAProxy knows "
                            f"{', '.join(V2_OPTIONS)})")
            out.append(w)
    return tuple(out)


def _rules(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, (list, tuple)):
        raise error("http_request", f"{value!r} is not a list of rules")
    out = []
    for i, rule in enumerate(value):
        if isinstance(rule, str):  # "set-header X-Forwarded-For %[src]"
            rule = rule.split(None, 2)
        if not isinstance(rule, (list, tuple)) or not all(isinstance(w, str) for w in rule):
            raise error("http_request", f"rule {i}: {rule!r} is not a list of words")
        rule = tuple(rule)
        if (rule[:1] == ("set-header",) and len(rule) == 3) or \
                (rule[:1] == ("del-header",) and len(rule) == 2):
            out.append(rule)
            continue
        raise error("http_request", f"rule {i}: {' '.join(rule)!r} is not [set-header, name, "
                    "value] or [del-header, name]")
    return tuple(out)


class HAProxySettings(HostSettings):
    """HAProxy ``frontend``/``backend`` (``mode tcp`` or ``mode http``)."""

    port: Port = Field(1883, description="`bind` port")
    mode: Literal["tcp", "http"] = Field("tcp", description="`mode tcp` or `mode http`")
    accept_proxy: Keyword = Field(False, description="`bind … accept-proxy`: read a PROXY "
                                  "header from every peer")
    expect_proxy_from: Annotated[tuple[str, ...], BeforeValidator(_networks),
                                 Allowed("addresses or networks, as `src` reads them")] = Field(
        (), description="`tcp-request connection expect-proxy layer4 if { src … }`")
    send_proxy: Annotated[Literal["off", "v1", "v2", "v2-ssl", "v2-ssl-cn"],
                          BeforeValidator(_send_proxy),
                          Allowed("off | v1 (send-proxy) | v2 (send-proxy-v2) | v2-ssl "
                                  "(send-proxy-v2-ssl) | v2-ssl-cn (send-proxy-v2-ssl-cn)")] = \
        Field("off", description="`server … send-proxy` / `send-proxy-v2[-ssl[-cn]]`")
    proxy_v2_options: Annotated[tuple[str, ...], BeforeValidator(_options),
                                Allowed(" | ".join(V2_OPTIONS))] = Field(
        (), description="`proxy-v2-options …` (crc32c, unique-id and ssl add TLVs)")
    forwardfor: Keyword = Field(False, description="`option forwardfor`")
    forwardfor_except: Annotated[str | None, BeforeValidator(
        lambda v: v if v is None else _network(v)), Allowed("a network")] = Field(
        None, description="`option forwardfor except <network>`")
    forwardfor_if_none: Keyword = Field(False, description="`option forwardfor if-none`")
    forwardfor_header: HeaderName = Field("X-Forwarded-For", description="`option forwardfor "
                                          "header <name>`")
    http_request: Annotated[tuple[tuple[str, ...], ...], BeforeValidator(_rules),
                            Allowed("[set-header, name, value] | [del-header, name]")] = Field(
        (), description="`http-request set-header|del-header` rules in order (values may use "
        "%[src], %[src_port], %[dst], %[dst_port])")
    bind_ssl: Keyword = Field(False, description="`bind … ssl crt …`: terminate TLS")
    ssl_key: KeyAlg = Field("EC256", description="the key type of HAProxy's own certificate "
                            "(`cert-key` / `cert-sig` describe it)")
    verify: Literal["none", "optional", "required"] = Field(
        "none", description="`bind … verify`: ask for a client certificate")
    ca_file: CaLabel = Field("clients-ca", description="`bind … ca-file`: the CA (a label) "
                             "client certificates must come from")
    crt_ignore_err: Keyword = Field(False, description="`bind … crt-ignore-err all`: let a "
                                    "certificate that fails verification at the leaf through")
    ca_ignore_err: Keyword = Field(False, description="`bind … ca-ignore-err all`: let one "
                                   "that fails in its chain through")
    reject_unless_src: Annotated[tuple[str, ...], BeforeValidator(_networks),
                                 Allowed("addresses or networks, as `src` reads them")] = Field(
        (), description="`tcp-request connection reject unless { src … }`: only these peers "
        "may connect")
    alpn: AlpnNames = Field(
        (), description="`bind … alpn …`: the protocols HAProxy negotiates (sent on in the "
        "ALPN TLV)")
    version: Version = Field("2.6.12", description="the HAProxy version modelled")
