"""The vocabulary every room declares its settings with (pydantic v2 types, sans-IO).

Each room's ``settings.py`` declares, once, the settings a scenario may give its hop or broker
kind: their names, types, allowed values in the program's own words (nginx's ``on``/``off``,
HAProxy's keywords, EMQX's HOCON booleans) and defaults, as a pydantic model built from the types
below.  :mod:`realip.schema` validates YAML, Python dicts and ``with_hop(...)`` through them.

Two pieces of metadata travel with a type and are read by :mod:`realip.schema` (errors and the
generated ``docs/scenario-language.md``): :class:`Allowed` — what is allowed, in words — and
:class:`Warn` — the warnings the program prints for a value it accepts (nginx's "low address
bits of 10.0.1.1/24 are meaningless").

These modules are imported only when a scenario is validated (never by ``import realip``):
building a pydantic model loads :mod:`importlib.metadata`, which the sans-IO core does not need.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .base import version_tuple

__all__ = [
    "Address",
    "Allowed",
    "BrokerSettings",
    "HeaderLines",
    "HeaderName",
    "HostSettings",
    "Name",
    "Port",
    "RelaySettings",
    "Settings",
    "SourcePort",
    "Version",
    "Warn",
    "bool_words",
    "error",
    "header_name",
    "one_or_many",
]


@dataclass(frozen=True)
class Allowed:
    """Metadata: what a setting allows, in the program's words (errors and docs quote it)."""

    text: str


@dataclass(frozen=True)
class Warn:
    """Metadata: the program's warnings for a value it accepts; ``check(value)`` yields
    ``(index, message)`` pairs (``index`` the list item, or None for the whole value)."""

    check: Callable[[Any], Iterable[tuple[int | None, str]]]


def error(code: str, message: str, **context: Any) -> PydanticCustomError:
    """A validation error with our own words (no "Value error," prefix)."""
    # pydantic fills {name} only for names in *context*: other braces stay as written
    return PydanticCustomError(code, message, context)


