"""aedes over WebSocket with ``trustProxy: true``: aedes-protocol-decoder 2.2.0's
``extractHttpDetails`` (the ``forwarded`` 0.2.0 parser on X-Forwarded-For, then X-Real-IP)."""

from __future__ import annotations

from ...decisions import Resolution, Step

__all__ = ["aedes_ws_peer", "forwarded_tokens"]

Headers = list[tuple[str, str]]


def _node_header(headers: Headers, name: str) -> str:
    # Node's http parser: values trimmed, repeated lines joined with ", "
    return ", ".join(v.strip(" \t") for k, v in headers if k.lower() == name)


def forwarded_tokens(header: str) -> list[str]:
    """``forwarded``'s ``parse``: the X-Forwarded-For tokens right to left, split on commas
    only; spaces are dropped only around a token (``"a b"`` stays one token)."""
    end = start = len(header)
    out: list[str] = []
    for i in range(len(header) - 1, -1, -1):
        c = header[i]
        if c == " ":
            if start == end:
                start = end = i
        elif c == ",":
            if start != end:
                out.append(header[start:end])
            start = end = i
        else:
            start = i
    if start != end:
        out.append(header[start:end])
    return out


def aedes_ws_peer(peer: str, peer_port: int, headers: Headers) -> Resolution:
    """The ``connDetails.ipAddress``/``port`` aedes records for a WebSocket client: with an
    X-Forwarded-For header, its **leftmost** token verbatim (no address check, no trusted
    proxies: any sender); a non-empty X-Real-IP overrides it, verbatim too; the port is always
    the TCP peer's."""
    trace = [Step(None, peer, peer, peer_port, None, None, None, "peer",
                  "trustProxy: true trusts whoever sent the headers")]
    xff = _node_header(headers, "x-forwarded-for")
    real = _node_header(headers, "x-real-ip")
    addr, used = peer, False
    reason = "no X-Forwarded-For or X-Real-IP: the TCP peer"
    if xff:
        tokens = forwarded_tokens(xff)
        if tokens:
            addr, used = tokens[-1], True
            reason = f"the leftmost X-Forwarded-For token, {addr!r}, taken verbatim"
            trace.append(Step(len(tokens) - 1, addr, addr, None, None, None, None, "leftmost",
                              reason))
        else:
            reason = "X-Forwarded-For has no token: the TCP peer"
    if real:
        addr, used = real, True
        reason = f"X-Real-IP {real!r} overrides X-Forwarded-For, verbatim"
        trace.append(Step(None, real, real, None, None, None, None, "client", reason))
    return Resolution(addr, peer_port, "aedes-ws", used, "x-real-ip" if real else
                      ("x-forwarded-for" if used else "peer"), reason, tuple(trace))
