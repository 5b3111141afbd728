"""Changes to a Mosquitto listener that can close a forgery, in mosquitto.conf's words."""

from __future__ import annotations

from ..base import Broker, Fix, FixContext

__all__ = ["fixes"]


def fixes(node: Broker, ctx: FixContext) -> list[Fix]:
    """``enable_proxy_protocol`` 1 or 2, or off (Mosquitto has no per-listener source allow
    list: the listener's reachability is the network's job)."""
    out = []
    for value in (None, 1, 2):
        if value != node.enable_proxy_protocol:
            words = ("# no enable_proxy_protocol" if value is None
                     else f"enable_proxy_protocol {value}")
            out.append(Fix(node.name, "enable_proxy_protocol", value, words))
    return out