class Settings(BaseModel):
    """A kind's settings: unknown keys are errors, values are checked when a copy is made."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)


# ----------------------------------------------------------------------------------------------
# Shared types


def bool_words(true: tuple[str, ...], false: tuple[str, ...], what: str
               ) -> Callable[[Any], bool]:
    """A flag in a program's words (*what*: "an nginx flag"): YAML booleans, or exactly these
    words (any case).

    A quoted ``"off"`` is off, a quoted ``"false"`` false; anything else is refused — never a
    truth value guessed from a non-empty string."""
    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in true:
                return True
            if word in false:
                return False
        raise error("flag", f"{value!r} is not {what}")
    return parse


def _port(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error("port", f"{value!r} is not a port number (write it without quotes)")
        if not low <= value <= 65535:
            raise error("port", f"{value} is out of range ({low}..65535)")
        return value
    return parse


#: A TCP port a host listens on or a client connects from.
Port = Annotated[int, BeforeValidator(_port(1)), Allowed("a whole number 1..65535")]
#: A source port.
SourcePort = Port


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise error("address", f"{value!r} is not an IP address (write it as text)")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise error("address", f"{value!r} is not an IPv4 or IPv6 address") from None
    return value


#: A host's own IP address (no port, no brackets).
Address = Annotated[str, BeforeValidator(_address),
                    Allowed("an IPv4 or IPv6 address, e.g. 172.16.0.116 or 2001:db8::10")]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise error("name", f"{value!r} is not a host name (letters, digits, '.', '_', '-')")
    return value


#: A host label: what traces print and the live lab maps to a loopback address.
Name = Annotated[str, BeforeValidator(_name),
                 Allowed("letters, digits, '.', '_' and '-', e.g. lb1")]


def _version(value: Any) -> str:
    if not isinstance(value, str):
        raise error("version", f"{value!r} is not a version string (quote it: \"{value}\"; "
                    "YAML reads 2.10 as the number 2.1)")
    if version_tuple(value) is None:
        raise error("version", f"{value!r} is not a version (e.g. \"1.22.1\")")
    return value


#: A program version, always quoted.
Version = Annotated[str, BeforeValidator(_version), Allowed('a quoted version, e.g. "1.22.1"')]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def header_name(value: Any) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise error("header_name", f"{value!r} is not an HTTP header name")
    return value


#: An HTTP header name (an RFC 9110 token).
HeaderName = Annotated[str, BeforeValidator(header_name),
                       Allowed("an HTTP header name, e.g. X-Forwarded-For")]


def one_or_many(value: Any) -> Any:
    """A list setting written as one string is that one item (never split into characters)."""
    return (value,) if isinstance(value, str) else value


def _header_lines(value: Any) -> tuple[tuple[str, str], ...]:
    """Header lines as ``[[name, value], …]``, ``[{name: value}, …]`` or ``{name: value, …}``
    (a mapping keeps its order); values are text (quote numbers)."""
    items: list[Any]
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise error("headers", f"{value!r} is not a list of [name, value] pairs")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and len(item) == 1:
            item = next(iter(item.items()))
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise error("headers", f"item {i}: {item!r} is not a [name, value] pair")
        name, text = item
        header_name(name)
        if not isinstance(text, str):
            raise error("headers", f"item {i}: the value of {name} is {text!r}; header values "
                        f"are text (quote it: \"{text}\")")
        out.append((name, text))
    return tuple(out)


#: Header lines in order.
HeaderLines = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_header_lines),
                        Allowed("a list of [name, value] pairs (or {name: value} mappings)")]


# ----------------------------------------------------------------------------------------------
# What every hop and broker is


class HostSettings(Settings):
    """What every hop is: a name, its own address, the port it listens on."""

    name: Name = Field(description="the host's label (unique in the scenario)")
    addr: Address = Field(description="its own (LAN) address: what it binds, and the source "
                          "the next hop sees")
    public: Annotated[str | None, BeforeValidator(
        lambda v: v if v is None else _address(v)), Allowed("an IP address")] = Field(
        None, description="a public (WAN) address clients dial, NATed 1:1 to addr")
    port: Port = Field(description="the port it listens on")
    source_port: SourcePort = Field(40000, description="the source port of the connection it "
                                    "opens to the next hop")


class RelaySettings(HostSettings):
    """A plain TCP relay (socat, an L4 load balancer without PROXY support)."""


class BrokerSettings(Settings):
    """What every broker listener has (each broker kind adds its own settings)."""

    name: Name = Field(description="the broker's label")
    addr: Address = Field(description="the listener's address")
    port: Port = Field(1883, description="the listener's port")

    @model_validator(mode="before")
    @classmethod
    def _no_kind(cls, data: Any) -> Any:
        # the kind selects the model; it is not one of its settings
        if isinstance(data, Mapping) and "kind" in data:
            data = {k: v for k, v in data.items() if k != "kind"}
        return data


#: Convenience for rooms: a validator running after the type's own checks.
After = AfterValidator


# ----------------------------------------------------------------------------------------------
# TLS settings several rooms share

#: A plain YAML boolean for settings that are not a program's own word (realip's client).
Flag = Annotated[bool, BeforeValidator(bool_words(("true", "yes", "on"), ("false", "no", "off"),
                                                  "true or false")), Allowed("true | false")]

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _ca_label(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise error("ca", f"{value!r} is not a CA label (letters, digits, '.', '_', '-', e.g. "
                    "clients-ca)")
    return value


#: A certificate authority by label: the simulator signs nothing, the live lab makes one CA
#: per label at run time.
CaLabel = Annotated[str, BeforeValidator(_ca_label), Allowed("a CA label, e.g. clients-ca")]


def _key_alg(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"(RSA(2048|3072|4096)|EC(256|384))",
                                                      value):
        raise error("key", f"{value!r} is not a key type: RSA2048, RSA3072, RSA4096, EC256 or "
                    "EC384")
    return value


#: The key of a host's own certificate, named as HAProxy's cert-key TLV names it.
KeyAlg = Annotated[str, BeforeValidator(_key_alg),
                   Allowed("RSA2048 | RSA3072 | RSA4096 | EC256 | EC384")]


def _server_name(value: Any) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        pass
    else:  # RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName"
        raise error("sni", f"{value!r} is an address: an SNI names a host, not an address "
                    "(RFC 6066 §3)")
    if not isinstance(value, str) or not re.fullmatch(
            r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", value):
        raise error("sni", f"{value!r} is not a DNS host name (an SNI names a host, not an "
                    "address)")
    return value


def _alpn_names(value: Any) -> tuple[str, ...]:
    value = one_or_many(value)
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and 0 < len(v) < 256 and v.isascii() for v in value):
        raise error("alpn", f"{value!r} is not a list of ALPN protocol names (e.g. [mqtt])")
    return tuple(value)


#: ALPN protocol names (a list, or one comma-separated string as HAProxy writes them).
AlpnNames = Annotated[tuple[str, ...], BeforeValidator(_alpn_names),
                      Allowed("ALPN protocol names, e.g. [mqtt]")]

#: A TLS server name (SNI).
ServerName = Annotated[str | None, BeforeValidator(_server_name),
                       Allowed("a DNS host name, e.g. mqtt.example.com, or null")]
