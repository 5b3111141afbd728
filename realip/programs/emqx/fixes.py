"""Changes to an EMQX listener that can close a forgery, in EMQX's configuration words (the
audit tries each on the simulator and keeps the ones that work)."""

from __future__ import annotations

from ..base import Broker, Fix, FixContext

__all__ = ["fixes"]


def fixes(node: Broker, ctx: FixContext) -> list[Fix]:
    """``access_rules`` allowing only the sender, ``proxy_protocol`` on/off, the WebSocket
    listener's ``proxy_address_header`` set to X-Real-IP or emptied, and (6.4) the
    ``proxy_address_allow`` list."""
    where = f"listeners.{node.listener}.default"
    out = [Fix(node.name, "access_rules", (f"allow {ctx.sender_addr}", "deny all"),
               f'{where}.access_rules = ["allow {ctx.sender_addr}", "deny all"]'),
           Fix(node.name, "proxy_protocol", not node.proxy_protocol,
               f"{where}.proxy_protocol = {'false' if node.proxy_protocol else 'true'}")]
    if node.listener == "ws":
        for header in ("X-Real-IP", ""):
            out.append(Fix(node.name, "proxy_address_header", header,
                           f'{where}.websocket.proxy_address_header = "{header}"'))
        if node.version.startswith("6.4"):
            out.append(Fix(node.name, "proxy_address_allow", (ctx.sender_addr,),
                           f'{where}.websocket.proxy_address_allow = ["{ctx.sender_addr}"]'))
    return out
