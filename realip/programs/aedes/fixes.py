"""Changes to an aedes broker that can close a forgery, in aedes-protocol-decoder's words."""

from __future__ import annotations

from ..base import Broker, Fix, FixContext

__all__ = ["fixes"]


def fixes(node: Broker, ctx: FixContext) -> list[Fix]:
    """``trustProxy: false``: the decoder then reads no PROXY header and no X-Forwarded-For
    (aedes has no list of trusted senders: trusting is all or nothing)."""
    if not node.trust_proxy:
        return []
    return [Fix(node.name, "trust_proxy", False,
                "createServer(aedes, { trustProxy: false })  # no PROXY / X-Forwarded-For")]
