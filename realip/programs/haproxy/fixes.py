"""Changes to an HAProxy hop that can close a forgery, in HAProxy's words (the audit tries
each on the simulator and keeps the ones that work)."""

from __future__ import annotations

from ..base import Fix, FixContext
from .hops import HAProxy

__all__ = ["fixes"]

_FORWARDED = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Port")


def fixes(node: HAProxy, ctx: FixContext) -> list[Fix]:
    """``expect-proxy`` only from the sender, ``accept-proxy`` on/off; in ``mode http`` the
    forwarded headers deleted first (``http-request del-header``) or set from ``%[src]``, and
    ``option forwardfor`` without ``if-none``."""
    out = []
    if node.expect_proxy_from != (ctx.sender_addr,) and (node.expect_proxy_from or
                                                         node.accept_proxy):
        out.append(Fix(node.name, "expect_proxy_from", (ctx.sender_addr,),
                       "tcp-request connection expect-proxy layer4 if { src "
                       f"{ctx.sender_addr} }}"))
    out.append(Fix(node.name, "accept_proxy", not node.accept_proxy,
                   f"bind :{node.port}{'' if node.accept_proxy else ' accept-proxy'}"))
    if node.mode == "http":
        for name in _FORWARDED:
            out.append(Fix(node.name, "http_request", (("del-header", name), *node.http_request),
                           f"http-request del-header {name}"))
        src = (("set-header", "X-Forwarded-For", "%[src]"),
               ("set-header", "X-Forwarded-Port", "%[src_port]"))
        out.append(Fix(node.name, "http_request", (*node.http_request, *src),
                       "http-request set-header X-Forwarded-For %[src] (and X-Forwarded-Port "
                       "%[src_port])"))
        if node.forwardfor_if_none:
            out.append(Fix(node.name, "forwardfor_if_none", False,
                           "option forwardfor  # without if-none"))
        if not node.forwardfor:
            out.append(Fix(node.name, "forwardfor", True, "option forwardfor"))
    return out
