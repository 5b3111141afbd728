"""realip — how a client's real IP address travels through reverse proxies to an MQTT broker.

The core (``realip.proxy_protocol``, ``realip.receivers``, and the resolver and simulator to come)
is sans-IO: no sockets, no asyncio, no plotting.  Live sockets and drawings live in their own
modules and are imported only when used.
"""

from .errors import (
    ConfigurationError,
    EncodeError,
    InvalidProxyHeader,
    RealIPError,
    Reason,
    ScenarioError,
)

__all__ = [
    "ConfigurationError",
    "EncodeError",
    "InvalidProxyHeader",
    "RealIPError",
    "Reason",
    "ScenarioError",
    "__version__",
]

__version__ = "0.1.0"
