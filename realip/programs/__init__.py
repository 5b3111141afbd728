"""The programs realip reproduces, one room each, and the one registry that names them.

=============  ==================================================================================
room           what it holds (sans-IO)
=============  ==================================================================================
``spec``       the specification as a receiver (:func:`realip.proxy_protocol.decode`)
``nginx``      address grammar, ``listen … proxy_protocol``, stream/http realip and variables,
               the ``nginx-stream`` / ``nginx-http`` hops, nginx.conf writer and reader
``haproxy``    ``accept-proxy``, ``option forwardfor`` / ``set-header`` / ``hdr_ip``, the
               ``haproxy`` hop, haproxy.cfg writer and reader
``emqx``       Erlang's address grammar, esockd (tcp/ssl), ranch (ws/wss), the WebSocket
               listener's header rules, the ``emqx`` broker
``mosquitto``  ``enable_proxy_protocol``, the ``mosquitto`` broker
``relay``      a plain TCP relay hop
=============  ==================================================================================

Generic code (:mod:`realip.receivers`, :mod:`realip.topology`, :mod:`realip.lab`, :mod:`realip.viz`,
the CLI) asks this registry and names no program itself.  Adding a program is a new room plus
one line in each table below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from . import spec
from .base import HopView, Inbound, Outbound, ReceiverModel, TrustDecision, VersionRule
from .emqx import esockd, ranch
from .haproxy import receive as haproxy_receive
from .mosquitto import receive as mosquitto_receive
from .nginx import receive as nginx_receive

__all__ = [
    "RECEIVER_MODELS",
    "HopView",
    "Inbound",
    "Outbound",
    "ReceiverModel",
    "TrustDecision",
    "VersionRule",
]

#: Every PROXY protocol receiver model, in the order comparison tables print them.
RECEIVER_MODELS: Final[Mapping[str, ReceiverModel]] = MappingProxyType({
    m.name: m for m in (spec.RECEIVER, nginx_receive.RECEIVER, haproxy_receive.RECEIVER,
                        esockd.RECEIVER, ranch.RECEIVER, mosquitto_receive.RECEIVER)
})
