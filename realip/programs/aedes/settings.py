"""The settings a scenario gives an ``aedes`` broker listener, in aedes-server-factory's words
(``trustProxy``).  Imported only when a scenario is validated (see
:mod:`realip.programs.settings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..settings import BrokerSettings, Name, Version

__all__ = ["AedesSettings"]


class AedesSettings(BrokerSettings):
    """An aedes listener made by aedes-server-factory's ``createServer``."""

    name: Name = Field("aedes", description="the broker's label")
    listener: Literal["tcp", "ws"] = Field("tcp", description="a net server, or `ws: true`")
    trust_proxy: bool = Field(False, description="`trustProxy`: read PROXY headers (tcp) and "
                              "X-Forwarded-For / X-Real-IP (ws) from any sender")
    version: Version = Field("1.2.0", description="the aedes version (observed: 1.2.0 with "
                             "aedes-protocol-decoder 2.2.0)")
