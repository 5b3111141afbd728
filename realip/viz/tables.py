"""Comparison tables (plain HTML and text, no pandas): receiver profiles, what each receiver does
with one header, and which address each system picks from one request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._display import VERDICT_COLOURS, Table

__all__ = ["acceptance_table", "modes_table", "profile_view"]


def profile_view(receivers: Sequence[str] | None = None,
                 versions: Mapping[str, str] | None = None,
                 aspects: Sequence[str] | None = None) -> Table:
    """:func:`realip.receivers.profile_table` as a table; *aspects* keeps only those rows (by
    their heading or key)."""
    from ..receivers import ASPECTS, RECEIVERS, profile_table

    rows = profile_table(tuple(receivers) if receivers else RECEIVERS, versions)
    head, body = rows[0], rows[1:]
    if aspects is not None:
        wanted = set(aspects)
        keys = {heading: key for key, heading in ASPECTS}
        body = [r for r in body if r[0] in wanted or keys.get(r[0]) in wanted]
    return Table(head, body, max_width=30, css_class="realip-table realip-profiles")


def acceptance_table(data: bytes | bytearray | str,
                     receivers: Sequence[str] | None = None) -> Table:
    """What each receiver (:func:`realip.receivers.accepts`, default versions) does when *data*
    is the first thing it reads: accept (and which client address) or reject (with its log)."""
    from ..receivers import RECEIVERS, accepts

    raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
    rows, marks = [], []
    for name in receivers or RECEIVERS:
        acc = accepts(name, raw)
        if acc.waiting:
            outcome, mark = "waits", VERDICT_COLOURS["incomplete"]
        elif acc.accepted:
            outcome, mark = "accepts", VERDICT_COLOURS["ok"]
        else:
            outcome, mark = "rejects", VERDICT_COLOURS["error"]
        client = str(acc.source) if acc.source is not None else (
            "the TCP peer" if acc.accepted else "-")
        rows.append((f"{name} {acc.version}", outcome, client,
                     "" if acc.accepted else (acc.log_line or acc.reason)))
        marks.append(mark)
    return Table(("receiver", "outcome", "client address", "log / reason"), rows,
                 max_width=60, marks=marks, css_class="realip-table realip-acceptance")


def modes_table(peer: str, headers: Sequence[tuple[str, str]], *,
                trusted: Sequence[str] = (), peer_port: int | None = None) -> Table:
    """Which client address each system takes from one request reaching it from *peer*:
    nginx realip (recursive on and off, trusting *trusted*), EMQX's WebSocket listener (leftmost),
    HAProxy's ``hdr_ip(X-Forwarded-For,-1)`` (rightmost) and realip's :func:`client_ip`."""
    from ..resolve import client_ip, emqx_ws_peer, haproxy_hdr_ip, nginx_realip

    trusted = tuple(trusted)
    ranges = ", ".join(trusted) or "nothing"
    rows = []
    for recursive in (True, False):
        r = nginx_realip(peer, headers, set_real_ip_from=trusted,
                         real_ip_header="X-Forwarded-For", recursive=recursive,
                         peer_port=peer_port)
        rows.append((f"nginx realip, recursive {'on' if recursive else 'off'}",
                     f"set_real_ip_from {ranges}", r.addr or "-", r.reason))
    e = emqx_ws_peer(peer, peer_port or 0, headers)
    rows.append(("EMQX ws listener", "proxy_address_header X-Forwarded-For", e.addr or "-",
                 e.reason.split(";")[0]))
    h = haproxy_hdr_ip(headers, "X-Forwarded-For", -1)
    rows.append(("HAProxy", "http-request set-src hdr_ip(X-Forwarded-For,-1)", h or peer,
                 "the last X-Forwarded-For value, no trust check" if h else
                 "no usable X-Forwarded-For value: the TCP peer stays"))
    c = client_ip(peer, headers, trusted=trusted, peer_port=peer_port)
    rows.append(("realip client_ip", f"trusted {ranges}", c.addr or "refused (fails closed)",
                 c.reason))
    return Table(("system", "setting", "client address", "why"), rows, max_width=48,
                 css_class="realip-table realip-modes")
