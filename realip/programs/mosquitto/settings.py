"""The settings a scenario gives a ``mosquitto`` broker listener, in mosquitto.conf's words.

``enable_proxy_protocol`` is ``1`` or ``2`` (2.1; 2.0 has no PROXY support); ``listener`` is
``tcp`` or ``ws`` (``protocol websockets``).  Imported only when a scenario is validated (see
:mod:`realip.programs.settings`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from ..settings import Allowed, BrokerSettings, Name, Version, error

__all__ = ["MosquittoSettings"]


def _pp(value: Any) -> int | None:
    if value is None:
        return None
    if value in (1, 2) and not isinstance(value, bool):
        return int(value)
    if value in ("1", "2"):
        return int(value)
    raise error("enable_proxy_protocol", f"{value!r} is not a PROXY version mosquitto reads")


def _listener(value: Any) -> Any:
    return "ws" if value == "websockets" else value


class MosquittoSettings(BrokerSettings):
    """A Mosquitto ``listener``."""

    name: Name = Field("mosquitto", description="the broker's label")
    listener: Annotated[Literal["tcp", "ws"], BeforeValidator(_listener),
                        Allowed("tcp | ws (protocol websockets)")] = Field(
        "tcp", description="`protocol mqtt` or `protocol websockets`")
    enable_proxy_protocol: Annotated[int | None, BeforeValidator(_pp),
                                     Allowed("1 | 2 | null (none)")] = Field(
        None, description="`enable_proxy_protocol 1|2` (2.1; the version it reads, no "
        "detection)")
    version: Version = Field("2.1.0", description="the Mosquitto version (2.0: no PROXY "
                             "support at all)")
