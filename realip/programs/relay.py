"""A plain TCP relay (socat, an L4 load balancer without PROXY support): bytes pass unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ..wire import split_parts
from .base import HopView, Host, Inbound, Outbound, TrustDecision

__all__ = ["Relay", "step", "trust"]

IP = IPv4Address | IPv6Address


@dataclass(frozen=True, kw_only=True)
class Relay(Host):
    """A plain TCP relay (socat, an L4 load balancer without PROXY support)."""




def _relay(node: Relay, conn: Inbound) -> Outbound:
    app_kind = "http" if b"GET " in conn.data[:256] else "mqtt"
    return Outbound(HopView(node.name, "relay", conn.peer, conn.local, {},
                        ("plain relay: bytes are passed through unchanged",)),
                split_parts(conn.data, app_kind))


#: The public step name (the registry maps the ``relay`` hop kind to it).
step = _relay


def trust(node: Relay, sender_addr: str) -> TrustDecision:
    """A relay reads no address from anyone."""
    return TrustDecision(None, "relay")
