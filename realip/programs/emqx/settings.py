"""The settings a scenario gives an ``emqx`` broker listener, in EMQX's words.

``proxy_protocol`` is a HOCON boolean (``true``/``false``, quoted or not);
``proxy_protocol_timeout`` a duration (``3s``, ``500ms``, or seconds); ``access_rules`` are
``"allow CIDR"`` / ``"deny CIDR"`` / ``"allow all"`` in order; ``proxy_address_allow``
(EMQX 6.4) the peers whose headers count.  Imported only when a scenario is validated (see
:mod:`realip.programs.settings`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ...errors import ConfigurationError
from ...trust import Trust
from ..settings import (
    Allowed,
    BrokerSettings,
    CaLabel,
    Name,
    Version,
    bool_words,
    error,
    header_name,
    one_or_many,
)

__all__ = ["EmqxSettings"]

#: HOCON's booleans (a quoted "false" is false, as HOCON converts it).
Boolean = Annotated[bool, BeforeValidator(bool_words(("true",), ("false",), "a HOCON boolean")),
                    Allowed("true | false")]


def _duration(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*", value)
        if m:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
            return float(m.group(1)) * scale
    raise error("duration", f"{value!r} is not a duration (e.g. 3s, 500ms, or seconds)")


def _cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise error("cidr", f"{value!r} is not a CIDR")
    try:
        Trust([value.strip()])
    except ConfigurationError as exc:
        raise error("cidr", str(exc)) from None
    return value


def _rules(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("access_rules", f"{value!r} is not a list of rules")
    for i, rule in enumerate(value):
        verb, _, target = rule.strip().partition(" ") if isinstance(rule, str) else ("", "", "")
        if verb not in ("allow", "deny") or not target.strip():
            raise error("access_rules", f"rule {i}: {rule!r} is not \"allow CIDR\", \"deny "
                        "CIDR\" or \"allow all\"")
        if target.strip() != "all":
            try:
                _cidr(target)
            except PydanticCustomError as exc:
                raise error("access_rules", f"rule {i}: {exc.message()}") from None
    return tuple(value)


def _allow(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    value = one_or_many(value)
    if not isinstance(value, (list, tuple)):
        raise error("cidr", f"{value!r} is not a list of CIDRs")
    return tuple(_cidr(v) for v in value)


def _header(value: Any) -> str | None:
    if value is None or value == "":
        return value  # type: ignore[no-any-return]
    return header_name(value)


OptionalHeader = Annotated[str | None, BeforeValidator(_header),
                           Allowed("a header name, \"\" (none) or null (the version's default)")]


class EmqxSettings(BrokerSettings):
    """An EMQX listener (``listeners.tcp.default`` / ``listeners.ws.default``)."""

    name: Name = Field("emqx", description="the broker's label")
    listener: Literal["tcp", "ws", "ssl", "wss"] = Field(
        "tcp", description="the listener type (ssl: MQTT over TLS, wss: secure WebSocket)")
    proxy_protocol: Boolean = Field(False, description="`proxy_protocol = true`: read a PROXY "
                                    "header (esockd on tcp, ranch on ws)")
    proxy_protocol_timeout: Annotated[float, BeforeValidator(_duration),
                                      Allowed("a duration: 3s, 500ms, or seconds")] = Field(
        3.0, description="`proxy_protocol_timeout`")
    access_rules: Annotated[tuple[str, ...], BeforeValidator(_rules),
                            Allowed('"allow CIDR" | "deny CIDR" | "allow all", in order')] = \
        Field((), description="`access_rules` on the raw TCP peer, first match wins")
    proxy_address_header: OptionalHeader = Field(
        None, description="ws: `proxy_address_header` (null: x-forwarded-for; 6.3: empty)")
    proxy_port_header: OptionalHeader = Field(
        None, description="ws: `proxy_port_header` (null: x-forwarded-port; 6.3: empty)")
    proxy_address_allow: Annotated[tuple[str, ...] | None, BeforeValidator(_allow),
                                   Allowed("CIDRs, or null")] = Field(
        None, description="ws, EMQX 6.4: headers count only from these peers")
    peer_cert_as_username: Literal["disabled", "cn", "dn"] = Field(
        "disabled", description="`mqtt.peer_cert_as_username`: the username from the client "
        "certificate (behind a PROXY header: its SSL TLV)")
    peer_cert_as_clientid: Literal["disabled", "cn", "dn"] = Field(
        "disabled", description="`mqtt.peer_cert_as_clientid`: the client id from the client "
        "certificate")
    verify: Literal["verify_none", "verify_peer"] = Field(
        "verify_none", description="ssl/wss `ssl_options.verify`: verify_peer asks for a "
        "client certificate")
    fail_if_no_peer_cert: Boolean = Field(False, description="ssl/wss `ssl_options."
                                          "fail_if_no_peer_cert`")
    cacertfile: CaLabel = Field("clients-ca", description="ssl/wss `ssl_options.cacertfile`: "
                                "the CA (a label) client certificates must come from")
    version: Version = Field("5.7.0", description="the EMQX version modelled (e5.x: "
                             "enterprise)")
