"""EMQX's WebSocket listener: ``websocket.proxy_address_header`` / ``proxy_port_header`` (cowboy
reading the headers, ``inet:parse_address`` on the token) and 6.4's ``proxy_address_allow``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from ..._headers import Headers, parse_peer, split_spans
from ...decisions import Entry, Resolution, Step
from ...errors import ConfigurationError
from ...forwarded import (
    header_lines,
)
from ...trust import Trust
from . import erlang

IP = IPv4Address | IPv6Address


# ==============================================================================================
# EMQX


def _cowboy_header(headers: Headers, name: str) -> str:
    # cowboy lower-cases names and joins repeated lines with ", "
    if not name:
        return ""
    return ", ".join(header_lines(headers, name))


def _erl_tokens(value: str) -> list[tuple[int, int]]:
    # string:tokens(V, ", "): split on either character, drop empty tokens
    return split_spans(value, ", ")


def _erl_port(text: str) -> int | None:
    # list_to_integer/1: optional sign, decimal digits, any size
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    return int(text)


def emqx_ws_peer(
    peer: str,
    peer_port: int,
    headers: Headers,
    *,
    proxy_address_header: str = "x-forwarded-for",
    proxy_port_header: str = "x-forwarded-port",
    proxy_address_allow: Sequence[str] | None = None,
    proxy_protocol: Any = None,
) -> Resolution:
    """The peername EMQX's WebSocket listener records (``emqx_ws_connection:get_peer_info``).

    Without *proxy_address_allow* (EMQX 5.x – 6.2, and 6.3 with its empty default header names):
    the **leftmost** token of the address header (tokens split on ``,`` or space) is parsed with
    Erlang's ``inet:parse_address`` — no trust check at all; an absent or unparsable value gives
    the TCP peer.  The port comes independently from the leftmost token of the port header
    (``list_to_integer``: no range check), else the TCP peer's port.

    With *proxy_address_allow* (6.4): headers count only when the TCP peer is in the list; the
    tokens are walked right to left skipping listed addresses; the first unlisted one wins, the
    leftmost if all are listed, and **any unparsable token gives the TCP peer**.

    *proxy_protocol* (a decoded ``ProxyHeader``) wins over the headers when it carries a source.
    """
    peer_ip = parse_peer(peer)
    if isinstance(peer_ip, str):
        raise ConfigurationError("EMQX WebSocket peers are TCP peers")
    trace: list[Step] = []
    peer_text = erlang.ntoa(peer_ip)
    if proxy_protocol is not None and getattr(proxy_protocol, "source", None) is not None \
            and not isinstance(proxy_protocol.source.host, str):
        src = proxy_protocol.source
        text = erlang.ntoa(src.host)
        why = "proxy_protocol is on and the PROXY header carried a source: headers are ignored"
        trace.append(Step(None, str(src), text, src.port, None, None, None, "proxy_protocol", why))
        return Resolution(text, src.port, "emqx-ws", False, "proxy_protocol", why, tuple(trace))
    value = _cowboy_header(headers, proxy_address_header)
    spans = _erl_tokens(value)
    entries = tuple(Entry(0, s, e, value[s:e]) for s, e in spans)
    addr: IP = peer_ip
    used = False
    if proxy_address_allow is None:
        trace.append(Step(None, peer_text, peer_text, peer_port, None, None, None, "peer",
                          "EMQX checks no trusted proxies: the header is read whoever sent it"))
        if not proxy_address_header:
            reason = "proxy_address_header is empty: headers are ignored"
        elif not spans:
            reason = f"no {proxy_address_header} value: the TCP peer is used"
        else:
            s, e = spans[0]
            tok = value[s:e]
            parsed = erlang.parse_address(tok)
            if parsed is None:
                reason = f"leftmost token {tok!r} is not an address: the TCP peer is used"
                trace.append(Step(0, tok, None, None, "inet:parse_address failed", None, None,
                                  "unparsable", reason, 0, s, e))
            else:
                addr, used = parsed, True
                reason = f"the leftmost token, {erlang.ntoa(parsed)}, is taken as the client"
                trace.append(Step(0, tok, erlang.ntoa(parsed), None, None, None, None,
                                  "leftmost", reason, 0, s, e))
    else:
        allow = Trust(proxy_address_allow)
        rule = allow.rule_for(peer_ip)
        if rule is None:
            reason = f"the TCP peer {peer_text} is not in proxy_address_allow: headers ignored"
            trace.append(Step(None, peer_text, peer_text, peer_port, None, False, None, "peer",
                              reason))
        else:
            trace.append(Step(None, peer_text, peer_text, peer_port, None, True, rule, "peer",
                              f"the TCP peer is allowed ({rule}): read the header"))
            reason = f"no {proxy_address_header} value: the TCP peer is used"
            for k in range(len(spans) - 1, -1, -1):
                s, e = spans[k]
                tok = value[s:e]
                parsed = erlang.parse_address(tok)
                if parsed is None:
                    reason = f"{tok!r} is not an address: the TCP peer is used"
                    trace.append(Step(k, tok, None, None, "inet:parse_address failed", None, None,
                                      "unparsable", reason, 0, s, e))
                    addr, used = peer_ip, False
                    break
                text = erlang.ntoa(parsed)
                r = allow.rule_for(parsed)
                addr, used = parsed, True
                if r is None:
                    reason = f"{text} is not in proxy_address_allow: it is the client"
                    trace.append(Step(k, tok, text, None, None, False, None, "client", reason,
                                      0, s, e))
                    break
                if k == 0:
                    reason = f"{text} is the leftmost entry and all were allowed: it is used"
                    trace.append(Step(k, tok, text, None, None, True, r, "leftmost", reason,
                                      0, s, e))
                    break
                trace.append(Step(k, tok, text, None, None, True, r, "skip",
                                  f"{text} is allowed ({r}): keep walking left", 0, s, e))
    port: int = peer_port
    # 6.4: a peer outside proxy_address_allow has both headers ignored.
    peer_allowed = proxy_address_allow is None or Trust(proxy_address_allow)(peer_ip)
    pvalue = _cowboy_header(headers, proxy_port_header) if peer_allowed else ""
    pspans = _erl_tokens(pvalue)
    if pspans:
        s, e = pspans[0]
        got = _erl_port(pvalue[s:e])
        if got is not None:
            port = got
            reason += f"; port {got} from the leftmost {proxy_port_header} token"
        else:
            reason += f"; {proxy_port_header} {pvalue[s:e]!r} is not an integer: TCP peer port"
    return Resolution(erlang.ntoa(addr), port, "emqx-ws", used, "header" if used else "peer",
                      reason, tuple(trace), entries, proxy_address_header)


