"""Changes to an nginx hop that can close a forgery, in nginx's words (the audit tries each on
the simulator and keeps the ones that work; nothing here decides what is right)."""

from __future__ import annotations

from ..base import Fix, FixContext
from .hops import NginxHttp, NginxStream

__all__ = ["fixes_http", "fixes_stream"]

_FORWARDED = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Port")


def _trust_sender(node: NginxHttp | NginxStream, ctx: FixContext) -> list[Fix]:
    out = []
    if node.set_real_ip_from != (ctx.sender_addr,):
        out.append(Fix(node.name, "set_real_ip_from", (ctx.sender_addr,),
                       f"set_real_ip_from {ctx.sender_addr};  # only the hop before it"))
    # a recursive walk over a chain needs every hop before it trusted, and nobody else
    chain = tuple(dict.fromkeys(ctx.upstream))
    if len(chain) > 1 and isinstance(node, NginxHttp) and node.real_ip_recursive and \
            node.set_real_ip_from != chain:
        out.append(Fix(node.name, "set_real_ip_from", chain,
                       " ".join(f"set_real_ip_from {a};" for a in chain)
                       + "  # only the hops before it"))
    if node.set_real_ip_from:
        out.append(Fix(node.name, "set_real_ip_from", (),
                       "# no set_real_ip_from: trust nobody's header"))
    return out


def fixes_http(node: NginxHttp, ctx: FixContext) -> list[Fix]:
    """``set_real_ip_from`` narrowed to the sender, ``real_ip_recursive`` toggled, each
    forwarded header the hop passes on overridden with what nginx saw itself or dropped."""
    out = _trust_sender(node, ctx)
    out.append(Fix(node.name, "real_ip_recursive", not node.real_ip_recursive,
                   f"real_ip_recursive {'off' if node.real_ip_recursive else 'on'};"))
    own = {"X-Forwarded-For": "$remote_addr", "X-Real-IP": "$remote_addr",
           "X-Forwarded-Port": "$remote_port"}
    for name in _FORWARDED:
        if name in own:
            out.append(Fix(node.name, "proxy_set_header",
                           _set(node.proxy_set_header, name, own[name]),
                           f"proxy_set_header {name} {own[name]};"))
        out.append(Fix(node.name, "proxy_set_header", _set(node.proxy_set_header, name, ""),
                       f'proxy_set_header {name} "";  # drop what the client sent'))
    return out


def _set(lines: tuple[tuple[str, str], ...], name: str, value: str
         ) -> tuple[tuple[str, str], ...]:
    """*lines* with header *name* set to *value* where it stands (appended if absent)."""
    if any(k.lower() == name.lower() for k, _ in lines):
        return tuple((k, value) if k.lower() == name.lower() else (k, v) for k, v in lines)
    return (*lines, (name, value))


def fixes_stream(node: NginxStream, ctx: FixContext) -> list[Fix]:
    """``set_real_ip_from`` narrowed to the sender; ``listen … proxy_protocol`` on or off."""
    out = _trust_sender(node, ctx)
    out.append(Fix(node.name, "listen_proxy_protocol", not node.listen_proxy_protocol,
                   f"listen {node.port}{'' if node.listen_proxy_protocol else ' proxy_protocol'};"))
    return out
